"""Walking a paged history: ``currentPage`` 1..``totalPage``, yielded in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from margin_async.errors import ValidationError
from margin_async.models import Page

if TYPE_CHECKING:
    from margin_async.follow import FollowCursor, Follower

__all__ = ["PageFetcher", "Paginator"]

T = TypeVar("T")

#: Fetches page ``n`` (1-based) of one walk, whose filters are fixed when the walk starts.
#: It may return the page as decoded JSON, for the paginator's ``parse`` to turn into a
#: :class:`Page` when the page's turn comes.
PageFetcher = Callable[[int], Awaitable[Any]]


def _already_parsed(page: Any) -> Page[Any]:
    if not isinstance(page, Page):
        raise TypeError(f"the page fetcher returned {type(page).__name__}, not a Page")
    return page


class Paginator(Generic[T]):
    """Every record of a history, page after page, without the caller seeing pages.

    ``async for record in paginator`` yields records newest first; :meth:`pages`
    yields whole pages; :meth:`collect` returns a list. Each iteration is a new walk.
    After the first page tells ``totalPage``, up to ``prefetch`` following pages are
    fetched concurrently and still yielded in order; memory holds at most that many
    pages. A failing page raises to the caller; leaving the loop early (``break``,
    cancellation, an error) cancels the pages in flight.

    ``parse`` turns what the fetcher returned into a :class:`Page`; it runs when a page
    is handed over, after the next fetches are on their way, so decoding overlaps the
    network instead of delaying the next requests (default: the fetcher returns pages).
    """

    __slots__ = ("_open_walk", "_open_window", "_parse", "_prefetch", "_start_time")

    def __init__(
        self,
        open_walk: Callable[[], PageFetcher],
        *,
        prefetch: int = 4,
        parse: Callable[[Any], Page[T]] = _already_parsed,
        open_window: Callable[[int], PageFetcher] | None = None,
        start_time: int = 0,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValidationError("prefetch", f"must be an int >= 1, got {prefetch!r}")
        self._open_walk = open_walk
        self._prefetch = prefetch
        self._parse = parse
        #: Opens a walk of the same filters from a given start time up to now (follow mode).
        self._open_window = open_window
        self._start_time = start_time

    def follow(
        self,
        *,
        interval: float = 5.0,
        cursor: FollowCursor | None = None,
        overlap_ms: int = 60_000,
    ) -> Follower[T]:
        """Yield new records forever, oldest first, polling every ``interval`` seconds.

        Without ``cursor`` the stream starts at the filters' ``start_time`` (so the
        existing history comes first). Store ``follower.cursor`` (a small value with
        ``dumps()``/``loads()``) and pass it back to resume with no gap and no repeat.
        """
        from margin_async.follow import FollowCursor, Follower

        if self._open_window is None:
            raise TypeError("this paginator cannot follow: it has no time-window query")
        start = cursor if cursor is not None else FollowCursor(self._start_time)
        return Follower(
            self._open_window,
            parse=self._parse,
            cursor=start,
            interval=interval,
            overlap_ms=overlap_ms,
            prefetch=self._prefetch,
        )

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def collect(self) -> list[T]:
        """Every record of the walk, as a list (mind the memory on long histories)."""
        records: list[T] = []
        async for page in self.pages():
            records.extend(page.items)
        return records

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield each page in order, ``currentPage`` 1 to ``totalPage``."""
        fetch = self._open_walk()
        parse = self._parse
        first = parse(await fetch(1))
        total = first.total_page
        if total <= 1 or not first.items:
            yield first
            return
        in_flight: deque[asyncio.Task[Any]] = deque()
        next_page = 2

        async def top_up() -> None:
            nonlocal next_page
            if next_page > total or len(in_flight) >= self._prefetch:
                return
            while next_page <= total and len(in_flight) < self._prefetch:
                in_flight.append(asyncio.ensure_future(fetch(next_page)))
                next_page += 1
            # Let the new fetches send their requests now: awaiting a page that is
            # already here would not give them a turn before the next parse.
            await asyncio.sleep(0)

        try:
            await top_up()
            yield first
            while in_flight:
                raw = await in_flight.popleft()
                # Refill before parsing and handing the page over, so the network works
                # while this process decodes and the caller consumes.
                await top_up()
                yield parse(raw)
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
