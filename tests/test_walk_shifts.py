"""Records posted or removed inside the pinned window while a walk runs: pages shift
(newest first: an insert pushes a record onto the next page, a delete pulls one back),
and the walk must still hand over every record that was there, once.

A record that appears in the part already walked is not handed over by this walk (it
was not there when the walk passed; the next walk or a follow sees it)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from scripted_history import Entry, History, Query, interest, now_ms

from margin_async import Credentials, InterestRecord, MarginClient, Paginator, ProtocolError
from margin_async._follow import record_key
from margin_async.testing import FakeKuCoin

PAGE = 10


def _records(count: int) -> list[Entry]:
    """``count`` interest records a second apart, newest first, with identical twins
    (same amount, same time) and a run of one time across the boundary of pages 2/3."""
    t = now_ms() - 600_000
    entries: list[Entry] = []
    for i in range(count):
        created = t - i * 1000
        if 17 <= i <= 22:
            created = t - 17_000  # six records of one time, across pages 2 and 3
        amount = f"0.{i:04d}"
        if i in (18, 19, 20):
            amount = "0.9999"  # three identical records (same time, same amount)
        if i in (33, 34):
            created, amount = t - 33_000, "0.3333"  # twins at the boundary of pages 4/5
        entries.append(interest(amount, created))
    return entries


def _keys(entries: list[Entry]) -> Counter[str]:
    return Counter(
        f"USDT|{e.wire['createdTime']}|{e.wire['interestAmount']}|{e.wire['dayRatio']}"
        for e in entries
    )


async def _walk(history: History, prefetch: int) -> Counter[str]:
    async with history.client() as client:
        walk = client.interest_history("USDT", page_size=PAGE, prefetch=prefetch)
        return Counter([record_key(r) async for r in walk])


def _on_first_ask(page: int, change: Any) -> Any:
    done = False

    def before(query: Query) -> None:
        nonlocal done
        if not done and query.get("currentPage") == str(page):
            done = True
            change()

    return before


@pytest.mark.parametrize("prefetch", [1, 4])
async def test_an_insert_into_the_walked_part_repeats_nothing(prefetch: int) -> None:
    """A late posting between records of page 1 pushes page 2's last record onto page 3:
    before, it was handed over twice."""
    entries = _records(45)
    truth = _keys(entries)
    async with History(entries) as history:
        late = interest("7.7777", entries[1].filed - 500)
        history.before = _on_first_ask(3, lambda: history.add(late))
        got = await _walk(history, prefetch)
    assert got == truth


@pytest.mark.parametrize("prefetch", [1, 4])
async def test_a_delete_from_the_walked_part_loses_nothing(prefetch: int) -> None:
    """A record of page 1 disappears: page 3's first record moves back onto page 2, which
    was read already; before, it was lost."""
    entries = _records(45)
    truth = _keys(entries)  # the deleted record was handed over with page 1
    async with History(entries) as history:
        history.before = _on_first_ask(3, lambda: history.remove(entries[2]))
        got = await _walk(history, prefetch)
    assert got == truth


async def test_a_delete_ahead_of_the_walk_is_not_handed_over() -> None:
    entries = _records(45)
    gone = entries[40]
    truth = _keys(entries) - _keys([gone])
    async with History(entries) as history:
        history.before = _on_first_ask(3, lambda: history.remove(gone))
        got = await _walk(history, 2)
    assert got == truth


async def test_one_of_identical_records_deleted_at_the_boundary() -> None:
    """Three identical records straddle pages 2/3; one goes after page 2 handed over two.
    Identical records cannot be told apart: the two handed over are the two left, so the
    walk hands over none of them again (it counts them; a set would have kept one)."""
    entries = _records(45)
    truth = _keys(entries) - _keys([entries[18]])
    async with History(entries) as history:
        history.before = _on_first_ask(3, lambda: history.remove(entries[18]))
        got = await _walk(history, 1)
    assert got == truth
    assert got[record_key_of(entries[18])] == 2


async def test_identical_records_at_a_boundary_all_come_when_one_is_posted_late() -> None:
    entries = _records(45)
    truth = _keys(entries)
    async with History(entries) as history:
        late = interest("7.7777", entries[3].filed - 1)
        history.before = _on_first_ask(4, lambda: history.add(late))
        got = await _walk(history, 1)
    assert got == truth
    assert got[record_key_of(entries[33])] == 2


def record_key_of(entry: Entry) -> str:
    return next(iter(_keys([entry])))


@pytest.mark.parametrize("seed", range(6))
async def test_many_changes_during_a_walk(seed: int) -> None:
    """Before each page, records are posted or removed anywhere in the window. Every
    record present throughout is handed over once; nothing is handed over twice beyond
    the identical records that existed; nothing that never existed appears."""
    rng = random.Random(seed)
    entries = _records(80)
    ever = _keys(entries)
    removed: list[Entry] = []
    async with History(entries) as history:
        low, high = entries[-1].filed, entries[0].filed

        def change(_: Query) -> None:
            if rng.random() < 0.5 and len(history.entries) > 10:
                victim = rng.choice(history.entries)
                history.remove(victim)
                removed.append(victim)
            else:
                late = interest(f"5.{rng.randrange(10**6):06d}", rng.randint(low, high))
                history.add(late)
                ever.update(_keys([late]))

        history.before = change
        got = await _walk(history, rng.choice([1, 2, 5]))
        throughout = _keys([e for e in entries if e not in removed])
    assert not throughout - got, "a record present throughout the walk was lost"
    assert not got - ever, "a record was handed over more often than it ever existed"


async def test_a_history_that_never_settles_is_refused() -> None:
    """totalNum moves on every reply and page 1 brings nothing new: after a bounded
    number of re-reads, an error (not an endless walk)."""
    entries = _records(45)
    flips = 0
    first: dict[str, Any] = {}

    def rewrite(query: Query, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal flips
        flips += 1
        if query["currentPage"] == "1":
            data = first.setdefault("data", data)  # always the first page 1
        total = data["totalNum"] + flips
        return {**data, "totalNum": total, "totalPage": -(-total // PAGE)}

    async with History(entries) as history:
        history.rewrite = rewrite
        with pytest.raises(ProtocolError, match="changed 9 times in a row"):
            await _walk(history, 1)
    assert len(history.queries) < 40


async def test_fake_late_posting_inside_the_window_is_not_repeated(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    """Against FakeKuCoin: an interest record is posted with a time between page 1's
    records while page 2 is on its way (slow fake)."""
    fake.seed_history(creds.api_key, "USDT", interest=60, end_time=fake.now_ms() - 60_000)
    async with MarginClient(creds, base_url=fake.url) as client:
        truth = Counter(record_key(r) for r in await client.interest_history("USDT").collect())
        fake.set_latency(0.1)
        got: Counter[str] = Counter()
        walk = client.interest_history("USDT", page_size=PAGE, prefetch=1)
        async for page in walk.pages():
            got.update(record_key(r) for r in page.items)
            if page.current_page == 1:
                newest, second = page.items[0].created_time, page.items[1].created_time
                assert newest is not None and second is not None and newest - second > 1
                fake.append_interest(
                    creds.api_key, "USDT", Decimal("7"), Decimal("0.0001"), second + 1
                )
        await asyncio.sleep(0)
    assert got == truth
    assert all(isinstance(k, str) for k in got)
    assert InterestRecord  # the walk typed its records


async def test_a_shift_among_too_many_records_of_one_time_is_refused() -> None:
    """Nine pages of records of one millisecond, then the history changes: the walk
    cannot tell which of them it handed over, and says so instead of guessing."""
    t = now_ms() - 600_000
    entries = [interest(f"0.{i:04d}", t) for i in range(95)]
    async with History(entries) as history:
        history.before = _on_first_ask(10, lambda: history.remove(entries[0]))
        with pytest.raises(ProtocolError, match="share one time"):
            await _walk(history, 1)


def test_a_paginator_without_a_time_window_cannot_follow() -> None:
    async def fetch(n: int) -> Any:
        raise AssertionError

    with pytest.raises(TypeError, match="cannot follow"):
        Paginator(lambda: fetch).follow()
