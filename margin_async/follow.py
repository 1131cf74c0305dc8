"""Follow mode: a history as an endless stream of new records, resumable after a restart.

Each poll reads the window from ``cursor.since - overlap`` to now and yields, oldest
first, the records the cursor has not seen. Re-reading the overlap catches records
that the exchange posts a little after their ``created_time``; the cursor remembers
the keys delivered inside it, so nothing is yielded twice. A record posted more than
``overlap_ms`` after its ``created_time`` would be missed; the default (60 s) is far
above the exchange's posting delay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import attrs

from margin_async.errors import ValidationError
from margin_async.models import InterestRecord, Page
from margin_async.pagination import PageFetcher, Paginator

__all__ = ["FollowCursor", "Follower"]


T = TypeVar("T")


def _created(record: Any) -> int:
    created: int = record.created_time
    return created


def record_key(record: Any) -> str:
    """A record's identity: its order number, or for interest its full content."""
    if isinstance(record, InterestRecord):
        return (
            f"{record.currency}|{record.created_time}|{record.interest_amount}|{record.day_ratio}"
        )
    return str(record.order_no)


@attrs.frozen
class FollowCursor:
    """Where a follow stream stands: a small value to store and pass back after a restart.

    ``since`` is the ``created_time`` (epoch ms) of the newest record delivered;
    ``seen`` maps the keys of records delivered within the overlap window to their
    ``created_time``. Use :meth:`dumps` / :meth:`loads` to store it as text.
    """

    since: int
    seen: tuple[tuple[str, int], ...] = ()

    def dumps(self) -> str:
        """The cursor as compact JSON text."""
        return json.dumps({"since": self.since, "seen": [list(item) for item in self.seen]})

    @classmethod
    def loads(cls, text: str) -> FollowCursor:
        """Read a cursor written by :meth:`dumps`."""
        try:
            raw = json.loads(text)
            since = raw["since"]
            seen = tuple((str(key), int(ms)) for key, ms in raw["seen"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError("cursor", f"not a follow cursor: {exc}") from None
        if isinstance(since, bool) or not isinstance(since, int):
            raise ValidationError("cursor", "since must be epoch milliseconds")
        return cls(since, seen)


class Follower(Generic[T]):
    """Async iterator over new records of a history, oldest first, forever.

    Read :attr:`cursor` after handling a record and store it; pass it back as
    ``follow(cursor=...)`` to continue exactly after that record.
    """

    def __init__(
        self,
        open_window: Callable[[int], PageFetcher],
        *,
        parse: Callable[[Any], Page[T]],
        cursor: FollowCursor,
        interval: float,
        overlap_ms: int,
        prefetch: int,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValidationError("interval", f"must be seconds > 0, got {interval!r}")
        if isinstance(overlap_ms, bool) or not isinstance(overlap_ms, int) or overlap_ms < 0:
            raise ValidationError("overlap_ms", f"must be an int >= 0, got {overlap_ms!r}")
        self._open_window = open_window
        self._parse = parse
        self._interval = float(interval)
        self._overlap = overlap_ms
        self._prefetch = prefetch
        self._since = cursor.since
        self._seen: dict[str, int] = dict(cursor.seen)

    @property
    def cursor(self) -> FollowCursor:
        """The position after the last record yielded."""
        return FollowCursor(self._since, tuple(sorted(self._seen.items(), key=lambda kv: kv[1])))

    def __aiter__(self) -> AsyncIterator[T]:
        return self._follow()

    async def poll(self) -> list[T]:
        """Read the window once; return the unseen records, oldest first (not yet marked)."""
        start = max(0, self._since - self._overlap)
        walk = Paginator(
            lambda: self._open_window(start), prefetch=self._prefetch, parse=self._parse
        )
        fresh: list[T] = []
        keys: set[str] = set()
        async for page in walk.pages():
            for record in page.items:
                key = record_key(record)
                # Skip what an earlier poll delivered, and a record that a late arrival
                # pushed onto the next page of this poll, too.
                if key not in self._seen and key not in keys:
                    keys.add(key)
                    fresh.append(record)
        fresh.reverse()  # pages are newest first
        fresh.sort(key=_created)  # stable: ties keep the exchange's order
        return fresh

    def _mark(self, record: T) -> None:
        created = _created(record)
        self._seen[record_key(record)] = created
        if created > self._since:
            self._since = created
            floor = self._since - self._overlap
            self._seen = {k: ms for k, ms in self._seen.items() if ms >= floor}

    async def _follow(self) -> AsyncIterator[T]:
        while True:
            for record in await self.poll():
                self._mark(record)
                yield record
            await asyncio.sleep(self._interval)
