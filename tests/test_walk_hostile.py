"""Paging fields a walk cannot trust: refused with a ProtocolError in bounded time, and the
walk stops at the first empty page (a tiny loopback server, see scripted_history.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from scripted_history import History, Query, borrow, now_ms

from margin_async import MarginError, Page, Paginator, ProtocolError

# Past this many requests the server refuses with a KuCoin error: an endless walk ends,
# but not with a ProtocolError.
LIMIT = 50


def _history(records: int) -> History:
    t = now_ms() - 60_000
    return History([borrow(f"{i:04d}", t - i * 1000) for i in range(records)])


def _limited(rewrite: Callable[[Query, dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    count = 0

    def apply(query: Query, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal count
        count += 1
        if count > LIMIT:
            return {"refused": True}  # not a page: the walk fails, not with paging errors
        return rewrite(query, data)

    return apply


async def _walk(history: History, **kwargs: Any) -> list[str]:
    async with history.client() as client:
        walk = client.borrow_history("USDT", page_size=10, **kwargs)
        return [order.order_no async for order in walk]


async def test_total_page_far_beyond_total_num_is_refused_at_once() -> None:
    """totalPage 10**9 with totalNum 10 and every later page empty: 85,000 requests in 20 s
    before; now page 1 is refused and nothing else is asked."""
    async with _history(10) as history:
        history.rewrite = _limited(lambda q, d: {**d, "totalPage": 10**9})
        with pytest.raises(ProtocolError, match=r"totalPage=1000000000.*totalNum=10") as info:
            await _walk(history, prefetch=8)
    assert isinstance(info.value, MarginError)
    assert history.pages_asked() == [1]


async def test_pages_that_claim_records_but_are_empty_stop_the_walk_with_an_error() -> None:
    """Consistent counters (totalNum 10**10, pageSize 10, totalPage 10**9), then empty
    pages: the first empty page that should hold records is refused."""

    def rewrite(query: Query, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "totalNum": 10**10, "totalPage": 10**9}

    async with _history(10) as history:
        history.rewrite = _limited(rewrite)
        with pytest.raises(ProtocolError, match="page 2 is empty"):
            await _walk(history, prefetch=3)
    assert len(history.queries) <= 5  # page 1, prefetch pages, one refill before the check


@pytest.mark.parametrize(
    ("field", "value"),
    [("totalNum", -1), ("totalPage", -1), ("pageSize", 0), ("pageSize", -10)],
)
async def test_negative_or_zero_paging_fields_are_refused(field: str, value: int) -> None:
    async with _history(5) as history:
        history.rewrite = _limited(lambda q, d: {**d, field: value})
        with pytest.raises(ProtocolError, match=f"{field}={value}"):
            await _walk(history)
    assert history.pages_asked() == [1]


async def test_a_page_that_is_not_the_one_asked_for_is_refused() -> None:
    """The server answers page 1 whatever is asked: before, page 1's records came again."""
    async with _history(25) as history:
        history.rewrite = _limited(lambda q, d: {**d, "currentPage": 1})
        with pytest.raises(ProtocolError, match="asked for history page 2, got currentPage=1"):
            await _walk(history, prefetch=1)


async def test_more_records_than_page_size_are_refused() -> None:
    async with _history(10) as history:
        history.rewrite = _limited(lambda q, d: {**d, "pageSize": 5, "totalPage": 2})
        with pytest.raises(ProtocolError, match="holds 10 records, more than pageSize=5"):
            await _walk(history)


async def test_total_page_below_what_total_num_needs_is_refused() -> None:
    """totalPage 1 for 25 records at 10 a page: trusting it would drop 15 records."""
    async with _history(25) as history:
        history.rewrite = _limited(lambda q, d: {**d, "totalPage": 1})
        with pytest.raises(ProtocolError, match="totalPage=1"):
            await _walk(history)


async def test_one_page_more_than_needed_is_accepted_and_its_empty_page_ends_the_walk() -> None:
    """An API that counts totalNum // pageSize + 1 pages: the extra page is empty."""
    async with _history(30) as history:
        history.rewrite = _limited(lambda q, d: {**d, "totalPage": d["totalNum"] // 10 + 1})
        records = await _walk(history, prefetch=2)
    assert records == [f"{i:04d}" for i in range(30)]
    assert sorted(history.pages_asked()) == [1, 2, 3, 4]


async def test_page_size_changing_mid_walk_is_refused() -> None:
    def rewrite(query: Query, data: dict[str, Any]) -> dict[str, Any]:
        if query["currentPage"] == "2":
            return {**data, "pageSize": 20, "totalPage": 2}
        return data

    async with _history(25) as history:
        history.rewrite = _limited(rewrite)
        with pytest.raises(ProtocolError, match="pageSize=20, page 1 had 10"):
            await _walk(history, prefetch=1)


async def test_an_empty_page_ends_a_walk_of_pages_without_http() -> None:
    """A Paginator of any fetcher stops at the first empty page, even if totalPage says
    more (the page's own totalNum agrees that nothing is left)."""
    asked: list[int] = []

    def open_walk() -> Callable[[int], Any]:
        async def fetch(n: int) -> Page[str]:
            asked.append(n)
            items = ("a", "b") if n == 1 else ()
            return Page(items, n, 2, 2, 3, None) if n > 1 else Page(items, n, 2, 2, 2, None)

        return fetch

    assert await Paginator(open_walk, prefetch=1).collect() == ["a", "b"]
    assert asked == [1, 2]
