"""The aioresponses shim for aiohttp 3.14 (tests/aioresponses_compat.py)."""

from __future__ import annotations

import aiohttp
import aioresponses.core
from aioresponses import aioresponses as mocked
from aioresponses_compat import NEEDED, CompatResponse


async def test_a_mocked_request_answers_on_this_aiohttp() -> None:
    with mocked() as mock:
        mock.get("https://example.invalid/x", status=201, body=b'{"a": 1}', headers={"X-A": "b"})
        async with (
            aiohttp.ClientSession() as session,
            session.get("https://example.invalid/x") as response,
        ):
            assert response.status == 201
            assert response.headers["X-A"] == "b"
            assert await response.read() == b'{"a": 1}'
            assert await response.json() == {"a": 1}


def test_the_shim_is_installed_only_where_needed() -> None:
    installed = aioresponses.core.ClientResponse is CompatResponse
    assert installed == NEEDED
    expected = tuple(int(p) for p in aiohttp.__version__.split(".")[:2]) >= (3, 14)
    assert expected == NEEDED


async def test_a_mocked_body_above_the_high_water_mark() -> None:
    body = b"x" * (4 * 2**20)
    with mocked() as mock:
        mock.get("https://example.invalid/big", body=body)
        async with (
            aiohttp.ClientSession() as session,
            session.get("https://example.invalid/big") as response,
        ):
            assert await response.read() == body
