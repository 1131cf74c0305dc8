"""pytest fixtures for testing code that uses margin-async against :class:`FakeKuCoin`.

Installed as the ``margin_async`` pytest plugin (entry point ``pytest11``), so the
fixtures are available in any test suite once margin-async is installed:

* ``fake_kucoin``: a started :class:`~margin_async.testing.FakeKuCoin`, closed afterwards;
* ``kucoin_credentials``: the :class:`~margin_async.Credentials` of a fresh account on it;
* ``margin_client``: a :class:`~margin_async.MarginClient` for that account, pointed at
  the fake and closed afterwards.

The fixtures are async and need pytest-asyncio (``asyncio_mode = "auto"``, or mark the
tests with ``@pytest.mark.asyncio``). Without pytest-asyncio they are plain fixtures that
other async plugins must drive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from margin_async.auth import Credentials
from margin_async.testing.server import FakeKuCoin

if TYPE_CHECKING:
    from pytest_asyncio import fixture as _async_fixture

    from margin_async import MarginClient
else:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - documented fallback
        _async_fixture = pytest.fixture

__all__ = ["fake_kucoin", "kucoin_credentials", "margin_client"]


@_async_fixture
async def fake_kucoin() -> AsyncIterator[FakeKuCoin]:
    """A started :class:`FakeKuCoin` on a free loopback port, closed after the test."""
    async with FakeKuCoin() as fake:
        yield fake


@_async_fixture
async def kucoin_credentials(fake_kucoin: FakeKuCoin) -> Credentials:
    """Credentials of a new account (no debt, no history) on ``fake_kucoin``."""
    return fake_kucoin.add_account()


@_async_fixture
async def margin_client(
    fake_kucoin: FakeKuCoin, kucoin_credentials: Credentials
) -> AsyncIterator[MarginClient]:
    """A ``MarginClient`` for ``kucoin_credentials`` talking to ``fake_kucoin``."""
    # Imported late: the plugin is loaded by every pytest run where margin-async is
    # installed, and should cost (and risk) nothing until the fixture is used.
    from margin_async import MarginClient

    async with MarginClient(kucoin_credentials, base_url=fake_kucoin.url) as client:
        yield client
