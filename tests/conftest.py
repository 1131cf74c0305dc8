"""Fixtures shared by the unit tests (helpers live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses_compat import install as _install_aioresponses_compat

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

# aioresponses cannot build responses on aiohttp 3.14 without this (see the module).
_install_aioresponses_compat()


@pytest.fixture
def mock() -> Iterator[aioresponses]:
    """aioresponses with nothing registered: an unregistered request fails to connect."""
    with aioresponses() as m:
        yield m


@pytest.fixture
async def fake() -> AsyncIterator[FakeKuCoin]:
    """A FakeKuCoin with default settings, serving on loopback."""
    async with FakeKuCoin() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for talking to the fake without the SDK."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def creds(fake: FakeKuCoin) -> Credentials:
    """A fresh account on ``fake``."""
    return fake.add_account()
