"""pytest fixtures for testing code that uses margin-async against :class:`FakeKuCoin`.

Installed as the ``margin_async`` pytest plugin (entry point ``pytest11``), so the
fixtures are available in any test suite once margin-async is installed:

* ``fake_kucoin``: a started :class:`~margin_async.testing.FakeKuCoin`, closed afterwards;
* ``kucoin_credentials``: the :class:`~margin_async.Credentials` of a fresh account on it;
* ``margin_client``: a :class:`~margin_async.MarginClient` for that account, pointed at
  the fake and closed afterwards.

The fixtures are async and need pytest-asyncio (``pip install "margin-async[testing]"``).
Under its default strict mode, mark the tests that use them ``@pytest.mark.asyncio``
(or set ``asyncio_mode = "auto"``); the fixtures themselves need no marking. Without
pytest-asyncio they are plain fixtures that another async plugin must drive.

Loading this module costs (almost) nothing: pytest loads it in every run of every
environment where margin-async is installed, so it imports neither aiohttp, nor the
fake exchange, nor the client until a test asks for one of its fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_asyncio import fixture as _async_fixture

    from margin_async._auth import Credentials
    from margin_async._client import MarginClient
    from margin_async.testing._server import FakeKuCoin
else:
    try:
        # Already imported by pytest when pytest-asyncio is installed: free here.
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - documented fallback
        _async_fixture = pytest.fixture

__all__ = ["fake_kucoin", "kucoin_credentials", "margin_client"]


@_async_fixture
async def fake_kucoin() -> AsyncIterator[FakeKuCoin]:
    """A started :class:`~margin_async.testing.FakeKuCoin` on a free loopback port, closed
    after the test."""
    # Imported here, not at the top: see the module's docstring.
    from margin_async.testing._server import FakeKuCoin

    async with FakeKuCoin() as fake:
        yield fake


@_async_fixture
async def kucoin_credentials(fake_kucoin: FakeKuCoin) -> Credentials:
    """:class:`~margin_async.Credentials` of a new account (no debt, no history) on
    ``fake_kucoin``."""
    return fake_kucoin.add_account()


@_async_fixture
async def margin_client(
    fake_kucoin: FakeKuCoin, kucoin_credentials: Credentials
) -> AsyncIterator[MarginClient]:
    """A :class:`~margin_async.MarginClient` for ``kucoin_credentials`` talking to
    ``fake_kucoin``, closed after the test."""
    from margin_async._client import MarginClient

    async with MarginClient(kucoin_credentials, base_url=fake_kucoin.url) as client:
        yield client
