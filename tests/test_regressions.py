"""Defects found in review, each pinned by the scenario that showed it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from aioresponses import aioresponses
from helpers import BASE, TIME_PATH

from margin_async import (
    AccountPool,
    BorrowResult,
    ClientClosedError,
    Credentials,
    MarginClient,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    RetryPolicy,
    ValidationError,
)
from margin_async.testing import FakeKuCoin

BORROW = "POST /api/v3/margin/borrow"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


async def test_concurrent_identical_borrows_never_claim_each_others_order(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.inject("5xx", route=BORROW)  # the first is refused by the gateway, not applied
    fake.inject("apply_then_stall", route=BORROW, stall=2.0)  # the second is applied
    async with MarginClient(creds, base_url=fake.url, retry=FAST, timeout=0.5) as client:
        outcomes = await asyncio.gather(
            client.borrow("USDT", "10", time_in_force="IOC"),
            client.borrow("USDT", "10", time_in_force="IOC"),
            return_exceptions=True,
        )
    (entry,) = fake.ledger(creds.api_key)  # only the second was applied
    first, second = outcomes
    # The first was never applied: it must not claim the second's order as its own.
    assert isinstance(first, OutcomeUnknownError)
    # The second may be reported unknown (an identical order's fate was unknown moments
    # before, so a match cannot be told apart), but never as another order.
    if isinstance(second, BorrowResult):
        assert second.order_no == entry.order_no
    else:
        assert isinstance(second, OutcomeUnknownError)


async def test_reconciliation_searches_from_before_a_clock_correction(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.set_clock_skew(-30_000)  # our clock is 30 s ahead of the exchange's
    fake.inject("latency", route=BORROW, latency=0)  # taken by the refused first try
    fake.inject("apply_then_5xx", route=BORROW)  # the resend is applied, its answer lost
    async with MarginClient(creds, base_url=fake.url, retry=FAST) as client:
        result = await client.borrow("USDT", "10", time_in_force="IOC")
    (entry,) = fake.ledger(creds.api_key)
    assert result.order_no == entry.order_no


@pytest.mark.parametrize("skew_ms", [0, -3_000])
async def test_a_walk_with_a_future_end_or_a_fast_clock_stays_exact(
    fake: FakeKuCoin, creds: Credentials, skew_ms: int
) -> None:
    fake.set_clock_skew(skew_ms)  # -3 s: our clock ahead, within the exchange's tolerance
    fake.seed_history(creds.api_key, "USDT", borrows=100)
    async with MarginClient(creds, base_url=fake.url) as client:
        end = client._session.now_ms() + 3_600_000 if skew_ms == 0 else None
        seen: list[str] = []
        async for order in client.borrow_history("USDT", end_time=end, page_size=10, prefetch=1):
            seen.append(order.order_no)
            if len(seen) == 5:  # a borrow lands mid-walk
                await client.borrow("USDT", "1", time_in_force="IOC")
    assert len(seen) == len(set(seen)) == 100


async def test_follow_starts_at_the_start_time_filter(fake: FakeKuCoin, creds: Credentials) -> None:
    start = fake.now_ms() - 60_000
    for offset_ms in (-30_000, -10_000, 0, 10_000):  # two before the start, two from it
        fake.append_interest(
            creds.api_key, "USDT", Decimal("1"), Decimal("0.0001"), created_time=start + offset_ms
        )
    async with MarginClient(creds, base_url=fake.url) as client:
        walk = await client.interest_history("USDT", start_time=start).collect()
        follower = client.interest_history("USDT", start_time=start).follow(interval=0.01)
        followed = await follower.poll()
    assert sorted(r.created_time - start for r in walk) == [0, 10_000]
    assert sorted(r.created_time - start for r in followed) == [0, 10_000]


async def test_a_429_without_a_reset_backs_off(
    mock: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("margin_async._session.asyncio.sleep", sleep)
    mock.get(
        BASE + "/api/v3/margin/interest?currentPage=1&pageSize=50",
        status=429,
        body=b"<html>429 Too Many Requests</html>",
        repeat=True,
    )
    retry = RetryPolicy(attempts=3, base_delay=0.5, jitter=False)
    async with MarginClient(_creds(), retry=retry) as client:
        with pytest.raises(RateLimitError):
            await client.get_interest_history()
    assert delays == [0.5, 1.0]


async def test_closing_while_a_request_waits_raises_client_closed(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    limiter = asyncio.Semaphore(1)
    await limiter.acquire()
    client = MarginClient(creds, base_url=fake.url, limiter=limiter)
    waiting = asyncio.create_task(client.get_interest_history())
    await asyncio.sleep(0.05)
    await client.close()
    limiter.release()
    with pytest.raises(ClientClosedError):
        await waiting


async def test_clock_offset_ignores_time_spent_waiting(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    limiter = asyncio.Semaphore(1)
    await limiter.acquire()
    async with MarginClient(creds, base_url=fake.url, limiter=limiter) as client:
        sync = asyncio.create_task(client.sync_clock())
        await asyncio.sleep(1.0)  # the sync waits a whole second for its turn
        limiter.release()
        offset = await sync
    # Half the wait (500 ms) would be in the offset if the wait were counted.
    assert abs(offset) < 250


async def test_an_absurd_server_time_is_a_protocol_error(mock: aioresponses) -> None:
    mock.get(BASE + TIME_PATH, body=b'{"code":"200000","data":1e400}')
    async with MarginClient(_creds(), retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(ProtocolError, match="server time"):
            await client.sync_clock()


async def test_a_pool_that_fails_to_open_closes_its_session(creds: Credentials) -> None:
    pool = AccountPool({"a": creds}, timeout=-1)
    with pytest.raises(ValidationError):
        await pool.open()
    assert pool._transport is None


def _creds() -> Credentials:
    return Credentials("key", "secret", "passphrase")
