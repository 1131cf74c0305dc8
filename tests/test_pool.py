"""AccountPool against FakeKuCoin over loopback: many accounts, one session, bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from decimal import Decimal

import pytest

from margin_async import Credentials, MarginClient, RetryPolicy
from margin_async._errors import AuthenticationError, ClientClosedError, ValidationError
from margin_async._events import ResponseEvent
from margin_async._models import BorrowOrder, InterestRecord
from margin_async._pagination import Paginator
from margin_async._pool import AccountError, AccountPool, AccountRecord, PoolError
from margin_async.testing import FakeKuCoin

ONCE = RetryPolicy(attempts=1)


def _bad(creds: Credentials) -> Credentials:
    """The same key with a wrong secret: refused with 400004/400005."""
    return Credentials(creds.api_key, "not-the-secret", creds.api_passphrase)


def _seeded(
    fake: FakeKuCoin, prefix: str, n: int, *, borrows: int = 0, interest: int = 0
) -> dict[str, Credentials]:
    """``n`` new accounts labelled ``prefix0``, ``prefix1``..., each with the same USDT history."""
    accounts: dict[str, Credentials] = {}
    for i in range(n):
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=borrows, interest=interest)
        accounts[f"{prefix}{i}"] = creds
    return accounts


def _pool_tasks() -> list[asyncio.Task[object]]:
    """Live producer tasks of merged streams (the pool names them)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("margin-async pool")]


async def test_hundred_accounts_stream_concurrently_over_capped_connections(
    fake: FakeKuCoin,
) -> None:
    accounts: dict[str, Credentials] = {}
    expected: dict[str, int] = {}
    for i in range(100):
        creds = fake.add_account()
        # A different count per account (several pages for some, none for one).
        count = (i * 37) % 1200
        fake.seed_history(creds.api_key, "USDT", interest=count)
        accounts[f"acct{i:03d}"] = creds
        expected[f"acct{i:03d}"] = count
    # A little latency so that walks overlap on the wire whatever the machine's speed.
    fake.set_latency(0.005)
    counts: Counter[str] = Counter()
    sums: dict[str, Decimal] = {}
    async with AccountPool(
        accounts, base_url=fake.url, max_connections=8, max_in_flight=16
    ) as pool:
        assert len(pool) == 100
        assert pool.labels[0] == "acct000"
        async for item in pool.interest_history("USDT", concurrency=32):
            assert isinstance(item, AccountRecord)
            assert isinstance(item.record, InterestRecord)
            counts[item.account] += 1
            sums[item.account] = sums.get(item.account, Decimal(0)) + item.record.interest_amount
        # The pool's totals equal a direct read by one account's own client.
        direct = await pool["acct005"].interest_history("USDT").collect()
    assert {label: counts[label] for label in expected} == expected
    assert sums["acct005"] == sum((r.interest_amount for r in direct), Decimal(0))
    stats = fake.stats
    assert stats.connections_opened <= 8
    assert 1 < stats.max_concurrent_connections <= 8


async def test_max_in_flight_bounds_requests_and_connections(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "a", 12, borrows=1200)
    fake.set_latency(0.002)
    async with AccountPool(
        accounts, base_url=fake.url, max_connections=32, max_in_flight=3
    ) as pool:
        total = 0
        async for _ in pool.borrow_history("USDT"):
            total += 1
    assert total == 12 * 1200
    # Never more than 3 requests at once, so the connector never needed a fourth connection.
    assert fake.stats.connections_opened <= 3


async def test_failing_account_is_yielded_and_others_complete(fake: FakeKuCoin) -> None:
    good = {}
    for i in range(5):
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", repays=600 + i)
        good[f"good{i}"] = creds
    broken = fake.add_account()
    accounts = {**good, "broken": _bad(broken)}
    counts: Counter[str] = Counter()
    failures: list[AccountError] = []
    async with AccountPool(accounts, base_url=fake.url, retry=ONCE) as pool:
        async for item in pool.repay_history("USDT", errors="yield"):
            if isinstance(item, AccountError):
                failures.append(item)
            else:
                counts[item.account] += 1
    assert [f.account for f in failures] == ["broken"]
    assert isinstance(failures[0].error, AuthenticationError)
    assert counts == {f"good{i}": 600 + i for i in range(5)}


