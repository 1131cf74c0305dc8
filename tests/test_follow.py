"""Follow mode against FakeKuCoin: new records arrive exactly once, across restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import TypeVar

import pytest
from helpers import capture_logs
from scripted_history import History, Query, interest, now_ms

from margin_async import Credentials, MarginClient, ValidationError
from margin_async._follow import FollowCursor, record_key
from margin_async.testing import FakeKuCoin

T = TypeVar("T")


async def _take(stream: AsyncIterator[T], n: int) -> list[T]:
    out: list[T] = []
    async for record in stream:
        out.append(record)
        if len(out) == n:
            break
    return out


async def test_follow_yields_history_then_new_records_once_and_resumes(fake: FakeKuCoin) -> None:
    creds: Credentials = fake.add_account()
    fake.seed_history(creds.api_key, "USDT", borrows=0, repays=0, interest=1_200)
    async with MarginClient(creds, base_url=fake.url) as client:
        follower = client.interest_history("USDT", page_size=100).follow(interval=0.02)
        stream = aiter(follower)
        backlog = await _take(stream, 1_200)
        times = [r.created_time for r in backlog]
        assert times == sorted(times)  # oldest first

        async def append_later() -> None:
            for i in range(30):
                fake.append_interest(
                    creds.api_key, "USDT", Decimal(f"0.{i + 1:04d}"), Decimal("0.0001")
                )
                await asyncio.sleep(0.005)

        appender = asyncio.create_task(append_later())
        live = await _take(stream, 30)
        await appender
        assert sorted(r.interest_amount for r in live) == [
            Decimal(f"0.{i + 1:04d}") for i in range(30)
        ]
        saved = follower.cursor.dumps()
        await stream.aclose()  # type: ignore[attr-defined]

        # Records land while the pipeline is down; it restarts from the stored cursor.
        for i in range(5):
            fake.append_interest(creds.api_key, "USDT", Decimal(f"9.{i}"), Decimal("0.0001"))
        resumed = client.interest_history("USDT").follow(
            interval=0.02, cursor=FollowCursor.loads(saved)
        )
        after = await _take(aiter(resumed), 5)
        assert [r.interest_amount for r in after] == [Decimal(f"9.{i}") for i in range(5)]
        # Nothing else is pending: another poll finds no record.
        assert await resumed.poll() == []

    keys = [record_key(r) for r in backlog + live + after]
    assert len(keys) == len(set(keys)) == 1_235


async def test_follow_borrow_history_picks_up_new_borrows(fake: FakeKuCoin) -> None:
    creds = fake.add_account()
    async with MarginClient(creds, base_url=fake.url) as client:
        follower = client.borrow_history("USDT").follow(interval=0.02)
        stream = aiter(follower)
        loans = [await client.borrow("USDT", "1", time_in_force="IOC") for _ in range(3)]
        seen = [o.order_no for o in await _take(stream, 3)]
        assert seen == [loan.order_no for loan in loans]
        await stream.aclose()  # type: ignore[attr-defined]


def test_cursor_round_trips_and_rejects_garbage() -> None:
    cursor = FollowCursor(1_700_000_000_000, (("a", 1_700_000_000_000),))
    assert FollowCursor.loads(cursor.dumps()) == cursor
    with pytest.raises(ValidationError):
        FollowCursor.loads("{not json")
    with pytest.raises(ValidationError):
        FollowCursor.loads('{"since": "x", "seen": []}')


# -- hostile times, identical records, streaming, records without a time -------------


async def _within(stream: AsyncIterator[T], n: int, seconds: float = 10.0) -> list[T]:
    """The next ``n`` records, or a failure instead of waiting forever (records that a
    broken cursor skips never come)."""
    return await asyncio.wait_for(_take(stream, n), seconds)


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(lambda now: now * 1000, id="microseconds"),
        pytest.param(lambda now: now + 86_400_000, id="a-day-ahead"),
        pytest.param(lambda now: now - 400 * 86_400_000, id="a-year-before-the-window"),
    ],
)
async def test_a_record_stamped_outside_the_window_does_not_hide_later_ones(
    stamp: Callable[[int], int],
) -> None:
    """The server returns a record whose createdTime is outside the window it selected it
    for: before, the cursor jumped to it and every later record was lost (across restarts
    too). Now it is logged and skipped; the cursor stays on the exchange's clock."""
    base = now_ms() - 300_000
    history = History([interest(f"0.{i}", base + i * 1000) for i in range(5)])
    async with history, history.client() as client:
        follower = client.interest_history("USDT").follow(interval=0.01)
        stream = aiter(follower)
        assert len(await _within(stream, 5)) == 5
        with capture_logs(logging.WARNING) as logs:
            now = now_ms()
            history.add(interest("6.66", stamp(now), filed=now - 1))
            await asyncio.sleep(0.05)  # a few polls meet it
            history.add(interest("1.0", now_ms()), interest("2.0", now_ms() + 1))
            later = await _within(stream, 2)
        assert [str(r.interest_amount) for r in later] == ["1.0", "2.0"]
        assert follower.cursor.since <= now_ms()
        warned = [r for r in logs if "outside the window" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING  # once, not per poll
        saved = follower.cursor.dumps()
        await stream.aclose()  # type: ignore[attr-defined]

        history.add(interest("3.0", now_ms() + 2))
        resumed = client.interest_history("USDT").follow(
            interval=0.01, cursor=FollowCursor.loads(saved)
        )
        after = await _within(aiter(resumed), 1)
    assert [str(r.interest_amount) for r in after] == ["3.0"]


async def test_an_exchange_clock_that_jumps_ahead_and_back(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    """The exchange's clock runs an hour ahead (records are stamped then), then comes back:
    before, the cursor stayed an hour ahead and every later record was lost."""
    fake.append_interest(creds.api_key, "USDT", "1", "0.0001", fake.now_ms() - 600_000)
    async with MarginClient(creds, base_url=fake.url) as client:
        follower = client.interest_history("USDT").follow(interval=0.02)
        stream = aiter(follower)
        assert len(await _within(stream, 1)) == 1
        fake.set_clock_skew(3_600_000)
        fake.append_interest(creds.api_key, "USDT", "2", "0.0001")
        ahead = await _within(stream, 1)
        fake.set_clock_skew(0)
        fake.append_interest(creds.api_key, "USDT", "3", "0.0001")
        back = await _within(stream, 1)
        assert follower.cursor.since <= fake.now_ms()
        await stream.aclose()  # type: ignore[attr-defined]
    assert [r.interest_amount for r in ahead + back] == [Decimal("2"), Decimal("3")]


async def test_identical_interest_records_are_two_records(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    """Two identical charges (same currency, ratio, amount and time) are two records: each
    delivered once, across polls and across a restart from a stored cursor."""
    t = fake.now_ms() - 30_000
    for _ in range(2):
        fake.append_interest(creds.api_key, "USDT", "0.5", "0.0001", t)
    async with MarginClient(creds, base_url=fake.url) as client:
        follower = client.interest_history("USDT").follow(interval=0.02)
        stream = aiter(follower)
        both = await _within(stream, 2)
        assert both[0] == both[1]
        assert await follower.poll() == []  # the next poll meets both, delivers neither
        saved = follower.cursor.dumps()
        await stream.aclose()  # type: ignore[attr-defined]

        fake.append_interest(creds.api_key, "USDT", "0.5", "0.0001", t)  # a third one
        resumed = client.interest_history("USDT").follow(
            interval=0.02, cursor=FollowCursor.loads(saved)
        )
        third = await _within(aiter(resumed), 1)
        assert third == both[:1]
        sent = fake.stats.requests["GET /api/v3/margin/interest"]
        assert await resumed.poll() == []
        assert fake.stats.requests["GET /api/v3/margin/interest"] - sent == 1  # idle: 1 request
    assert [key for key, _ in FollowCursor.loads(saved).seen].count(record_key(both[0])) == 2


def test_cursor_counts_identical_records_and_reads_the_old_format() -> None:
    twice = FollowCursor(1_700_000_000_000, (("k", 1_700_000_000_000),) * 2)
    assert FollowCursor.loads(twice.dumps()) == twice
    old = '{"since": 1700000000000, "seen": [["a", 1700000000000], ["b", 1699999999000]]}'
    assert FollowCursor.loads(old).seen == (("a", 1_700_000_000_000), ("b", 1_699_999_999_000))


async def test_the_first_poll_streams_the_backlog(fake: FakeKuCoin, creds: Credentials) -> None:
    """3,000 records in 30 pages: the oldest comes after a few pages, not after all of them
    (before: 300k records took 300 MiB and 61 s before the first one)."""
    fake.seed_history(creds.api_key, "USDT", interest=3_000, end_time=fake.now_ms() - 120_000)
    route = "GET /api/v3/margin/interest"
    async with MarginClient(creds, base_url=fake.url) as client:
        truth = await client.interest_history("USDT").collect()
        before = fake.stats.requests[route]
        follower = client.interest_history("USDT", page_size=100, prefetch=2).follow(interval=0.02)
        stream = aiter(follower)
        first = await _within(stream, 1)
        asked = fake.stats.requests[route] - before
        rest = await _within(stream, 2_999)
        await stream.aclose()  # type: ignore[attr-defined]
    assert asked <= 1 + 2 + 1  # page 1, the last page, the prefetched ones
    assert first + rest == truth[::-1]  # oldest first, each once


async def test_a_record_without_a_time_is_delivered_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = now_ms() - 300_000
    entries = [interest(f"0.{i}", base + i * 1000) for i in range(3)]
    entries.append(interest("9.9", None, filed=base + 1500))
    async with History(entries) as history, history.client() as client:
        follower = client.interest_history("USDT").follow(interval=0.01)
        stream = aiter(follower)
        got = await _within(stream, 4)
        assert sorted(str(r.interest_amount) for r in got) == ["0.0", "0.1", "0.2", "9.9"]
        assert follower.cursor.since == base + 2000  # the timeless record did not move it
        assert await follower.poll() == []
        saved = follower.cursor.dumps()
        await stream.aclose()  # type: ignore[attr-defined]
        history.add(interest("1.1", now_ms()))
        resumed = client.interest_history("USDT").follow(
            interval=0.01, cursor=FollowCursor.loads(saved)
        )
        after = await _within(aiter(resumed), 1)
    assert [str(r.interest_amount) for r in after] == ["1.1"]


@pytest.mark.parametrize("change", ["insert", "delete"])
async def test_a_backlog_that_shifts_while_it_streams(change: str) -> None:
    """A record is posted or removed among the older records while the backlog streams
    from the last page to the first: every record is delivered once."""
    base = now_ms() - 50_000
    entries = [interest(f"0.{i:02d}", base + i * 1000) for i in range(45)]
    late = interest("7.7", base + 5_500)
    async with History(entries) as history:
        asked: list[str] = []

        def before(query: Query) -> None:
            asked.append(query["currentPage"])
            if asked.count("3") == 1 and query["currentPage"] == "3":
                if change == "insert":
                    history.add(late)
                else:
                    history.remove(entries[3])  # delivered with page 5

        history.before = before
        async with history.client() as client:
            follower = client.interest_history("USDT", page_size=10, prefetch=1).follow(
                interval=0.01
            )
            stream = aiter(follower)
            got = await _within(stream, 46 if change == "insert" else 45)
            assert await follower.poll() == []
            await stream.aclose()  # type: ignore[attr-defined]
    want = [str(e.wire["interestAmount"]) for e in entries]
    if change == "insert":
        want.append("7.7")
    assert sorted(str(r.interest_amount) for r in got) == sorted(want)


async def test_batches_deliver_the_same_records_a_page_at_a_time(fake: FakeKuCoin) -> None:
    creds = fake.add_account()
    fake.seed_history(creds.api_key, "USDT", borrows=0, repays=0, interest=1_050)
    async with MarginClient(creds, base_url=fake.url) as client:
        one_by_one = await _take(
            aiter(client.interest_history("USDT", page_size=100).follow(interval=0.02)), 1_050
        )
        follower = client.interest_history("USDT", page_size=100).follow(interval=0.02)
        batches = follower.batches()
        got: list[object] = []
        async for batch in batches:
            assert batch, "never an empty list"
            got += batch
            # The cursor is the position after the whole list: resuming from it yields
            # none of these records again.
            assert follower.cursor.since == max(r.created_time for r in got)
            if len(got) >= 1_050:
                break
        await batches.aclose()  # type: ignore[attr-defined]
        assert got == one_by_one
        for i in range(3):
            fake.append_interest(creds.api_key, "USDT", Decimal(f"7.{i}"), Decimal("0.0001"))
        resumed = client.interest_history("USDT").follow(interval=0.02, cursor=follower.cursor)
        after = await _take(aiter(resumed), 3)
        assert [r.interest_amount for r in after] == [Decimal(f"7.{i}") for i in range(3)]
