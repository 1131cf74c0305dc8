"""The reliability policy, proven against FakeKuCoin's fault injection over loopback.

The worst bug is a borrow or repay applied twice; the second worst a stream that
drops or repeats a record.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from margin_async import (
    Credentials,
    MarginClient,
    OutcomeUnknownError,
    ResponseEvent,
    RetryPolicy,
)
from margin_async.testing import FakeKuCoin

BORROW = "POST /api/v3/margin/borrow"
REPAY = "POST /api/v3/margin/repay"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


async def _money(client: MarginClient, op: str) -> object:
    if op == "borrow":
        return await client.borrow("USDT", Decimal("25"), time_in_force="IOC")
    return await client.repay("USDT", Decimal("25"))


@pytest.mark.parametrize("op", ["borrow", "repay"])
@pytest.mark.parametrize("fault", ["apply_then_5xx", "apply_then_drop"])
async def test_lost_answer_is_reconciled_never_resent(
    fake: FakeKuCoin, creds: Credentials, op: str, fault: str
) -> None:
    async with MarginClient(creds, base_url=fake.url, retry=FAST_RETRY) as client:
        if op == "repay":
            await client.borrow("USDT", Decimal("100"), time_in_force="IOC")
        before = len(fake.ledger(creds.api_key))
        fake.inject(fault, route=BORROW if op == "borrow" else REPAY)
        result = await _money(client, op)
    applied = fake.ledger(creds.api_key)[before:]
    assert [e.kind for e in applied] == [op]  # exactly one application
    assert result.order_no == applied[0].order_no
    assert result.actual_size == applied[0].actual_size


@pytest.mark.parametrize("op", ["borrow", "repay"])
async def test_a_stalled_answer_times_out_and_is_reconciled(
    fake: FakeKuCoin, creds: Credentials, op: str
) -> None:
    async with MarginClient(creds, base_url=fake.url, retry=FAST_RETRY, timeout=0.5) as client:
        if op == "repay":
            await client.borrow("USDT", Decimal("100"), time_in_force="IOC")
        before = len(fake.ledger(creds.api_key))
        fake.inject("apply_then_stall", route=BORROW if op == "borrow" else REPAY)
        result = await _money(client, op)
    applied = fake.ledger(creds.api_key)[before:]
    assert [e.kind for e in applied] == [op]
    assert result.order_no == applied[0].order_no


@pytest.mark.parametrize("fault", ["5xx", "drop_before"])
async def test_an_ambiguous_failure_that_was_not_applied_is_not_guessed(
    fake: FakeKuCoin, creds: Credentials, fault: str
) -> None:
    async with MarginClient(creds, base_url=fake.url, retry=FAST_RETRY) as client:
        fake.inject(fault, route=BORROW)
        with pytest.raises(OutcomeUnknownError) as info:
            await client.borrow("USDT", Decimal("25"), time_in_force="IOC")
    assert info.value.request.path == "/api/v3/margin/borrow"
    assert fake.ledger(creds.api_key) == []  # and it was not resent behind our back
    assert fake.stats.requests[BORROW] == 1


@pytest.mark.parametrize("op", ["borrow", "repay"])
async def test_rate_limited_money_is_resent_and_applied_once(
    fake: FakeKuCoin, creds: Credentials, op: str
) -> None:
    async with MarginClient(creds, base_url=fake.url, retry=FAST_RETRY) as client:
        if op == "repay":
            await client.borrow("USDT", Decimal("100"), time_in_force="IOC")
        before = len(fake.ledger(creds.api_key))
        route = BORROW if op == "borrow" else REPAY
        sent_before = fake.stats.requests[route]
        fake.inject("rate_limit", route=route)
        result = await _money(client, op)
    applied = fake.ledger(creds.api_key)[before:]
    assert [e.order_no for e in applied] == [result.order_no]
    assert fake.stats.requests[route] - sent_before == 2  # refused once, then applied


async def test_reconciliation_skips_an_identical_order_it_already_knows(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    async with MarginClient(creds, base_url=fake.url, retry=FAST_RETRY) as client:
        first = await client.borrow("USDT", Decimal("25"), time_in_force="IOC")
        fake.inject("apply_then_5xx", route=BORROW)
        second = await client.borrow("USDT", Decimal("25"), time_in_force="IOC")
    assert second.order_no != first.order_no
    assert [e.order_no for e in fake.ledger(creds.api_key)] == [first.order_no, second.order_no]


@pytest.mark.parametrize("skew_ms", [60_000, -60_000])
async def test_clock_skew_costs_one_resync(
    fake: FakeKuCoin, creds: Credentials, skew_ms: int
) -> None:
    fake.set_clock_skew(skew_ms)
    events: list[ResponseEvent] = []
    async with MarginClient(creds, base_url=fake.url, on_response=events.append) as client:
        loan = await client.borrow("USDT", Decimal("5"), time_in_force="IOC")
        for _ in range(10):
            await client.get_borrow_history("USDT")
        await client.repay("USDT", loan.actual_size)
    assert [e.code for e in events].count("400002") == 1
    assert fake.stats.requests["GET /api/v1/timestamp"] == 1
    assert len(fake.ledger(creds.api_key)) == 2


async def test_stream_under_random_faults_yields_every_record_once(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=20_000, repays=0, interest=0)
    async with MarginClient(creds, base_url=fake.url) as client:
        clean = await client.borrow_history("USDT").collect()
    fake.set_fault_rate(0.10, latency=0.02, seed=7)
    retry = RetryPolicy(attempts=10, base_delay=0.01, max_delay=0.1)
    async with MarginClient(creds, base_url=fake.url, retry=retry) as client:
        faulty = await client.borrow_history("USDT", page_size=100).collect()
    fake.set_fault_rate(0.0)
    assert sum(fake.stats.status_counts.get(s, 0) for s in (429, 502, 503, 504)) > 0
    assert len(faulty) == 20_000
    assert len({o.order_no for o in faulty}) == 20_000
    assert [o.order_no for o in faulty] == [o.order_no for o in clean]
    assert sum((o.actual_size for o in faulty), Decimal(0)) == sum(
        (o.actual_size for o in clean), Decimal(0)
    )


async def test_budget_keeps_a_long_stream_under_the_quota() -> None:
    # 100 pages of weight 15 against 500 weight per second: a third of them per window.
    async with FakeKuCoin(rate_limit_quota=500, rate_limit_window_ms=1_000) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=50_000, repays=0, interest=0)
        async with MarginClient(creds, base_url=fake.url) as client:
            records = await client.borrow_history("USDT", page_size=500).collect()
        assert len(records) == 50_000
        assert fake.stats.requests["GET /api/v3/margin/borrow"] == 100
        assert fake.stats.rate_limited == 0


async def test_accounts_have_separate_budgets_and_concurrent_calls_share_one() -> None:
    import asyncio

    async with FakeKuCoin(rate_limit_quota=100, rate_limit_window_ms=1_000) as fake:
        a, b = fake.add_account(), fake.add_account()
        async with (
            MarginClient(a, base_url=fake.url) as ca,
            MarginClient(b, base_url=fake.url) as cb,
        ):
            # 2 x 12 interest pages of weight 20 = 240 weight per account, quota 100.
            await asyncio.gather(
                *(ca.get_interest_history() for _ in range(12)),
                *(cb.get_interest_history() for _ in range(12)),
            )
        assert fake.stats.rate_limited == 0
