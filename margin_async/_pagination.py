"""Walking a paged history: ``currentPage`` 1..``totalPage``, yielded in order.

This module knows pages, not what is in them: it fetches pages ahead (``prefetch`` in
flight), hands them over in order, refuses paging fields that cannot be true, and stops
at the first empty page. When a page's ``totalNum`` differs from page 1's (a record was
posted or removed inside the window while the walk ran, so pages shifted), a walk whose
fetcher is a :class:`Realigner` asks it where to go on; the history layer answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import attrs

from margin_async._errors import ClientClosedError, ProtocolError, ValidationError
from margin_async._models import Page

if TYPE_CHECKING:
    # Only for the signature of Paginator.follow: this module never imports follow mode.
    from margin_async._follow import FollowCursor, Follower

__all__ = ["InFlight", "PageFetcher", "Paginator", "Realigner", "WalkGroup", "check_page"]

T = TypeVar("T")
P = TypeVar("P")

#: Fetches page ``n`` (1-based) of one walk, whose filters are fixed when the walk starts.
#: It may return the page as decoded JSON, for the paginator's ``parse`` to turn into a
#: :class:`Page` when the page's turn comes.
PageFetcher = Callable[[int], Awaitable[Any]]

# Realignments in a row that hand over no new record before the history changes again:
# past this, the history is not settling (or the server is not telling the truth).
_MAX_IDLE_REALIGNS = 8
_CLOSED = "the client was closed while this walk was reading its history"


def _already_parsed(page: Any) -> Page[Any]:
    if not isinstance(page, Page):
        raise TypeError(f"the page fetcher returned {type(page).__name__}, not a Page")
    return page


def check_page(page: Page[Any], asked: int, first: Page[Any] | None = None) -> None:
    """Raise :class:`ProtocolError` if ``page`` cannot be page ``asked`` of a history.

    ``currentPage`` must be the page asked for, the counters non-negative, ``pageSize``
    that of page 1 (``first``), the items at most ``pageSize``, and a page with records
    must agree with ``totalNum``: ``totalPage`` is ``ceil(totalNum / pageSize)`` (or one
    more, a common off-by-one whose extra page is empty), and the page lies inside
    ``totalNum``. An empty page must not claim records (``totalNum`` past its start).
    """
    current, size, total, pages = page.current_page, page.page_size, page.total_num, page.total_page
    if current != asked:
        raise ProtocolError(
            f"asked for history page {asked}, got currentPage={current}: the walk stopped "
            "rather than place its records at the wrong position (is base_url KuCoin's API?)"
        )
    if size < 1 or total < 0 or pages < 0:
        raise ProtocolError(
            f"history page {asked} has impossible paging fields (pageSize={size}, "
            f"totalNum={total}, totalPage={pages}); the walk stopped"
        )
    if first is not None and size != first.page_size:
        raise ProtocolError(
            f"history page {asked} has pageSize={size}, page 1 had {first.page_size}: the "
            "walk stopped rather than skip or repeat records"
        )
    count = len(page.items)
    if count > size:
        raise ProtocolError(
            f"history page {asked} holds {count} records, more than pageSize={size}"
        )
    before = (asked - 1) * size  # records on the pages before this one
    if count:
        needed = -(-total // size)
        if not needed <= pages <= needed + 1:
            raise ProtocolError(
                f"history page {asked} says totalPage={pages}, but totalNum={total} at "
                f"pageSize={size} makes {needed}; the walk stopped rather than trust either"
            )
        if total <= before:
            raise ProtocolError(
                f"history page {asked} holds records, but totalNum={total} at pageSize={size} "
                "ends before it; the walk stopped"
            )
    elif total > before:
        raise ProtocolError(
            f"history page {asked} is empty, but totalNum={total} at pageSize={size} says it "
            "holds records; the walk stopped rather than lose them silently"
        )


@runtime_checkable
class Realigner(Protocol[T]):
    """What a walk's fetcher may also do: find its place again after the history shifted.

    The paginator calls :meth:`note` with each page it hands over, and :meth:`realign`
    when a page's ``totalNum`` differs from page 1's (pages in flight are cancelled
    first). ``realign`` returns the fetcher of a walk of what is left and a predicate that
    is true for a record of that walk which was handed over already (it may keep count).
    """

    def note(self, page: Page[T]) -> None: ...

    def realign(self) -> tuple[PageFetcher, Callable[[T], bool]]: ...


class InFlight:
    """The pages of one walk fetched ahead: up to ``depth`` tasks, handed over in order.

    Registered with a :class:`WalkGroup` (a client's), which cancels them when the
    client closes; :meth:`cancel` is synchronous, for finalizers.
    """

    __slots__ = ("__weakref__", "_depth", "_fetch", "_numbers", "_tasks", "closed", "shifted")

    def __init__(self, depth: int, group: WalkGroup | None = None) -> None:
        self._depth = depth
        self._tasks: deque[tuple[int, asyncio.Future[Any]]] = deque()
        self._numbers: Iterator[int] = iter(())
        self._fetch: PageFetcher | None = None
        #: Set when the client closed: no page is fetched any more.
        self.closed = False
        #: Set by :meth:`pages` when a page's ``totalNum`` differed from the first page's.
        self.shifted = False
        if group is not None:
            group.add(self)

    def feed(self, fetch: PageFetcher, numbers: Iterator[int]) -> None:
        """Fetch the pages ``numbers``, in that order, with ``fetch`` from now on."""
        self._fetch = fetch
        self._numbers = numbers

    async def top_up(self) -> None:
        """Start fetches until ``depth`` are in flight (or no page is left)."""
        tasks = self._tasks
        fetch = self._fetch
        if len(tasks) >= self._depth or fetch is None or self.closed:
            return
        added = False
        for number in self._numbers:
            tasks.append((number, asyncio.ensure_future(fetch(number))))
            added = True
            if len(tasks) >= self._depth:
                break
        if added:
            # Let the new fetches send their requests now: awaiting a page that is
            # already here would not give them a turn before the next parse.
            await asyncio.sleep(0)

    async def next(self) -> tuple[int, Any] | None:
        """The next page number and what its fetch returned; ``None`` when none is left."""
        if self.closed:
            raise ClientClosedError(_CLOSED)
        if not self._tasks:
            return None
        number, task = self._tasks.popleft()
        try:
            return number, await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.closed and (current is None or not current.cancelling()):
                raise ClientClosedError(_CLOSED) from None
            raise

    def cancel(self) -> list[asyncio.Future[Any]]:
        """Cancel every fetch in flight (synchronously); return them."""
        tasks = [task for _, task in self._tasks]
        for task in tasks:
            task.cancel()
        return tasks

    def cancel_soon(self) -> None:
        """:meth:`cancel`, safe from a finalizer in any thread (a loop's own thread or not)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for _, task in self._tasks:
            loop = task.get_loop()
            if loop is running:
                task.cancel()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)

    async def drain(self) -> None:
        """Cancel every fetch in flight and wait until they are done."""
        tasks = self.cancel()
        self._tasks.clear()
        self._numbers = iter(())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def pages(
        self, parse: Callable[[Any], Page[T]], first: Page[T], *, stop_on_shift: bool
    ) -> AsyncGenerator[Page[T], None]:
        """Yield each page fed (:meth:`feed`), checked (:func:`check_page`), in order.

        With ``stop_on_shift``, the first page whose ``totalNum`` differs from
        ``first``'s is not yielded: :attr:`shifted` is set and the pages stop.
        """
        self.shifted = False
        base = first.total_num
        while True:
            got = await self.next()
            if got is None:
                return
            number, raw = got
            # Refill before parsing and handing the page over, so the network works
            # while this process decodes and the caller consumes.
            await self.top_up()
            page = parse(raw)
            check_page(page, number, first)
            if stop_on_shift and page.total_num != base:
                self.shifted = True
                await self.drain()
                return
            yield page


class WalkGroup:
    """The walks in progress of one client, so that closing the client stops them."""

    __slots__ = ("_walks",)

    def __init__(self) -> None:
        self._walks: weakref.WeakSet[InFlight] = weakref.WeakSet()

    def add(self, walk: InFlight) -> None:
        """Track ``walk`` (until it is garbage)."""
        self._walks.add(walk)

    async def close(self) -> None:
        """Cancel the fetches of every walk and wait for them; later pages are refused."""
        tasks: list[asyncio.Future[Any]] = []
        for walk in list(self._walks):
            walk.closed = True
            tasks.extend(walk.cancel())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Stream(AsyncIterator[P]):
    """An async generator that cancels its walk's fetches as soon as it is dropped.

    ``async for`` does not close an iterator it leaves early (``break``, an exception):
    the generator would be closed only when the event loop's finalizer gets to it. This
    wrapper is freed at once instead, and its finalizer cancels the fetches in flight.
    """

    __slots__ = ("_gen", "_walk")

    def __init__(self, gen: AsyncGenerator[P, None], walk: InFlight) -> None:
        self._gen = gen
        self._walk = walk

    def __aiter__(self) -> _Stream[P]:
        return self

    def __anext__(self) -> Awaitable[P]:
        return self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the walk now: cancel its fetches and close the generator."""
        self._walk.cancel()
        await self._gen.aclose()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finalizer
            self._walk.cancel_soon()


def _without(page: Page[T], skip: Callable[[T], bool]) -> Page[T]:
    kept = tuple(item for item in page.items if not skip(item))
    return page if len(kept) == len(page.items) else attrs.evolve(page, items=kept)


class Paginator(Generic[T]):
    """Every record of a history, page after page, without the caller seeing pages.

    ``async for record in paginator`` yields records newest first; :meth:`pages`
    yields whole pages; :meth:`collect` returns a list. Each iteration is a new walk.
    After the first page tells ``totalPage``, up to ``prefetch`` following pages are
    fetched concurrently and still yielded in order; memory holds at most that many
    pages. A failing page raises to the caller; leaving the loop early (``break``,
    cancellation, an error) cancels the pages in flight, and so does closing the client.

    Paging fields that cannot be true raise :class:`ProtocolError` (see
    :func:`check_page`); the walk stops at the first empty page. When the walk's fetcher
    is a :class:`Realigner` (a client's history walks are), a shift of the pages under
    the walk (``totalNum`` changed) is repaired so that no record is lost or repeated.

    ``parse`` turns what the fetcher returned into a :class:`Page`; it runs when a page
    is handed over, after the next fetches are on their way, so decoding overlaps the
    network instead of delaying the next requests (default: the fetcher returns pages).
    """

    __slots__ = ("_follow", "_group", "_open_walk", "_parse", "_prefetch")

    def __init__(
        self,
        open_walk: Callable[[], PageFetcher],
        *,
        prefetch: int = 4,
        parse: Callable[[Any], Page[T]] = _already_parsed,
        follow: Callable[..., Follower[T]] | None = None,
        group: WalkGroup | None = None,
    ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValidationError("prefetch", f"must be an int >= 1, got {prefetch!r}")
        self._open_walk = open_walk
        self._prefetch = prefetch
        self._parse = parse
        #: Builds the follower of the same history (given by the history layer).
        self._follow = follow
        self._group = group

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
        if self._follow is None:
            raise TypeError("this paginator cannot follow: it has no time-window query")
        return self._follow(interval=interval, cursor=cursor, overlap_ms=overlap_ms)

    def __aiter__(self) -> AsyncIterator[T]:
        walk = InFlight(self._prefetch, self._group)
        return _Stream(self._items(walk), walk)

    async def _items(self, walk: InFlight) -> AsyncGenerator[T, None]:
        async for page in self._walk(walk):
            for item in page.items:
                yield item

    async def collect(self) -> list[T]:
        """Every record of the walk, as a list (mind the memory on long histories)."""
        records: list[T] = []
        async for page in self._walk(InFlight(self._prefetch, self._group)):
            records.extend(page.items)
        return records

    def pages(self) -> AsyncIterator[Page[T]]:
        """Yield each page in order, ``currentPage`` 1 to ``totalPage``."""
        walk = InFlight(self._prefetch, self._group)
        return _Stream(self._walk(walk), walk)

    async def _walk(self, walk: InFlight) -> AsyncGenerator[Page[T], None]:
        parse = self._parse
        fetch = self._open_walk()
        realigner: Realigner[T] | None = fetch if isinstance(fetch, Realigner) else None
        skip: Callable[[T], bool] | None = None
        idle = 0  # realignments since a record was last handed over
        try:
            while True:
                first = parse(await fetch(1))
                check_page(first, 1)
                shown = first if skip is None else _without(first, skip)
                last = first.total_page if first.items else 1
                # Start the next fetches before handing page 1 over.
                walk.feed(fetch, iter(range(2, last + 1)))
                await walk.top_up()
                if skip is None or shown.items:
                    if realigner is not None:
                        realigner.note(shown)
                    if shown.items:
                        idle = 0
                    yield shown
                if last <= 1:
                    return
                rest = walk.pages(parse, first, stop_on_shift=realigner is not None)
                async with contextlib.aclosing(rest):
                    async for page in rest:
                        if not page.items:
                            return  # the first empty page ends the walk
                        if skip is not None:
                            page = _without(page, skip)
                            if not page.items:
                                continue
                        if realigner is not None:
                            realigner.note(page)
                        idle = 0
                        yield page
                if not walk.shifted or realigner is None:
                    return
                idle += 1
                if idle > _MAX_IDLE_REALIGNS:
                    raise ProtocolError(
                        f"the history changed {idle} times in a row while it was read "
                        "(totalNum kept moving); read it again later"
                    )
                fetch, skip = realigner.realign()
        finally:
            await walk.drain()
