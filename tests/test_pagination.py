"""Paginator: order, prefetch bounds, errors, early exit and cancellation (no HTTP), and the
pinned end_time of a client walk (aioresponses)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from helpers import BORROW_PATH, borrow_item, client, ok, page, url_re

from margin_async import Page, Paginator, ValidationError

Fetch = Callable[[int], Awaitable[Page[str]]]


def make_page(n: int, total: int, per_page: int = 3, last: int | None = None) -> Page[str]:
    count = per_page if n < total or last is None else last
    if total == 0:
        count = 0
    items = tuple(f"p{n}-{i}" for i in range(count))
    total_num = 0 if total == 0 else (total - 1) * per_page + (per_page if last is None else last)
    return Page(items, n, per_page, total_num, total, 1729657580449)


class Walks:
    """A fake history of ``total`` pages; records walks, fetches and concurrency."""

    def __init__(
        self,
        total: int,
        *,
        per_page: int = 3,
        last: int | None = None,
        delay: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.total = total
        self.per_page = per_page
        self.last = last
        self.delay = delay
        self.walks = 0
        self.fetched: list[int] = []
        self.completed: list[int] = []
        self.cancelled: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def open_walk(self) -> Fetch:
        self.walks += 1

        async def fetch(n: int) -> Page[str]:
            self.fetched.append(n)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay is not None:
                    await self.delay(n)
                else:
                    for _ in range(3):
                        await asyncio.sleep(0)
                self.completed.append(n)
                return make_page(n, self.total, self.per_page, self.last)
            except asyncio.CancelledError:
                self.cancelled.append(n)
                raise
            finally:
                self.in_flight -= 1

        return fetch

    def expected(self) -> list[str]:
        out: list[str] = []
        for n in range(1, max(self.total, 1) + 1):
            out.extend(make_page(n, self.total, self.per_page, self.last).items)
        return out


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_zero_records() -> None:
    walks = Walks(0)
    paginator = Paginator(walks.open_walk, prefetch=4)
    pages = [p async for p in paginator.pages()]
    assert [p.items for p in pages] == [()]
    assert pages[0].total_page == 0
    assert [r async for r in paginator] == []
    assert await paginator.collect() == []
    assert walks.fetched == [1, 1, 1]


async def test_one_page() -> None:
    walks = Walks(1)
    assert await Paginator(walks.open_walk).collect() == ["p1-0", "p1-1", "p1-2"]
    assert walks.fetched == [1]


@pytest.mark.parametrize("prefetch", [1, 2, 3, 8, 50])
async def test_many_pages_in_order(prefetch: int) -> None:
    walks = Walks(12)
    records = [r async for r in Paginator(walks.open_walk, prefetch=prefetch)]
    assert records == walks.expected()
    assert sorted(walks.fetched) == list(range(1, 13))
    assert walks.max_in_flight <= prefetch


async def test_last_page_short() -> None:
    walks = Walks(4, per_page=5, last=2)
    pages = [p async for p in Paginator(walks.open_walk, prefetch=2).pages()]
    assert [len(p.items) for p in pages] == [5, 5, 5, 2]
    assert [p.current_page for p in pages] == [1, 2, 3, 4]


async def test_empty_first_page_stops_the_walk() -> None:
    """totalPage says more but the first page is empty: nothing further is fetched."""

    def open_walk() -> Fetch:
        async def fetch(n: int) -> Page[str]:
            assert n == 1
            return Page((), 1, 10, 0, 5, 1)

        return fetch

    assert await Paginator(open_walk).collect() == []


async def test_prefetch_yields_in_order_when_later_pages_finish_first() -> None:
    page3_done = asyncio.Event()
    finished: list[int] = []

    async def delay(n: int) -> None:
        if n == 2:
            await page3_done.wait()  # page 2 cannot finish before page 3
        if n == 3:
            page3_done.set()
        finished.append(n)

    walks = Walks(5, delay=delay)
    pages = [p.current_page async for p in Paginator(walks.open_walk, prefetch=3).pages()]
    assert pages == [1, 2, 3, 4, 5]
    assert finished.index(3) < finished.index(2)


@pytest.mark.parametrize("prefetch", [1, 2, 4, 7])
async def test_at_most_prefetch_in_flight(prefetch: int) -> None:
    async def delay(n: int) -> None:
        for _ in range(n % 4 + 1):
            await asyncio.sleep(0)

    walks = Walks(30, delay=delay)
    pages = 0
    async for _ in Paginator(walks.open_walk, prefetch=prefetch).pages():
        pages += 1
        await settle()  # a slow consumer: fetches pile up as far as they may
    assert pages == 30
    assert walks.max_in_flight == prefetch


async def test_failing_middle_page_raises_and_leaves_no_tasks() -> None:
    gate = asyncio.Event()

    class Boom(Exception):
        pass

    async def delay(n: int) -> None:
        if n == 4:
            raise Boom("page 4 failed")
        if n > 4:
            await gate.wait()  # still in flight when page 4 fails

    walks = Walks(10, delay=delay)
    seen: list[int] = []
    with pytest.raises(Boom, match="page 4 failed"):
        async for p in Paginator(walks.open_walk, prefetch=3).pages():
            seen.append(p.current_page)
    assert seen == [1, 2, 3]
    # Every fetch that started and did not finish was cancelled (a task cancelled before
    # it ever ran does not start its fetch at all).
    assert sorted(walks.cancelled) == sorted(set(walks.fetched) - set(walks.completed) - {4})
    assert max(walks.fetched) <= 6
    assert walks.in_flight == 0
    assert only_current_task_left()


async def test_failing_first_page_raises() -> None:
    def open_walk() -> Fetch:
        async def fetch(n: int) -> Page[str]:
            raise LookupError("first")

        return fetch

    with pytest.raises(LookupError, match="first"):
        await Paginator(open_walk).collect()


def _blocking(after: int) -> Callable[[int], Awaitable[None]]:
    """Pages up to ``after`` complete; later ones wait forever (until cancelled)."""
    never = asyncio.Event()

    async def delay(n: int) -> None:
        await asyncio.sleep(0)
        if n > after:
            await never.wait()

    return delay


async def test_break_with_aclosing_cancels_in_flight() -> None:
    walks = Walks(20, delay=_blocking(2))
    paginator = Paginator(walks.open_walk, prefetch=4)
    async with contextlib.aclosing(paginator.pages()) as pages:
        async for p in pages:
            if p.current_page == 2:
                await settle()  # let every prefetched page start
                break
    assert sorted(walks.cancelled) == [3, 4, 5, 6]
    assert walks.in_flight == 0
    assert only_current_task_left()


async def test_break_from_item_loop_cancels_in_flight() -> None:
    walks = Walks(20, delay=_blocking(2))
    async for record in Paginator(walks.open_walk, prefetch=4):
        if record == "p2-1":
            await settle()  # let every prefetched page start
            break
    await settle()  # the abandoned generators are closed by the event loop's finalizer
    assert sorted(walks.cancelled) == [3, 4, 5, 6]
    assert walks.in_flight == 0
    assert only_current_task_left()


async def test_cancelling_the_consumer_cancels_in_flight_pages() -> None:
    walks = Walks(20, delay=_blocking(1))
    started = asyncio.Event()

    async def consume() -> None:
        async for p in Paginator(walks.open_walk, prefetch=3).pages():
            started.set()
            assert p.current_page == 1

    task = asyncio.create_task(consume())
    await started.wait()
    await settle()
    assert walks.in_flight == 3  # pages 2, 3, 4 waiting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    assert sorted(walks.cancelled) == [2, 3, 4]
    assert walks.in_flight == 0
    assert only_current_task_left()


async def test_collect() -> None:
    walks = Walks(3, last=1)
    assert await Paginator(walks.open_walk, prefetch=2).collect() == walks.expected()


async def test_each_iteration_is_a_fresh_walk() -> None:
    walks = Walks(3)
    paginator = Paginator(walks.open_walk, prefetch=2)
    assert walks.walks == 0  # nothing happens until iterated
    first = await paginator.collect()
    second = [r async for r in paginator]
    third = [p async for p in paginator.pages()]
    assert first == second == walks.expected()
    assert len(third) == 3
    assert walks.walks == 3
    assert sorted(walks.fetched) == sorted([1, 2, 3] * 3)


@pytest.mark.parametrize("prefetch", [0, -1, True, 2.0, "4", None])
def test_prefetch_validated(prefetch: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Paginator(Walks(1).open_walk, prefetch=prefetch)
    assert info.value.argument == "prefetch"


# -- through MarginClient --------------------------------------------------------------


def _walk_pages(total: int, per_page: int = 2) -> list[dict[str, Any]]:
    """``total`` pages of ``per_page`` borrow orders, with paging fields that agree."""
    return [
        page(
            [
                borrow_item(orderNo=f"{n:04d}-{i}", createdTime=1729657580449 - n * 1000 - i)
                for i in range(per_page)
            ],
            current_page=n,
            page_size=per_page,
            total_num=total * per_page,
            total_page=total,
        )
        for n in range(1, total + 1)
    ]


def _paged_callback(total: int, seen: list[dict[str, str]]) -> Callable[..., Any]:
    pages = _walk_pages(total)

    async def callback(url: Any, **_: Any) -> CallbackResult:
        query = dict(url.query)
        seen.append(query)
        await asyncio.sleep(0.002)  # let the clock move between pages
        return CallbackResult(payload=ok(pages[int(query["currentPage"]) - 1]))

    return callback


async def test_client_walk_pins_end_time(mock: aioresponses) -> None:
    seen: list[dict[str, str]] = []
    mock.get(url_re(BORROW_PATH), callback=_paged_callback(5, seen), repeat=True)
    before = time.time_ns() // 1_000_000
    async with client() as c:
        walk = c.borrow_history("USDT", page_size=10, prefetch=2)
        records = [r async for r in walk]
        first_walk = list(seen)
        seen.clear()
        await asyncio.sleep(0.002)
        await walk.collect()
    after = time.time_ns() // 1_000_000
    assert len(records) == 10
    assert sorted(int(q["currentPage"]) for q in first_walk) == [1, 2, 3, 4, 5]
    ends = {q["endTime"] for q in first_walk}
    assert len(ends) == 1
    (end,) = ends
    assert before <= int(end) <= after
    # A new iteration is a new walk, pinned anew.
    assert len({q["endTime"] for q in seen}) == 1
    assert int(seen[0]["endTime"]) > int(end)
    assert all(q["pageSize"] == "10" and q["currency"] == "USDT" for q in first_walk + seen)


async def test_client_walk_keeps_caller_end_time(mock: aioresponses) -> None:
    seen: list[dict[str, str]] = []
    mock.get(url_re(BORROW_PATH), callback=_paged_callback(3, seen), repeat=True)
    async with client() as c:
        await c.borrow_history(
            "USDT", start_time=1700000000000, end_time=1729657580449, prefetch=3
        ).collect()
    assert len(seen) == 3
    assert {q["endTime"] for q in seen} == {"1729657580449"}
    assert {q["startTime"] for q in seen} == {"1700000000000"}


async def test_client_walk_default_page_size_is_500(mock: aioresponses) -> None:
    seen: list[dict[str, str]] = []
    mock.get(url_re(BORROW_PATH), callback=_paged_callback(1, seen), repeat=True)
    async with client() as c:
        await c.borrow_history("USDT").collect()
    assert seen[0]["pageSize"] == "500"
