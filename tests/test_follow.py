"""Follow mode against FakeKuCoin: new records arrive exactly once, across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from margin_async import Credentials, InterestRecord, MarginClient, ValidationError
from margin_async.follow import FollowCursor, record_key
from margin_async.testing import FakeKuCoin


async def _take(stream: AsyncIterator[InterestRecord], n: int) -> list[InterestRecord]:
    out: list[InterestRecord] = []
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
