"""The mirror: every account's histories into a store, exactly once, by one or many workers.

Each account's histories (borrow, repay, interest; cross and each isolated symbol) are
*streams*. A stream is a :class:`~margin_async.Follower` resumed from the cursor stored
in ``sync_cursors``; its records are collected into batches, and each batch is committed
together with the cursor after its last record and the renewal of the account's lease, in
one transaction. So the database holds the rows of exactly the records its cursor has
passed: a crash at any instant loses the batch in flight and its cursor together, and the
next run reads them again. The table keys make a replay a no-op besides.

The follower's polls are read here (:class:`_Poll`, the :class:`~margin_async._follow.Window`
of a follower) rather than by the SDK's history layer, for two reasons: the end of a poll
is the moment to commit what it delivered (and, with ``once``, to stop), and every page
request first waits for the account's :class:`~margin_async.sync._budget.Headroom`.

Accounts are leased (see :class:`~margin_async.sync.Store`): a worker mirrors an account
only while it holds its lease, renews it while working, and gives it back when stopping;
a dead worker's leases expire and are taken over. Workers balance: each takes at most
``ceil(accounts / live workers)`` and gives back what is above that share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Awaitable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from margin_async import (
    AuthenticationError,
    ClientClosedError,
    FollowCursor,
    Follower,
    MarginClient,
    MarginError,
    Page,
    PoolError,
    ProtocolError,
    ResponseEvent,
    ValidationError,
)
from margin_async.sync._budget import (
    DEFAULT_HEADROOM,
    DEFAULT_QUOTA,
    DEFAULT_WINDOW_S,
    WEIGHTS,
    Headroom,
    check,
)
from margin_async.sync._errors import LeaseLostError, SyncConfigError
from margin_async.sync._rows import KINDS, Kind, Row, StreamKey, rows_builder
from margin_async.sync._store import Store

__all__ = ["AccountSpec", "Mirror", "SyncStatus"]

_log = logging.getLogger("margin_async.sync")

R = TypeVar("R")

#: Records per page: the API's maximum.
_PAGE_SIZE = 500
#: Earliest time the API accepts as ``startTime`` without taking it for seconds.
_MIN_START = 10**11
#: The exchange refuses request timestamps further than this from its clock (ms).
_CLOCK_TOLERANCE_MS = 5_000
#: Longest pause between retries of a failing stream (seconds).
_MAX_BACKOFF = 60.0


def _codes(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _symbols(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _kind_tuple(value: Iterable[Kind] | None) -> tuple[Kind, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class AccountSpec:
    """What to mirror of one account.

    ``currencies``: the currency codes (``None``: every currency, which only interest
    history allows; borrow and repay history need codes). ``isolated``: isolated-margin
    symbols (``"BTC-USDT"``) mirrored besides cross margin (``cross=False`` to skip
    cross). ``kinds``: the histories (default: the mirror's).
    """

    currencies: tuple[str, ...] | None = attrs.field(default=None, converter=_codes)
    isolated: tuple[str, ...] = attrs.field(default=(), converter=_symbols)
    cross: bool = True
    kinds: tuple[Kind, ...] | None = attrs.field(default=None, converter=_kind_tuple)


@attrs.frozen
class SyncStatus:
    """Where a mirror stands (:meth:`Mirror.status`, and what its runs return).

    ``held``: the accounts this worker mirrors now; ``done``: accounts brought up to date
    (``run_once``); ``skipped``: accounts left to another live worker (label -> worker);
    ``records``: rows written by this run; ``replayed``: records met again and left alone
    (normally 0); ``lag_ms``: how far behind the exchange's clock the least recent stream
    of a held account is (``None`` while one has not completed its first poll).
    """

    worker: str
    accounts: int
    held: tuple[str, ...] = ()
    done: tuple[str, ...] = ()
    skipped: Mapping[str, str] = attrs.field(factory=dict)
    records: int = 0
    replayed: int = 0
    lag_ms: int | None = None


class _Clients(Protocol):
    """An :class:`~margin_async.AccountPool`, or a mapping of labels to clients."""

    def __getitem__(self, label: str, /) -> MarginClient: ...
    def __contains__(self, label: object, /) -> bool: ...


class _CaughtUp(Exception):
    """A ``once`` stream finished a poll that the history did not move under."""


async def _finish(awaitable: Awaitable[R]) -> R:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile (a commit
    runs to completion); the cancellation is raised afterwards."""
    task = asyncio.ensure_future(awaitable)
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not task.cancelled():
            task.exception()  # retrieved: a failed commit changed nothing
        raise asyncio.CancelledError
    return task.result()


def _now_ms(client: MarginClient) -> int:
    return time.time_ns() // 1_000_000 + client.clock_offset_ms


class _Stream:
    """One history of one account: its follower, the batch not yet committed, counters."""

    def __init__(
        self,
        mirror: Mirror,
        key: StreamKey,
        client: MarginClient,
        budget: Headroom,
        currencies: list[str] | None,
    ) -> None:
        self.mirror = mirror
        self.key = key
        self.client = client
        self.budget = budget
        self.weight = WEIGHTS[key.kind]
        self.currencies = currencies
        self.once = False
        self.interest = key.kind == "interest"
        self.rows = rows_builder(key.kind, key.account, key.symbol)
        self.batch: list[Row] = []
        #: Interest only: identical records delivered so far, per key (see rows_builder).
        self.counts: dict[str, int] = {}
        #: The cursor stored last, and the one of the last commit started.
        self.saved: FollowCursor | None = None
        self.queued: FollowCursor | None = None
        self.writing: asyncio.Task[None] | None = None
        self.follower: Follower[Any] | None = None
        self.records = 0
        self.replayed = 0
        self.polls = 0
        #: The end of the last poll completed (exchange time, ms): the stream is complete
        #: up to there.
        self.complete_to: int | None = None

    # -- pages ----------------------------------------------------------------------------

    async def fetch(self, page: int, start: int, end: int) -> Page[Any]:
        """Page ``page`` of the window ``[start, end]``, within the account's headroom."""
        async with self.budget.use(self.weight):
            return await self._fetch(page, start, end)

    async def _fetch(self, page: int, start: int, end: int) -> Page[Any]:
        key, client = self.key, self.client
        since = start if start >= _MIN_START else None
        isolated = {"is_isolated": True, "symbol": key.symbol} if key.symbol else {}
        common: dict[str, Any] = {
            "start_time": since,
            "end_time": end,
            "current_page": page,
            "page_size": _PAGE_SIZE,
            **isolated,
        }
        if key.kind == "interest":
            return await client.get_interest_history(self.currencies, **common)
        assert self.currencies is not None
        if key.kind == "borrow":
            return await client.get_borrow_history(self.currencies, **common)
        return await client.get_repay_history(self.currencies, **common)

    def open_poll(self, since: int, overlap: int) -> _Poll:
        """The follower's next poll (it calls this)."""
        return _Poll(self, since, overlap)

    # -- records ----------------------------------------------------------------------------

    def add(self, records: list[Any]) -> None:
        self.batch += self.rows(records, self.counts)

    async def flush(self, *, wait: bool = False) -> None:
        """Commit the batch with the cursor after it (nothing if neither changed).

        The commit runs while the stream reads on (one at a time per stream, in order);
        ``wait`` waits for it. A failed commit is raised by the next flush.
        """
        follower = self.follower
        assert follower is not None
        cursor = follower.cursor
        rows, self.batch = self.batch, []
        if rows or cursor != self.queued:
            await self.settle()
            self.queued = cursor
            self.writing = asyncio.ensure_future(self._commit(rows, cursor))
            if self.key.kind == "interest":
                # What the cursor remembers is all that can be met again; forget the rest.
                self.counts = dict(Counter(name for name, _ in cursor.seen))
        if wait:
            await self.settle()

    async def settle(self) -> None:
        """Wait for the commit in progress (to its end, even if cancelled meanwhile)."""
        task, self.writing = self.writing, None
        if task is not None:
            await _finish(task)

    async def _commit(self, rows: list[Row], cursor: FollowCursor) -> None:
        mirror = self.mirror
        inserted = await mirror.store.commit(
            mirror.worker, self.key, rows, cursor.dumps(), cursor.since, mirror.ttl_ms
        )
        self.saved = cursor
        self.records += inserted
        self.replayed += len(rows) - inserted
        mirror._records += inserted
        mirror._replayed += len(rows) - inserted
        if len(rows) > inserted:
            _log.info("%s: %d records were in the store already", self.key, len(rows) - inserted)

    async def poll_ended(self, poll: _Poll) -> None:
        """Called by a poll after its last page was handed over (and its records added)."""
        await self.flush(wait=True)
        if poll.shifted:
            return  # the follower reads again at once
        self.polls += 1
        served = poll.server_time
        self.complete_to = poll.end if served is None else min(poll.end, served)
        if self.once:
            raise _CaughtUp

    # -- the run --------------------------------------------------------------------------

    async def run(self, *, once: bool, interval: float) -> None:
        """Mirror until caught up (``once``) or forever; retry failures in follow mode."""
        self.once = once
        failures = 0
        while True:
            polls = self.polls
            try:
                await self._follow(interval)
                return
            except (LeaseLostError, AuthenticationError, ValidationError, ClientClosedError):
                raise  # not ours any more, wrong settings, or shut: retrying cannot help
            except MarginError as exc:
                if once:
                    raise
                failures = 1 if self.polls > polls else failures + 1
                delay = min(_MAX_BACKOFF, interval * 2 ** min(failures - 1, 8))
                _log.warning("%s: %s; trying again in %.2g s", self.key, exc, delay)
                await asyncio.sleep(delay)

    async def _follow(self, interval: float) -> None:
        mirror = self.mirror
        text = await mirror.store.load_cursor(self.key)
        cursor = FollowCursor(0) if text is None else FollowCursor.loads(text)
        self.saved = self.queued = cursor
        self.batch = []
        self.counts = dict(Counter(name for name, _ in cursor.seen))
        follower: Follower[Any] = Follower(
            self.open_poll, cursor=cursor, interval=interval, overlap_ms=mirror.overlap_ms
        )
        self.follower = follower
        # A page at a time: the follower's cursor is the position after each whole list,
        # so a transaction ends on a page boundary.
        stream = follower.batches()
        try:
            async for records in stream:
                self.add(records)
                if len(self.batch) >= mirror.batch_size:
                    await self.flush()
        except _CaughtUp:
            return
        finally:
            try:
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
            finally:
                await self.settle()


class _Poll:
    """One poll of a stream's follower: the window ``[since - overlap, now]``, its pages
    from the last (oldest) to the first, ``prefetch`` in flight.

    Page 1, read first and alone, pins the window's end to the exchange's time (as the
    SDK's own follow does); a page whose ``totalNum`` differs from page 1's means the
    history moved under the poll: the pages stop and ``shifted`` tells the follower to
    read again.
    """

    def __init__(self, stream: _Stream, since: int, overlap: int) -> None:
        self._stream = stream
        self._since = since
        self._overlap = overlap
        self._tasks: deque[tuple[int, asyncio.Task[Page[Any]]]] = deque()
        self.start = 0
        self.end = 0
        self.server_time: int | None = None
        self.shifted = False

    def _pin(self, now: int) -> None:
        self.end = now
        self.start = max(0, min(self._since, now) - self._overlap)
        self.end = max(self.start, now)

    def cancel(self) -> None:
        for _, task in self._tasks:
            task.cancel()

    async def pages(self) -> AsyncGenerator[Page[Any], None]:
        stream = self._stream
        try:
            self._pin(_now_ms(stream.client))
            first = await stream.fetch(1, self.start, self.end)
            served = first.timestamp
            if served is not None and self.end - _CLOCK_TOLERANCE_MS <= served < self.end:
                # Our clock is a little ahead of the exchange's: pin to its time.
                self._pin(served)
                first = await stream.fetch(1, self.start, self.end)
                served = first.timestamp
            self.server_time = served
            _check(first, 1, first)
            last = first.total_page if first.items else 1
            numbers = iter(range(last, 1, -1))
            self._top_up(numbers)
            while self._tasks:
                number, task = self._tasks.popleft()
                page = await task
                self._top_up(numbers)
                _check(page, number, first)
                if page.total_num != first.total_num:
                    self.shifted = True
                    break
                if page.items:
                    yield page
            if not self.shifted:
                yield first
        finally:
            await self._drain()
        await stream.poll_ended(self)

    def _top_up(self, numbers: Iterable[int]) -> None:
        stream = self._stream
        depth = stream.mirror.prefetch
        for number in numbers:
            task = asyncio.ensure_future(stream.fetch(number, self.start, self.end))
            self._tasks.append((number, task))
            if len(self._tasks) >= depth:
                return

    async def _drain(self) -> None:
        tasks = [task for _, task in self._tasks]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _check(page: Page[Any], asked: int, first: Page[Any]) -> None:
    """Refuse paging fields that would misplace records (a :class:`ProtocolError`)."""
    if page.current_page != asked or page.page_size != first.page_size:
        raise ProtocolError(
            f"asked for history page {asked} (pageSize {first.page_size}), got currentPage="
            f"{page.current_page} pageSize={page.page_size}; the mirror stopped rather than "
            "misplace records"
        )
    if len(page.items) > page.page_size:
        raise ProtocolError(
            f"history page {asked} holds {len(page.items)} records, more than its pageSize"
        )
    if not page.items and page.total_num > (asked - 1) * page.page_size:
        raise ProtocolError(
            f"history page {asked} is empty but totalNum={page.total_num} says it holds "
            "records; the mirror stopped rather than lose them"
        )


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _labels_error(errors: Mapping[str, Exception]) -> Exception:
    if len(errors) == 1:
        return next(iter(errors.values()))
    return PoolError(errors)


class Mirror:
    """Mirrors the histories of accounts into a :class:`~margin_async.sync.Store`.

    ``accounts`` maps each account's label (as in the ``AccountPool``) to an
    :class:`AccountSpec`. ``kinds``: the histories mirrored (borrow, repay, interest).

    Rate limits: ``quota`` is the account's weight per ``window`` seconds (4000 per 30 s
    at VIP0: raise it for higher VIP levels), and ``headroom`` the share of it left to
    others (default 0.25); see :mod:`margin_async.sync._budget`. Pass :meth:`observe`
    as the pool's ``on_response`` so the mirror also sees what others spend.

    Leases: ``lease_ttl`` seconds (default 30) after its last renewal, a worker's lease
    expires and another may take the account; leases are renewed every third of it.
    ``batch_size``: records per transaction (reached a whole page at a time, so a
    transaction may hold up to a page more). ``overlap_ms``: how far each poll
    re-reads (see :class:`~margin_async.Follower`). ``prefetch``: pages in flight per
    stream. ``worker``: this worker's name in ``sync_leases`` (default host:pid:random).
    """

    def __init__(
        self,
        store: Store,
        accounts: Mapping[str, AccountSpec],
        *,
        kinds: Iterable[Kind] = KINDS,
        quota: int = DEFAULT_QUOTA,
        headroom: float = DEFAULT_HEADROOM,
        window: float = DEFAULT_WINDOW_S,
        lease_ttl: float = 30.0,
        batch_size: int = 2000,
        overlap_ms: int = 60_000,
        prefetch: int = 8,
        worker: str | None = None,
    ) -> None:
        check(quota=quota, headroom=headroom, window=window)
        self.store = store
        self.kinds: tuple[Kind, ...] = tuple(dict.fromkeys(kinds))
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise SyncConfigError(
                "kinds", f"must be some of {', '.join(KINDS)}, got {', '.join(map(str, unknown))}"
            )
        if not accounts:
            raise SyncConfigError("accounts", "no account to mirror")
        for label, spec in accounts.items():
            if not isinstance(label, str) or not label:
                raise SyncConfigError("accounts", f"labels must be non-empty strings: {label!r}")
            if not isinstance(spec, AccountSpec):
                raise SyncConfigError("accounts", f"{label!r} must map to an AccountSpec")
            if spec.currencies is None and any(k != "interest" for k in self._kinds(spec)):
                raise SyncConfigError(
                    "currencies",
                    f"account {label!r}: borrow and repay history need currencies "
                    "(e.g. USDT); only interest history can be read for every currency",
                )
            if not spec.cross and not spec.isolated:
                raise SyncConfigError("accounts", f"account {label!r}: nothing to mirror")
        for name, value, low in (
            ("lease_ttl", lease_ttl, 0.1),
            ("batch_size", batch_size, 1),
            ("prefetch", prefetch, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise SyncConfigError(name, f"must be >= {low}, got {value!r}")
        if isinstance(overlap_ms, bool) or not isinstance(overlap_ms, int) or overlap_ms < 0:
            raise SyncConfigError("overlap_ms", f"must be an int >= 0, got {overlap_ms!r}")
        self.accounts: dict[str, AccountSpec] = dict(accounts)
        self.quota = quota
        self.headroom = headroom
        self.window = float(window)
        self.ttl_ms = max(1, round(lease_ttl * 1000))
        self.batch_size = int(batch_size)
        self.overlap_ms = overlap_ms
        self.prefetch = int(prefetch)
        self.worker = worker or _default_worker()
        self._budgets: dict[str, Headroom] = {}
        self._streams: dict[str, list[_Stream]] = {}
        self._held: set[str] = set()
        self._done: list[str] = []
        self._skipped: dict[str, str] = {}
        self._records = 0
        self._replayed = 0

    def __repr__(self) -> str:
        return f"Mirror({self.store!r}, {len(self.accounts)} accounts, worker={self.worker!r})"

    def _kinds(self, spec: AccountSpec) -> tuple[Kind, ...]:
        return self.kinds if spec.kinds is None else spec.kinds

    def _budget(self, label: str) -> Headroom:
        budget = self._budgets.get(label)
        if budget is None:
            budget = Headroom(quota=self.quota, headroom=self.headroom, window=self.window)
            self._budgets[label] = budget
        return budget

    def observe(self, event: ResponseEvent) -> None:
        """An ``on_response`` hook: learn what the exchange says remains of each
        account's quota (events are matched to accounts by their label)."""
        if event.label in self.accounts and event.ratelimit_remaining is not None:
            budget = self._budget(event.label)
            budget.observe(event.ratelimit_remaining, event.ratelimit_reset_ms)

    def status(self) -> SyncStatus:
        """A snapshot of the mirror's progress (safe to call while it runs)."""
        lag: int | None = 0
        for label in sorted(self._held):
            for stream in self._streams.get(label, ()):
                if stream.complete_to is None:
                    lag = None
                elif lag is not None:
                    lag = max(lag, _now_ms(stream.client) - stream.complete_to)
        return SyncStatus(
            worker=self.worker,
            accounts=len(self.accounts),
            held=tuple(sorted(self._held)),
            done=tuple(self._done),
            skipped=dict(self._skipped),
            records=self._records,
            replayed=self._replayed,
            lag_ms=lag if self._held else None,
        )

    # -- one account ------------------------------------------------------------------------

    def _make_streams(self, label: str, client: MarginClient) -> list[_Stream]:
        spec = self.accounts[label]
        currencies = None if spec.currencies is None else sorted(set(spec.currencies))
        joined = ",".join(currencies or ())
        symbols = ([""] if spec.cross else []) + list(spec.isolated)
        budget = self._budget(label)
        return [
            _Stream(self, StreamKey(label, kind, symbol, joined), client, budget, currencies)
            for symbol in symbols
            for kind in self._kinds(spec)
        ]

    async def _account(self, label: str, clients: _Clients, *, once: bool, interval: float) -> None:
        """Mirror one account (its lease is held) until caught up, or until cancelled."""
        streams = self._make_streams(label, clients[label])
        self._streams[label] = streams
        try:
            async with asyncio.TaskGroup() as group:
                for stream in streams:
                    group.create_task(stream.run(once=once, interval=interval))
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None

    # -- runs -------------------------------------------------------------------------------

    def _check_clients(self, clients: _Clients) -> None:
        missing = [label for label in self.accounts if label not in clients]
        if missing:
            raise SyncConfigError("clients", f"no client for account(s) {', '.join(missing)}")

    async def run_once(self, clients: _Clients) -> SyncStatus:
        """Bring every account up to date, then return.

        An account leased by another worker is waited for until its lease expires or is
        given back, or left to that worker (``skipped``) once it proves alive (a
        ``follow`` worker sending heartbeats while this run waits). Failures
        are raised once every other account is done: the account's own error, or a
        :class:`~margin_async.PoolError` naming each failed account.
        """
        self._check_clients(clients)
        labels = list(self.accounts)
        store = self.store
        await store.ensure_accounts(labels)
        pending = list(labels)
        first_beats: dict[str, int] = {}
        runs: dict[asyncio.Task[None], str] = {}
        errors: dict[str, Exception] = {}
        renewer = asyncio.ensure_future(self._renew_forever())
        try:
            while pending or runs:
                if pending:
                    for label in await store.acquire(
                        self.worker, pending, len(pending), self.ttl_ms
                    ):
                        pending.remove(label)
                        self._held.add(label)
                        task = asyncio.ensure_future(
                            self._account(label, clients, once=True, interval=1.0)
                        )
                        runs[task] = label
                    if pending:
                        await self._leave_to_live_workers(pending, first_beats)
                wait = self.ttl_ms / 6000 if pending else None
                if runs:
                    finished, _ = await asyncio.wait(
                        runs, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.sleep(wait or 0)
                    finished = set()
                done: list[str] = []
                for task in finished:
                    label = runs.pop(task)
                    self._held.discard(label)
                    error = None if task.cancelled() else task.exception()
                    if isinstance(error, LeaseLostError):
                        # It expired (this run stalled longer than the lease): take it again
                        # when free, or leave it to a live worker that took it over.
                        _log.warning(
                            "%s: the lease expired under this run (it stalled longer than the "
                            "lease time to live); leasing it again",
                            label,
                        )
                        pending.append(label)
                        first_beats.pop(label, None)
                        continue
                    done.append(label)
                    if error is None:
                        self._done.append(label)
                    elif isinstance(error, Exception):
                        errors[label] = error
                    else:
                        raise error
                await store.release(self.worker, done)
        finally:
            renewer.cancel()
            await _stop(list(runs))
            held = list(runs.values())
            self._held.difference_update(held)
            with contextlib.suppress(MarginError, asyncio.CancelledError):
                await asyncio.shield(store.release(self.worker, held))
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if errors:
            raise _labels_error(errors)
        return self.status()

    async def _leave_to_live_workers(self, pending: list[str], first_beats: dict[str, int]) -> None:
        """Drop from ``pending`` the accounts whose lease holder proved alive while this
        run waited: its heartbeat count rose twice since first seen. Heartbeats are sent
        one at a time, so a worker that died before can land at most one more (a
        transaction in flight when it died); a lease of a dead worker is waited for."""
        holders = await self.store.holders(pending)
        for label in list(pending):
            holder = holders.get(label)
            if holder is None or not holder.live or holder.beats is None:
                continue
            first = first_beats.setdefault(label, holder.beats)
            if holder.beats >= first + 2:
                pending.remove(label)
                self._skipped[label] = str(holder.owner)
                _log.info("%s: left to worker %s, which is mirroring it", label, holder.owner)

    async def follow(
        self, clients: _Clients, *, interval: float = 5.0, stop: asyncio.Event | None = None
    ) -> SyncStatus:
        """Keep the accounts this worker can lease up to date until ``stop`` is set (or
        the task is cancelled); polls every ``interval`` seconds. On stop, batches being
        committed are finished, the leases given back, and the status returned.

        An authentication or settings error of an account stops the mirror (raised);
        other failures (network, exchange, database) are logged and retried with backoff.
        """
        self._check_clients(clients)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise SyncConfigError("interval", f"must be seconds > 0, got {interval!r}")
        stop = stop if stop is not None else asyncio.Event()
        labels = list(self.accounts)
        store = self.store
        await store.ensure_accounts(labels)
        runs: dict[str, asyncio.Task[None]] = {}
        period = self.ttl_ms / 3000
        fatal: dict[str, Exception] = {}
        try:
            while not stop.is_set():
                try:
                    await self._balance(clients, labels, runs, interval, fatal)
                except MarginError as exc:  # the database is away: try again next round
                    _log.warning("leases: %s", exc)
                if fatal:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(period):
                        await stop.wait()
        finally:
            await _stop(list(runs.values()))
            self._held.clear()
            with contextlib.suppress(MarginError, asyncio.CancelledError):
                await asyncio.shield(self._leave(list(runs)))
        if fatal:
            raise _labels_error(fatal)
        return self.status()

    async def _leave(self, labels: list[str]) -> None:
        await self.store.release(self.worker, labels)
        await self.store.leave(self.worker)

    async def _balance(
        self,
        clients: _Clients,
        labels: list[str],
        runs: dict[str, asyncio.Task[None]],
        interval: float,
        fatal: dict[str, Exception],
    ) -> None:
        """One round of lease keeping: reap, renew, give back above the share, take more."""
        store = self.store
        for label, task in list(runs.items()):
            if not task.done():
                continue
            del runs[label]
            self._held.discard(label)
            error = None if task.cancelled() else task.exception()
            if isinstance(error, LeaseLostError):
                _log.info("%s: lease lost to another worker", label)
            elif isinstance(error, Exception):
                fatal[label] = error
            elif error is not None:
                raise error
            await store.release(self.worker, [label])
        if fatal:
            return
        live = await store.heartbeat(self.worker, self.ttl_ms)
        share = math.ceil(len(labels) / max(1, live))
        kept = set(await store.renew(self.worker, list(runs), self.ttl_ms))
        lost = [label for label in runs if label not in kept]
        extra = sorted(kept)[share:] if len(kept) > share else []
        if lost or extra:
            for label in lost:
                _log.info("%s: lease expired; stopping", label)
            await _stop([runs[label] for label in lost + extra])
            for label in lost + extra:
                del runs[label]
                self._held.discard(label)
            if extra:
                _log.info("giving back %s (share %d of %d)", ", ".join(extra), share, len(labels))
                await store.release(self.worker, extra)
        room = share - len(runs)
        if room > 0:
            free = [label for label in labels if label not in runs]
            for label in await store.acquire(self.worker, free, room, self.ttl_ms):
                _log.info("%s: leased by %s", label, self.worker)
                self._held.add(label)
                runs[label] = asyncio.ensure_future(
                    self._account(label, clients, once=False, interval=interval)
                )

    async def _renew_forever(self) -> None:
        """``run_once``: renew the held leases every third of their time to live."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            with contextlib.suppress(MarginError):
                await self.store.renew(self.worker, sorted(self._held), self.ttl_ms)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them (their commits in progress finish first)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed account: a lost lease first, else the first."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    for error in leaves:
        if isinstance(error, LeaseLostError):
            return error
    return leaves[0]