async def test_errors_raise_stops_with_pool_error_and_leaks_no_task(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "ok", 4, interest=2000)
    accounts["broken"] = _bad(fake.add_account())
    async with AccountPool(accounts, base_url=fake.url, retry=ONCE) as pool:
        with pytest.raises(PoolError) as caught:
            async for _ in pool.interest_history():
                pass
        assert "broken" in caught.value.errors
        assert isinstance(caught.value.errors["broken"], AuthenticationError)
        assert isinstance(caught.value.__cause__, AuthenticationError)
        assert "broken" in str(caught.value)
        assert _pool_tasks() == []


async def test_consumer_leaving_early_cancels_producers(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "a", 10, borrows=3000)
    async with AccountPool(accounts, base_url=fake.url) as pool:
        seen = 0
        async with contextlib.aclosing(pool.borrow_history("USDT")) as stream:
            async for _ in stream:
                seen += 1
                if seen == 10:
                    break
        assert seen == 10
        assert _pool_tasks() == []
        # The clients still work after an abandoned stream.
        page = await pool["a0"].get_borrow_history("USDT", page_size=10)
        assert page.total_num == 3000


async def test_closing_the_pool_stops_an_abandoned_stream(fake: FakeKuCoin) -> None:
    creds = fake.add_account()
    fake.seed_history(creds.api_key, "USDT", interest=5000)
    pool = AccountPool({"a": creds, "b": creds}, base_url=fake.url)
    async with pool:
        stream = pool.interest_history()
        first = await anext(stream)
        assert first.account in ("a", "b")
    # Closed with the stream suspended: its producers are gone, and so is the stream.
    assert _pool_tasks() == []
    with pytest.raises(ClientClosedError):
        async for _ in stream:
            pass
    assert pool.closed


async def test_closing_the_pool_wakes_a_waiting_consumer(fake: FakeKuCoin) -> None:
    creds = fake.add_account()
    fake.seed_history(creds.api_key, "USDT", interest=50)
    fake.set_latency(30)  # every page request stalls: the consumer waits on the queue
    pool = AccountPool({"a": creds}, base_url=fake.url)
    await pool.open()

    async def consume() -> int:
        return len([item async for item in pool.interest_history()])

    consumer = asyncio.create_task(consume())
    # The fake offers no event to wait on; its request counter is polled instead.
    while not fake.stats.requests:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(ClientClosedError):
        await consumer


async def test_gather_returns_results_and_exceptions_per_account(fake: FakeKuCoin) -> None:
    ok = fake.add_account()
    fake.seed_history(ok.api_key, "USDT", borrows=42)
    broken = _bad(fake.add_account())
    events: list[ResponseEvent] = []
    async with AccountPool(
        {"ok": ok, "broken": broken}, base_url=fake.url, retry=ONCE, on_response=events.append
    ) as pool:

        async def total(client: MarginClient) -> int:
            page = await client.get_borrow_history("USDT", page_size=10)
            return page.total_num

        results = await pool.gather(total)
    assert list(results) == ["ok", "broken"]
    assert results["ok"] == 42
    assert isinstance(results["broken"], AuthenticationError)
    assert {e.label for e in events} == {"ok", "broken"}


async def test_borrow_through_pool_clients_hits_each_account(fake: FakeKuCoin) -> None:
    accounts = {f"a{i}": fake.add_account() for i in range(3)}
    async with AccountPool(accounts, base_url=fake.url) as pool:
        results = await pool.gather(lambda c: c.borrow("USDT", Decimal("5")))
    for label, creds in accounts.items():
        assert not isinstance(results[label], Exception)
        assert fake.debt(creds.api_key, "USDT") == Decimal("5")
        assert len(fake.ledger(creds.api_key)) == 1


