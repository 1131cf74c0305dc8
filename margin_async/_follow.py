"""Follow mode: a history as an endless stream of new records, resumable after a restart.

Each poll reads the window from ``cursor.since - overlap`` to the exchange's now and
yields, oldest first, the records the cursor has not seen. The window's pages are read
from the last (oldest) to the first, each handed over reversed, so that a long backlog
streams with memory for a few pages. Re-reading the overlap catches records that the
exchange posts a little after their ``created_time``; the cursor counts the records
delivered inside it, so nothing is yielded twice (two identical interest charges are
two records, yielded once each). A record posted more than ``overlap_ms`` after its
``created_time`` would be missed; the default (60 s) is far above the exchange's
posting delay.

A record stamped outside the window asked for (a time in microseconds, a clock far
ahead) is not delivered (it is logged), and the cursor never moves past the exchange's
own time, so such a record cannot make later ones invisible. A record without a
``created_time`` is delivered once (known by its content) and does not move the cursor.

This module builds on an abstract poll (:class:`Window`); the history layer provides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import attrs

from margin_async._errors import ValidationError
from margin_async._models import InterestRecord, Page

__all__ = ["FollowCursor", "Follower", "Window", "record_key"]

_log = logging.getLogger("margin_async")

# Records ignored (stamped outside their window) remembered so as to log each once.
_REPORTED = 256

T = TypeVar("T")


def created_ms(record: Any) -> int | None:
    """A record's ``created_time`` if it has one (epoch ms), else ``None``."""
    created = getattr(record, "created_time", None)
    return created if isinstance(created, int) and not isinstance(created, bool) else None


def record_key(record: Any) -> str:
    """A record's identity: its order number, or for interest its full content.

    Two interest records with the same key are indistinguishable; they are counted, not
    merged.
    """
    if isinstance(record, InterestRecord):
        return (
            f"{record.currency}|{record.created_time}|{record.interest_amount}|{record.day_ratio}"
        )
    return str(record.order_no)


