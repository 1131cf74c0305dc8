"""MarginClient against FakeKuCoin over loopback: every operation, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import aiohttp
import pytest

from margin_async import (
    ApiError,
    AuthenticationError,
    BorrowOrder,
    Credentials,
    MarginClient,
    OrderStatus,
)
from margin_async.testing import FakeKuCoin


@pytest.fixture
async def client(fake: FakeKuCoin, creds: Credentials) -> AsyncIterator[MarginClient]:
    async with MarginClient(creds, base_url=fake.url) as c:
        yield c


async def test_borrow_repay_leverage_roundtrip(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    loan = await client.borrow("USDT", Decimal("10"), time_in_force="IOC")
    assert loan.actual_size == Decimal("10")
    assert fake.debt(creds.api_key, "USDT") == Decimal("10")
    paid = await client.repay("USDT", loan.actual_size)
    assert paid.actual_size <= Decimal("10")
    await client.modify_leverage("3.5")
    ledger = fake.ledger(creds.api_key)
    assert [e.kind for e in ledger] == ["borrow", "repay"]
    assert ledger[0].order_no == loan.order_no
    assert ledger[1].order_no == paid.order_no
    page = await client.get_borrow_history("USDT")
    assert [o.order_no for o in page.items] == [loan.order_no]
    assert page.items[0].symbol == ""
    assert page.items[0].status is OrderStatus.SUCCESS


async def test_isolated_borrow_is_recorded_with_its_symbol(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    loan = await client.borrow(
        "BTC", "0.5", time_in_force="FOK", symbol="BTC-USDT", is_isolated=True
    )
    assert loan.actual_size == Decimal("0.5")
    page = await client.get_borrow_history("BTC", is_isolated=True, symbol="BTC-USDT")
    assert [(o.order_no, o.symbol) for o in page.items] == [(loan.order_no, "BTC-USDT")]
    cross = await client.get_borrow_history("BTC")
    assert cross.items == ()


async def test_ioc_fills_partially_and_fok_refuses(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    fake.set_liquidity("ETH", Decimal("2.5"))
    partial = await client.borrow("ETH", "4", time_in_force="IOC")
    assert partial.actual_size == Decimal("2.5")
    fake.set_liquidity("ETH", Decimal("1"))
    with pytest.raises(ApiError):
        await client.borrow("ETH", "4", time_in_force="FOK")
    assert [e.actual_size for e in fake.ledger(creds.api_key)] == [Decimal("2.5")]


async def test_repay_splits_interest_and_never_over_repays(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    await client.borrow("USDT", "100", time_in_force="IOC")
    fake.accrue_interest(creds.api_key, hours=Decimal("24"))
    owed_interest = fake.accrued_interest(creds.api_key, "USDT")
    assert owed_interest > 0
    paid = await client.repay("USDT", "1000")
    assert paid.actual_size == Decimal("100") + owed_interest
    repays = await client.repay_history("USDT").collect()
    assert len(repays) == 1
    assert repays[0].interest == owed_interest
    assert repays[0].principal == Decimal("100")
    assert fake.debt(creds.api_key, "USDT") == 0
    with pytest.raises(ApiError):
        await client.repay("USDT", "1")


async def test_streams_ten_thousand_records_exactly(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=10_250, repays=3_001, interest=12_345)
    borrows = await client.borrow_history("USDT").collect()
    assert len(borrows) == 10_250
    assert len({o.order_no for o in borrows}) == 10_250
    times = [o.created_time for o in borrows]
    assert times == sorted(times, reverse=True)
    pages = [p async for p in client.borrow_history("USDT", page_size=100).pages()]
    assert [p.current_page for p in pages] == list(range(1, 104))
    assert len(pages[-1].items) == 50
    assert sum((o.actual_size for p in pages for o in p.items), Decimal(0)) == sum(
        (o.actual_size for o in borrows), Decimal(0)
    )
    repays = [r async for r in client.repay_history("USDT", prefetch=1)]
    assert len(repays) == 3_001
    interest = await client.interest_history("USDT").collect()
    assert len(interest) == 12_345
    total = sum((r.interest_amount for r in interest), Decimal(0))
    assert total == sum((r.interest_amount for r in interest[::-1]), Decimal(0))
    assert total.as_tuple().exponent < 0  # exact fractional amounts, not rounded


async def test_history_filters(fake: FakeKuCoin, creds: Credentials, client: MarginClient) -> None:
    fake.seed_history(creds.api_key, "BTC", borrows=300, repays=0, interest=0)
    fake.seed_history(creds.api_key, "ETH", borrows=200, repays=0, interest=0)
    fake.seed_history(creds.api_key, "USDT", borrows=100, repays=0, interest=0)
    both = await client.borrow_history(["BTC", "ETH"]).collect()
    assert len(both) == 500
    assert {o.currency for o in both} == {"BTC", "ETH"}
    one = both[123]
    by_no = await client.get_borrow_history(["BTC", "ETH"], order_no=one.order_no)
    assert [o.order_no for o in by_no.items] == [one.order_no]
    # startTime and endTime are inclusive.
    window = await client.borrow_history(
        ["BTC", "ETH"], start_time=both[300].created_time, end_time=both[100].created_time
    ).collect()
    assert [o.order_no for o in window] == [o.order_no for o in both[100:301]]
    as_dt = datetime.fromtimestamp(both[100].created_time / 1000, tz=UTC)
    since = await client.borrow_history(["BTC", "ETH"], start_time=as_dt).collect()
    assert all(o.created_time >= both[100].created_time - 1 for o in since)
    past_end = await client.get_borrow_history("USDT", current_page=99, page_size=10)
    assert past_end.items == ()
    assert past_end.total_num == 100
    assert past_end.total_page == 10


async def test_end_time_pinned_while_records_arrive(
    fake: FakeKuCoin, creds: Credentials, client: MarginClient
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=2_000, repays=0, interest=0)
    seen: list[BorrowOrder] = []
    async for order in client.borrow_history("USDT", page_size=100, prefetch=2):
        seen.append(order)
        if len(seen) == 150:  # a new borrow lands in the middle of the walk
            await client.borrow("USDT", "1", time_in_force="IOC")
    assert len(seen) == 2_000
    assert len({o.order_no for o in seen}) == 2_000


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        # The passphrase header is signed with the secret, so it is the first to fail.
        ("wrong_secret", "400004"),
        ("wrong_passphrase", "400004"),
        ("unknown_key", "400003"),
    ],
)
async def test_auth_failures_are_typed(
    fake: FakeKuCoin, creds: Credentials, mutate: str, code: str
) -> None:
    bad = {
        "wrong_secret": Credentials(creds.api_key, "not-the-secret", creds.api_passphrase),
        "wrong_passphrase": Credentials(creds.api_key, creds.api_secret, "nope"),
        "unknown_key": Credentials("no-such-key", creds.api_secret, creds.api_passphrase),
    }[mutate]
    async with MarginClient(bad, base_url=fake.url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_interest_history()
    assert info.value.code == code
    assert info.value.http_status == 401


async def test_skewed_server_clock_is_synced_once(fake: FakeKuCoin, creds: Credentials) -> None:
    fake.set_clock_skew(60_000)
    codes: list[str | None] = []
    async with MarginClient(
        creds, base_url=fake.url, on_response=lambda e: codes.append(e.code)
    ) as client:
        await client.get_interest_history()
        assert abs(client.clock_offset_ms - 60_000) < 2_000
        for _ in range(5):
            await client.get_interest_history()
    assert codes.count("400002") == 1


class _CountingSemaphore(asyncio.Semaphore):
    """A semaphore that remembers the most holders it had at once."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.holders = 0
        self.most = 0

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.holders += 1
        self.most = max(self.most, self.holders)
        return True

    def release(self) -> None:
        self.holders -= 1
        super().release()


async def test_a_shared_limiter_caps_requests_in_flight_across_clients(
    fake: FakeKuCoin,
) -> None:
    fake.set_latency(0.02)
    limiter = _CountingSemaphore(3)
    accounts = [fake.add_account() for _ in range(4)]
    async with aiohttp.ClientSession() as http:
        clients = [
            MarginClient(c, base_url=fake.url, session=http, limiter=limiter) for c in accounts
        ]
        pages = await asyncio.gather(*(c.get_interest_history() for c in clients for _ in range(5)))
    assert len(pages) == 20
    assert limiter.most == 3
    assert limiter.holders == 0