async def test_pool_must_be_open_and_validates_arguments(fake: FakeKuCoin) -> None:
    creds = fake.add_account()
    pool = AccountPool({"a": creds}, base_url=fake.url)
    assert "a" in pool and list(pool) == ["a"]
    with pytest.raises(ClientClosedError):
        pool["a"]
    with pytest.raises(KeyError):
        pool["nobody"]
    with pytest.raises(ValidationError):
        AccountPool({"a": creds}, max_connections=0)
    with pytest.raises(ValidationError):
        AccountPool({"a": "not credentials"})  # type: ignore[dict-item]
    async with pool:
        with pytest.raises(ValidationError):
            pool.interest_history(errors="ignore")  # type: ignore[call-overload]
        with pytest.raises(ValidationError):
            pool.interest_history(concurrency=0)
        with pytest.raises(ValidationError, match="currency"):
            pool.borrow_history("not a currency!")
        with pytest.raises(ValidationError, match="symbol"):
            pool.repay_history("BTC", is_isolated=True)
        assert "1 accounts" in repr(pool)
    with pytest.raises(ClientClosedError):
        await pool.open()


async def test_empty_pool_streams_nothing() -> None:
    async with AccountPool({}) as pool:
        assert [item async for item in pool.interest_history()] == []
        assert await pool.gather(lambda c: c.sync_clock()) == {}


# -- merge: the one mechanism behind the pool's streams ----------------------------------


async def test_merge_streams_any_walk_of_every_account(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "a", 3, borrows=700)
    fake.seed_history(accounts["a1"].api_key, "BTC", borrows=30)
    async with AccountPool(accounts, base_url=fake.url) as pool:
        merged = [
            item
            async for item in pool.merge(
                lambda c: c.borrow_history(["USDT", "BTC"], page_size=100, prefetch=2)
            )
        ]
        direct = {
            label: await pool[label].borrow_history(["USDT", "BTC"]).collect() for label in pool
        }
    assert all(isinstance(item, AccountRecord) for item in merged)
    for label in pool.labels:
        # Each account's records come in its own order (newest first), interleaved.
        assert [i.record for i in merged if i.account == label] == direct[label]
    assert Counter(i.account for i in merged) == {"a0": 700, "a1": 730, "a2": 700}


async def test_shorthands_are_merge(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "a", 2, interest=120)
    async with AccountPool(accounts, base_url=fake.url) as pool:
        short = [i async for i in pool.interest_history("USDT", start_time=10**12)]
        long = [
            i
            async for i in pool.merge(
                lambda c: c.interest_history("USDT", start_time=10**12, prefetch=2)
            )
        ]
    assert sorted(short, key=repr) == sorted(long, key=repr)
    assert len(short) == 240


async def test_merge_errors_yield_keeps_going(fake: FakeKuCoin) -> None:
    accounts = _seeded(fake, "ok", 2, borrows=50)
    accounts["broken"] = _bad(fake.add_account())
    async with AccountPool(accounts, base_url=fake.url, retry=ONCE) as pool:
        items = [i async for i in pool.merge(lambda c: c.borrow_history("USDT"), errors="yield")]
        with pytest.raises(PoolError) as caught:
            async for _ in pool.merge(lambda c: c.borrow_history("USDT")):
                pass
    errors = [i for i in items if isinstance(i, AccountError)]
    assert [e.account for e in errors] == ["broken"]
    assert len(items) == 101
    assert list(caught.value.errors) == ["broken"]


async def test_merge_checks_its_arguments_and_every_walk_when_called(fake: FakeKuCoin) -> None:
    opened: list[str | None] = []

    def walk(client: MarginClient) -> Paginator[BorrowOrder]:
        opened.append(client.label)
        return client.borrow_history("USDT")

    async with AccountPool(_seeded(fake, "a", 2), base_url=fake.url) as pool:
        with pytest.raises(ValidationError, match="errors"):
            pool.merge(walk, errors="skip")  # type: ignore[call-overload]
        with pytest.raises(ValidationError, match="concurrency"):
            pool.merge(walk, concurrency=0)
        assert opened == []
        stream = pool.merge(walk)
        assert opened == ["a0", "a1"]  # every walk opened now, not at the first item
        await stream.aclose()
        with pytest.raises(ValidationError, match="symbol"):
            pool.merge(lambda c: c.repay_history("USDT", is_isolated=True))
        with pytest.raises(TypeError, match="order_no"):
            pool.interest_history(order_no="1")  # type: ignore[call-overload]
    with pytest.raises(ClientClosedError):
        pool.merge(walk)
