"""One walk of a history: filters, the window pinned to the exchange's clock, pages.

A walk (:func:`history_walk`) pins its window's end to the exchange's "now" when it
reads page 1, so that records arriving meanwhile fall after it and cannot shift pages.
A record posted late *inside* the window still can: when a page's ``totalNum`` differs
from page 1's, the walk goes on from the last stable point instead: the time of the
oldest record handed over (records are newest first), re-reading the window up to just
after it and skipping, by count, the records it already handed over there.

Follow mode (:mod:`margin_async._follow`) builds on the same windows: each poll is one
window, read from its last page to its first.
"""

from __future__ import annotations

import weakref
from collections import Counter, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from margin_async._convert import page_server_time, structure
from margin_async._endpoints._params import HistoryFilter, HistorySpec
from margin_async._errors import ProtocolError
from margin_async._follow import FollowCursor, Follower, Window, created_ms, record_key
from margin_async._models import Page
from margin_async._pagination import InFlight, PageFetcher, Paginator, WalkGroup, check_page
from margin_async._session import CLOCK_TOLERANCE_MS, Session, Timing

__all__ = ["close_walks", "history_walk"]

T = TypeVar("T")

# Pages handed over that a walk keeps to find its place again after a shift: the last
# one, and more only while their records share the oldest time (or have none).
_TAIL_PAGES = 8

_GROUPS: weakref.WeakKeyDictionary[Session, WalkGroup] = weakref.WeakKeyDictionary()


def _group(session: Session) -> WalkGroup:
    group = _GROUPS.get(session)
    if group is None:
        group = _GROUPS[session] = WalkGroup()
    return group


async def close_walks(session: Session) -> None:
    """Cancel the page fetches of every walk and follow poll over ``session``, and wait."""
    group = _GROUPS.get(session)
    if group is not None:
        await group.close()


class _Window:
    """Fetches the pages of one window of a history.

    Unless ``fixed``, page 1 (read alone, first) pins the window: its end to the
    exchange's "now", and for a follow poll its start ``overlap`` before ``since`` (or
    before that "now", when ``since`` is ahead of the exchange's clock).
    """

    __slots__ = ("_base", "_overlap", "_session", "_since", "_size", "_spec", "filters", "served")

    def __init__(
        self,
        session: Session,
        spec: HistorySpec[Any],
        base: HistoryFilter,
        size: int,
        *,
        since: int | None = None,
        overlap: int = 0,
        fixed: bool = False,
    ) -> None:
        self._session = session
        self._spec = spec
        self._base = base
        self._size = size
        self._since = since
        self._overlap = overlap
        #: The window's filters, once pinned.
        self.filters: HistoryFilter | None = base if fixed else None
        #: The exchange's time on page 1, if it said.
        self.served: int | None = None

    async def __call__(self, page: int) -> Any:
        session, spec, size = self._session, self._spec, self._size
        if self.filters is not None:
            return await session.request(spec.request(self.filters, page, size))
        # Page 1, alone: pin the window. The end is the exchange's "now", so that
        # records arriving during the walk fall after it and cannot shift pages.
        walk = self._pin(session.now_ms())
        timing = Timing()
        data = await session.request(spec.request(walk, page, size), timing=timing)
        served = page_server_time(data)
        assert walk.end_time is not None
        if served is not None:
            # Page 1's server time corrects the clock estimate, so the next walk pins
            # on the exchange's clock from the start.
            session.observe_server_time(served, timing)
            if walk.end_time - CLOCK_TOLERANCE_MS <= served < walk.end_time:
                # Our clock was ahead: nothing newer than ``served`` existed when page 1
                # was served, so the later pages end there (page 1 is not read again),
                # and records stamped meanwhile cannot shift them.
                walk = attrs.evolve(walk, end_time=max(walk.start_time or 0, served))
        self.filters = walk
        self.served = served
        return data

    def _pin(self, now: int) -> HistoryFilter:
        base = self._base
        end = now if base.end_time is None else min(base.end_time, now)
        start = base.start_time
        if self._since is not None:
            after = max(0, min(self._since, end) - self._overlap)
            start = after if start is None else max(start, after)
        if start is not None:
            end = max(start, end)
        return attrs.evolve(base, start_time=start, end_time=end)


