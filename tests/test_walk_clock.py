"""Page 1's server time feeds the clock estimate: a walk never reads page 1 twice, and an
idle follow poll is one request, whichever clock is ahead."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from margin_async import Credentials, MarginClient
from margin_async.testing import FakeKuCoin

HISTORY = "GET /api/v3/margin/borrow"


@pytest.mark.parametrize("skew_ms", [-4_000, -1_500, -200, 0, 200, 1_500, 4_000])
async def test_a_five_page_walk_is_five_requests(
    fake: FakeKuCoin, creds: Credentials, skew_ms: int
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=50, repays=0, interest=0)
    fake.set_clock_skew(skew_ms)
    async with MarginClient(creds, base_url=fake.url) as client:
        for walk in range(3):
            before = fake.stats.requests[HISTORY]
            records = await client.borrow_history("USDT", page_size=10).collect()
            assert len(records) == 50
            assert fake.stats.requests[HISTORY] - before == 5, f"walk {walk}"


@pytest.mark.parametrize("skew_ms", [-4_000, -1_500, 0, 1_500, 4_000])
async def test_an_idle_follow_poll_is_one_request(
    fake: FakeKuCoin, creds: Credentials, skew_ms: int
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=5, repays=0, interest=0)
    fake.set_clock_skew(skew_ms)
    async with MarginClient(creds, base_url=fake.url) as client:
        follower = client.borrow_history("USDT", page_size=10).follow(interval=0.01)
        polls = 0
        target = 6
        reached = asyncio.Event()
        open_window = follower._open

        def counted() -> Any:
            nonlocal polls
            polls += 1
            if polls >= target:
                reached.set()
            return open_window()

        follower._open = counted  # type: ignore[method-assign]
        stream = aiter(follower)
        for _ in range(5):
            await anext(stream)  # the backlog, in the first poll
        waiting = asyncio.ensure_future(anext(stream))
        await reached.wait()
        requests_at, polls_at = fake.stats.requests[HISTORY], polls
        reached.clear()
        target = polls_at + 5
        await reached.wait()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        idle_requests = fake.stats.requests[HISTORY] - requests_at
        idle_polls = polls - polls_at
    # One request per idle poll (the last poll may have been cancelled before sending).
    assert idle_polls - 1 <= idle_requests <= idle_polls


async def test_page_one_corrects_the_clock_estimate(fake: FakeKuCoin, creds: Credentials) -> None:
    fake.set_clock_skew(-3_000)  # the exchange is 3 s behind us
    async with MarginClient(creds, base_url=fake.url) as client:
        assert client.clock_offset_ms == 0
        await client.borrow_history("USDT").collect()
        assert -3_500 < client.clock_offset_ms < -2_500