@attrs.frozen
class FollowCursor:
    """Where a follow stream stands: a small value to store and pass back after a restart.

    ``since`` is the ``created_time`` (epoch ms) of the newest record delivered (never
    past the exchange's clock); ``seen`` holds a ``(key, created_time)`` pair per record
    delivered within the overlap window, a key repeated once per identical record. Use
    :meth:`dumps` / :meth:`loads` to store it as text.
    """

    since: int
    seen: tuple[tuple[str, int], ...] = ()

    def dumps(self) -> str:
        """The cursor as compact JSON text."""
        return json.dumps({"since": self.since, "seen": [list(item) for item in self.seen]})

    @classmethod
    def loads(cls, text: str) -> FollowCursor:
        """Read a cursor written by :meth:`dumps` (of this version or an earlier one)."""
        try:
            raw = json.loads(text)
            since = raw["since"]
            seen = tuple((str(key), int(ms)) for key, ms in raw["seen"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError("cursor", f"not a follow cursor: {exc}") from None
        if isinstance(since, bool) or not isinstance(since, int):
            raise ValidationError("cursor", "since must be epoch milliseconds")
        return cls(since, seen)


class Window(Protocol[T]):
    """One poll of a history: the pages of a window, oldest page first.

    The window is pinned when its first page is read: from then on ``start`` and
    ``end`` (epoch ms, inclusive) are the window asked for and ``server_time`` the
    exchange's time on that page (``None`` if it did not say). ``shifted`` is set when
    the pages stopped early because the history changed under them (``totalNum``
    moved): the poll is to be read again. ``cancel`` stops the fetches in flight.
    """

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def server_time(self) -> int | None: ...

    @property
    def shifted(self) -> bool: ...

    def pages(self) -> AsyncGenerator[Page[T], None]: ...

    def cancel(self) -> None:
        """Cancel the fetches in flight; safe from a finalizer."""


#: Opens one poll: ``(since, overlap_ms) -> Window``; the window starts ``overlap_ms``
#: before ``since`` (or before the exchange's now, if ``since`` is ahead of it).
OpenPoll = Callable[[int, int], Window[T]]


class _Stream(AsyncIterator[T]):
    """The follow generator; cancels the current poll's fetches as soon as it is dropped."""

    __slots__ = ("_follower", "_gen")

    def __init__(self, gen: AsyncGenerator[T, None], follower: Follower[T]) -> None:
        self._gen = gen
        self._follower = follower

    def __aiter__(self) -> _Stream[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop following: cancel the poll in flight and close the generator."""
        self._follower._cancel()
        await self._gen.aclose()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finalizer
            self._follower._cancel()


class _Sieve:
    """Which records of one poll are new: inside the window, and not delivered before.

    ``budget`` counts, per key, the records delivered before this poll that it may meet
    again; each meeting uses one up.
    """

    __slots__ = ("budget", "cap", "end", "ignored", "start")

    def __init__(self, delivered: dict[str, int], window: Window[Any]) -> None:
        self.budget = dict(delivered)
        self.start = window.start
        self.end = window.end
        served = window.server_time
        #: The exchange's own time: the cursor never moves past it.
        self.cap = self.end if served is None else min(self.end, served)
        self.ignored = 0


class Follower(Generic[T]):
    """Async iterator over new records of a history, oldest first, forever.

    Read :attr:`cursor` after handling a record and store it; pass it back as
    ``follow(cursor=...)`` to continue exactly after that record.
    """

    def __init__(
        self,
        open_poll: OpenPoll[T],
        *,
        cursor: FollowCursor,
        interval: float,
        overlap_ms: int,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValidationError("interval", f"must be seconds > 0, got {interval!r}")
        if isinstance(overlap_ms, bool) or not isinstance(overlap_ms, int) or overlap_ms < 0:
            raise ValidationError("overlap_ms", f"must be an int >= 0, got {overlap_ms!r}")
        self._open_poll = open_poll
        self._interval = float(interval)
        self._overlap = overlap_ms
        self._since = cursor.since
        # Records delivered within the overlap: how many per key, and (time, key) in
        # delivery order (about time order) to forget them once they fall behind.
        self._delivered: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()
        for key, ms in sorted(cursor.seen, key=lambda pair: pair[1]):
            self._delivered[key] = self._delivered.get(key, 0) + 1
            self._order.append((ms, key))
        self._poll: Window[T] | None = None
        self._reported: dict[str, None] = {}  # records ignored and logged (oldest first)

    @property
    def cursor(self) -> FollowCursor:
        """The position after the last record yielded."""
        floor = self._since - self._overlap
        seen = sorted(((key, ms) for ms, key in self._order if ms >= floor), key=lambda kv: kv[1])
        return FollowCursor(self._since, tuple(seen))

    def __aiter__(self) -> AsyncIterator[T]:
        return _Stream(self._follow(), self)

    def _cancel(self) -> None:
        if self._poll is not None:
            self._poll.cancel()

    def _open(self) -> Window[T]:
        self._poll = self._open_poll(self._since, self._overlap)
        return self._poll

    def _sieve(self, window: Window[T]) -> _Sieve:
        """Start sifting a poll whose first page was read."""
        sieve = _Sieve(self._delivered, window)
        if self._since > sieve.cap:
            # The exchange's clock is behind the cursor (it jumped back): records it
            # stamps now would never reach the cursor's window. Follow its clock.
            _log.warning(
                "follow: the cursor (%d) is ahead of the exchange's time (%d); moving it "
                "back so that new records are not missed",
                self._since,
                sieve.cap,
            )
            self._since = sieve.cap
        return sieve

    def _ignore(self, record: T, created: int, sieve: _Sieve) -> None:
        """Count a record stamped outside the poll's window; log it once."""
        # Once per poll, and not again for a record already reported (a poll every few
        # seconds meets it until the window moves past it).
        key = record_key(record)
        if not sieve.ignored and key not in self._reported:
            if len(self._reported) >= _REPORTED:
                self._reported.pop(next(iter(self._reported)))
            self._reported[key] = None
            _log.warning(
                "follow: ignored a record stamped %d, outside the window asked for "
                "[%d, %d] (not epoch milliseconds, or the exchange's clock is off): %r",
                created,
                sieve.start,
                sieve.end,
                record,
            )
        sieve.ignored += 1

    def _admit(self, record: T, sieve: _Sieve, taken: set[str]) -> bool:
        """Whether ``record`` is new, for :meth:`poll` (which marks nothing)."""
        created = created_ms(record)
        if created is not None and not sieve.start <= created <= sieve.end:
            self._ignore(record, created, sieve)
            return False
        key = record_key(record)
        left = sieve.budget.get(key, 0)
        if left:
            sieve.budget[key] = left - 1
            return False
        if not isinstance(record, InterestRecord):
            # An order is one record: met twice in one poll (pages moved), it is the same.
            if key in taken:
                return False
            taken.add(key)
        return True

    def _take(self, records: Iterable[T], sieve: _Sieve) -> list[T]:
        """The new records among ``records`` (in their order), marked as delivered.

        This runs once per record of every history mirrored or followed, so the checks
        of :func:`created_ms`, :func:`record_key` and :meth:`_admit` are inlined, and the
        cursor moves (and forgets what fell behind the overlap) once per call.
        """
        fresh: list[T] = []
        delivered, order, budget = self._delivered, self._order, sieve.budget
        start, end = sieve.start, sieve.end
        newest: int | None = None
        for record in records:
            created = getattr(record, "created_time", None)
            if type(created) is not int:
                created = None
            elif not start <= created <= end:
                self._ignore(record, created, sieve)
                continue
            if isinstance(record, InterestRecord):
                key = record_key(record)
                interest = True
            else:
                key = str(record.order_no)  # type: ignore[attr-defined]
                interest = False
            if budget:
                left = budget.get(key, 0)
                if left:
                    budget[key] = left - 1
                    continue
            count = delivered.get(key, 0)
            if count and not interest:
                continue  # an order met twice in one poll (pages moved) is the same
            delivered[key] = count + 1
            if created is None:
                # Without a time, it is remembered until the cursor passes this window.
                order.append((end, key))
            else:
                order.append((created, key))
                if newest is None or created > newest:
                    newest = created
            fresh.append(record)
        if newest is not None:
            self._advance(min(newest, sieve.cap))
        return fresh

    def _advance(self, since: int) -> None:
        """Move the cursor to ``since`` if that is ahead; forget what fell behind."""
        if since <= self._since:
            return
        self._since = since
        floor = since - self._overlap
        order, delivered = self._order, self._delivered
        while order and order[0][0] < floor:
            _, old = order.popleft()
            count = delivered[old] - 1
            if count:
                delivered[old] = count
            else:
                del delivered[old]

    async def poll(self) -> list[T]:
        """Read the window once; return the unseen records, oldest first (not yet marked)."""
        fresh: list[T] = []
        window = self._open()
        taken: set[str] = set()
        sieve: _Sieve | None = None
        async with contextlib.aclosing(window.pages()) as pages:
            async for page in pages:
                if sieve is None:
                    sieve = _Sieve(self._delivered, window)
                fresh += [r for r in reversed(page.items) if self._admit(r, sieve, taken)]
        return fresh

    def batches(self) -> AsyncIterator[list[T]]:
        """New records a page at a time: each list oldest first and never empty.

        The same records as iterating the follower, for consumers that handle many at
        once (a database insert); :attr:`cursor` is the position after the whole list.
        """
        return _Stream(self._follow(whole_pages=True), self)

    async def _follow(self, *, whole_pages: bool = False) -> AsyncGenerator[Any, None]:
        unsettled = 0  # polls in a row cut short by a shift, with nothing delivered
        while True:
            window = self._open()
            sieve: _Sieve | None = None
            delivered = False
            async with contextlib.aclosing(window.pages()) as pages:
                async for page in pages:
                    if sieve is None:
                        sieve = self._sieve(window)
                    if whole_pages:
                        fresh = self._take(reversed(page.items), sieve)
                        if fresh:
                            delivered = True
                            yield fresh
                        continue
                    for record in reversed(page.items):
                        # Marked one by one: the cursor is always after the last yielded.
                        if self._take((record,), sieve):
                            delivered = True
                            yield record
            if sieve is not None and sieve.ignored > 1:
                _log.debug(
                    "follow: ignored %d records stamped outside the window [%d, %d]",
                    sieve.ignored,
                    sieve.start,
                    sieve.end,
                )
            # The history moved under the poll: read again now (what was delivered is
            # skipped), unless it keeps moving without anything new.
            unsettled = 0 if delivered or not window.shifted else unsettled + 1
            if not window.shifted or unsettled > 2:
                await asyncio.sleep(self._interval)