class _Walk(Generic[T]):
    """The fetcher of one walk, and how it finds its place again after a shift.

    It keeps the tail of what was handed over: the last page, and the pages before it
    while they end on the same time. The frontier is the time of the oldest record
    handed over; after a shift the walk re-reads the window up to one ms past it (so
    that either reading of ``endTime`` includes it) and skips, by count, the records
    handed over at those last times (and those whose time is missing or outside the
    window, which cannot be placed by time).
    """

    __slots__ = ("_frontier", "_hi", "_lo", "_tail", "_torn", "_window")

    def __init__(
        self, session: Session, spec: HistorySpec[T], filters: HistoryFilter, size: int
    ) -> None:
        self._window = _Window(session, spec, filters, size)
        self._tail: deque[tuple[T, ...]] = deque()
        self._frontier: int | None = None
        self._torn = False  # pages of the tail were dropped while still needed
        self._lo = 0
        self._hi: int | None = None

    def __call__(self, page: int) -> Awaitable[Any]:
        return self._window(page)

    def _first_time(self, records: Iterable[T]) -> int | None:
        lo, hi = self._lo, self._hi
        for record in records:
            created = created_ms(record)
            if created is not None and lo <= created and (hi is None or created <= hi):
                return created
        return None

    def note(self, page: Page[T]) -> None:
        """``page`` is being handed over: move the frontier."""
        items = page.items
        if not items:
            return
        if self._hi is None:
            pinned = self._window.filters
            assert pinned is not None  # page 1 was read
            self._lo, self._hi = pinned.start_time or 0, pinned.end_time
        tail = self._tail
        tail.append(items)
        oldest = self._first_time(reversed(items))
        if oldest is not None:
            self._frontier = oldest
            newest = self._first_time(items)
            if newest is not None and newest > oldest + 1:
                # This page reaches past the re-read window: the earlier ones never matter.
                while len(tail) > 1:
                    tail.popleft()
                self._torn = False
        if len(tail) > _TAIL_PAGES:
            tail.popleft()
            self._torn = True

    def realign(self) -> tuple[PageFetcher, Callable[[T], bool]]:
        """A walk of what is left, and the predicate of records already handed over."""
        frontier = self._frontier
        counts: Counter[str] = Counter()
        bounded = False
        for items in reversed(self._tail):
            for record in reversed(items):
                created = self._first_time((record,))
                if frontier is not None and created is not None and created > frontier + 1:
                    bounded = True
                    break
                counts[record_key(record)] += 1
            if bounded:
                break
        if self._torn and not bounded:
            raise ProtocolError(
                "the history changed while it was read (totalNum moved), and the records "
                f"around where the walk stood share one time over more than {_TAIL_PAGES} "
                "pages, so it cannot tell which it handed over; read it again"
            )
        current = self._window.filters
        assert current is not None and current.end_time is not None
        end = current.end_time if frontier is None else min(current.end_time, frontier + 1)
        old = self._window
        self._window = _Window(
            old._session, old._spec, attrs.evolve(current, end_time=end), old._size, fixed=True
        )
        lo, hi = self._lo, self._hi
        assert hi is not None

        def handed_over(record: T) -> bool:
            created = created_ms(record)
            if frontier is not None and created is not None and lo <= created <= hi:
                if created < frontier:
                    return False  # older than anything handed over
                if created > frontier + 1:
                    return True  # newer: handed over before (a server in order never sends it)
            key = record_key(record)
            left = counts.get(key, 0)
            if left:
                counts[key] = left - 1
                return True
            return False

        return self, handed_over


class _Poll(Generic[T]):
    """One follow poll (a :class:`~margin_async._follow.Window`): page 1 pins the window,
    then its pages are read from the last to the first, ``prefetch`` in flight."""

    __slots__ = ("_parse", "_pending", "_window", "end", "server_time", "shifted", "start")

    def __init__(
        self,
        window: _Window,
        parse: Callable[[Any], Page[T]],
        pending: InFlight,
    ) -> None:
        self._window = window
        self._parse = parse
        self._pending = pending
        self.start = 0
        self.end = 0
        self.server_time: int | None = None
        self.shifted = False

    def cancel(self) -> None:
        self._pending.cancel_soon()

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        window, parse, pending = self._window, self._parse, self._pending
        try:
            first = parse(await window(1))
            check_page(first, 1)
            pinned = window.filters
            assert pinned is not None and pinned.end_time is not None
            self.start, self.end = pinned.start_time or 0, pinned.end_time
            self.server_time = window.served
            last = first.total_page if first.items else 1
            if last > 1:
                pending.feed(window, iter(range(last, 1, -1)))
                await pending.top_up()
                rest = pending.pages(parse, first, stop_on_shift=True)
                try:
                    async for page in rest:
                        if page.items:  # only trailing pages can be empty (check_page)
                            yield page
                finally:
                    await rest.aclose()
                if pending.shifted:
                    self.shifted = True
                    return
            yield first
        finally:
            await pending.drain()


def history_walk(
    session: Session, spec: HistorySpec[T], filters: HistoryFilter, size: int, prefetch: int
) -> Paginator[T]:
    """A :class:`Paginator` over ``spec`` with ``filters``, ``size`` records per page."""
    page_type = spec.page_type
    group = _group(session)

    def parse(data: Any) -> Page[T]:
        page: Page[T] = structure(data, page_type)
        return page

    def open_walk() -> PageFetcher:
        return _Walk(session, spec, filters, size)

    def open_poll(since: int, overlap: int) -> Window[T]:
        window = _Window(session, spec, filters, size, since=since, overlap=overlap)
        return _Poll(window, parse, InFlight(prefetch, group))

    def follow(*, interval: float, cursor: FollowCursor | None, overlap_ms: int) -> Follower[T]:
        start = cursor if cursor is not None else FollowCursor(filters.start_time or 0)
        return Follower(open_poll, cursor=start, interval=interval, overlap_ms=overlap_ms)

    return Paginator(open_walk, prefetch=prefetch, parse=parse, follow=follow, group=group)
