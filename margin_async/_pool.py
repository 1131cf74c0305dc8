"""``AccountPool``: many accounts, one HTTP connection pool, bounded concurrency.

Each account gets its own :class:`~margin_async.MarginClient` (its own credentials,
clock offset and rate-limit budget, since KuCoin limits each account separately), and
every client shares one transport (one aiohttp connection pool) that caps the open
connections. History of all accounts can be read as one merged stream
(:meth:`AccountPool.merge`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Generic, Literal, TypeAlias, TypeVar, Unpack, overload

import attrs

from margin_async._auth import Credentials
from margin_async._client import MarginClient
from margin_async._endpoints._kwargs import HistoryFilters
from margin_async._errors import ClientClosedError, PoolError, ValidationError
from margin_async._events import ResponseHook, WaitHook
from margin_async._models import BorrowOrder, InterestRecord, RepayOrder
from margin_async._pagination import Paginator
from margin_async._retry import RetryPolicy
from margin_async._session import DEFAULT_BASE_URL
from margin_async._transport import AiohttpTransport, Timeout
from margin_async.types import CurrencyArg

__all__ = ["AccountError", "AccountPool", "AccountRecord", "PoolError"]

T = TypeVar("T")
R = TypeVar("R")

ErrorMode = Literal["raise", "yield"]

#: Records per page of the pool's streams: the API's maximum.
_PAGE_SIZE = 500
# Pages in flight per account. A pool gets its parallelism from walking many accounts at
# once, so a small prefetch keeps memory at about (accounts walked x 3) pages.
_POOL_PREFETCH = 2
#: Accounts walked at once by a merged stream, unless told otherwise.
DEFAULT_CONCURRENCY = 16


@attrs.frozen
class AccountRecord(Generic[T]):
    """One record of a merged stream, with the label of the account it belongs to."""

    account: str
    record: T


@attrs.frozen
class AccountError:
    """In a merged stream with ``errors="yield"``: this account's walk failed with ``error``.

    Records of the account yielded before the failure were real; the rest are missing.
    """

    account: str
    error: Exception


#: A merged stream (``errors="raise"``), and one that yields failures (``errors="yield"``).
Records: TypeAlias = AsyncGenerator[AccountRecord[T], None]
RecordsOrErrors: TypeAlias = AsyncGenerator[AccountRecord[T] | AccountError, None]


class _Done:
    """Marks the end of one account's walk in the merge queue."""


_DONE = _Done()

#: Any queue entry type (see AccountPool._next).
_Q = TypeVar("_Q")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(name, f"must be an int >= 1, got {value!r}")
    return value


class AccountPool:
    """Many :class:`MarginClient` instances over one shared HTTP session.

    ``accounts`` maps a label (any name: ``"alice"``) to that account's
    :class:`Credentials`. ``max_connections`` caps the TCP connections of the whole pool;
    ``max_in_flight`` caps the page requests the pool's streams have in flight at once
    across all accounts (and the :meth:`gather` calls running at once). ``retry``,
    ``timeout``, ``on_response`` and ``on_wait`` are passed to every client; each client is labelled
    with its account, so :class:`~margin_async.ResponseEvent` ``.label`` tells them apart.

    Use it as an async context manager (clients exist once it is entered)::

        async with AccountPool({"alice": a, "bob": b}) as pool:
            async for item in pool.interest_history():
                print(item.account, item.record.interest_amount)
            async for item in pool.merge(lambda c: c.borrow_history("USDT", prefetch=2)):
                print(item.account, item.record.size)

    :meth:`merge` merges any walk of every account; ``borrow_history``,
    ``repay_history`` and ``interest_history`` are its shorthands.
    """

    def __init__(
        self,
        accounts: Mapping[str, Credentials],
        *,
        base_url: str = DEFAULT_BASE_URL,
        max_connections: int = 32,
        max_in_flight: int = 64,
        retry: RetryPolicy | None = None,
        timeout: Timeout = 10.0,
        on_response: ResponseHook | None = None,
        on_wait: WaitHook | None = None,
    ) -> None:
        for label, creds in accounts.items():
            if not isinstance(label, str) or not label:
                raise ValidationError("accounts", f"labels must be non-empty strings: {label!r}")
            if not isinstance(creds, Credentials):
                raise ValidationError(
                    "accounts", f"{label!r} must map to a margin_async.Credentials"
                )
        self._credentials = dict(accounts)
        self._base_url = base_url
        self._max_connections = _positive_int("max_connections", max_connections)
        self._max_in_flight = _positive_int("max_in_flight", max_in_flight)
        self._retry = retry
        self._timeout = timeout
        self._on_response = on_response
        self._on_wait = on_wait
        self._transport: AiohttpTransport | None = None
        self._clients: dict[str, MarginClient] = {}
        self._gate = asyncio.Semaphore(self._max_in_flight)
        # Producer tasks of open merged streams, cancelled on close so none outlives the pool.
        self._tasks: set[asyncio.Task[None]] = set()
        # Set on close: wakes the consumers of open streams, whose producers are gone.
        self._closing = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"AccountPool({len(self)} accounts, base_url={self._base_url!r}, "
            f"max_connections={self._max_connections}, max_in_flight={self._max_in_flight})"
        )

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> AccountPool:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the shared session and one client per account (``async with`` does it)."""
        if self._closed:
            raise ClientClosedError("this pool is closed; create a new AccountPool")
        if self._transport is not None:
            return
        self._transport = AiohttpTransport(limit=self._max_connections)
        try:
            for label, creds in self._credentials.items():
                self._clients[label] = MarginClient(
                    creds,
                    base_url=self._base_url,
                    transport=self._transport,
                    retry=self._retry,
                    timeout=self._timeout,
                    on_response=self._on_response,
                    on_wait=self._on_wait,
                    label=label,
                    limiter=self._gate,
                )
        except BaseException:
            # A bad setting (a negative timeout, say) must not leave the session open.
            self._clients.clear()
            await self._transport.close()
            self._transport = None
            raise

    async def close(self) -> None:
        """Stop open streams, close every client and the shared session. Idempotent."""
        self._closed = True
        self._closing.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        if self._transport is not None:
            await self._transport.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    # -- accounts ---------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        """The account labels, in the order given."""
        return tuple(self._credentials)

    def __len__(self) -> int:
        return len(self._credentials)

    def __iter__(self) -> Iterator[str]:
        return iter(self._credentials)

    def __contains__(self, label: object) -> bool:
        return label in self._credentials

    def __getitem__(self, label: str) -> MarginClient:
        """The client of account ``label`` (the pool must be open)."""
        if label not in self._credentials:
            raise KeyError(label)
        if self._transport is None:
            raise ClientClosedError("the pool is not open: use `async with AccountPool(...)`")
        return self._clients[label]

    # -- many calls -------------------------------------------------------------------

    async def gather(
        self,
        call: Callable[[MarginClient], Awaitable[R]],
        *,
        concurrency: int | None = None,
    ) -> dict[str, R | Exception]:
        """Run ``call(client)`` for every account concurrently; return label -> result.

        A failing account's entry is its exception (the others are unaffected); check
        with ``isinstance(value, Exception)``. At most ``concurrency`` calls (default
        ``max_in_flight``) run at once.
        """
        slots = asyncio.Semaphore(
            self._max_in_flight
            if concurrency is None
            else _positive_int("concurrency", concurrency)
        )

        async def one(label: str) -> R | Exception:
            async with slots:
                try:
                    return await call(self[label])
                except Exception as exc:
                    return exc

        labels = self.labels
        results = await asyncio.gather(*(one(label) for label in labels))
        return dict(zip(labels, results, strict=True))

    # -- merged history streams -------------------------------------------------------

    @overload
    def merge(
        self,
        walk: Callable[[MarginClient], Paginator[T]],
        *,
        errors: Literal["raise"] = ...,
        concurrency: int = ...,
    ) -> Records[T]: ...

    @overload
    def merge(
        self,
        walk: Callable[[MarginClient], Paginator[T]],
        *,
        errors: Literal["yield"],
        concurrency: int = ...,
    ) -> RecordsOrErrors[T]: ...

    def merge(
        self,
        walk: Callable[[MarginClient], Paginator[T]],
        *,
        errors: ErrorMode = "raise",
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> RecordsOrErrors[T]:
        """Every account's walk ``walk(client)`` as one stream of :class:`AccountRecord`.

        ``walk`` opens one history walk of a client, e.g.
        ``pool.merge(lambda c: c.borrow_history("USDT", prefetch=2))``; it is called for
        every account now, so bad arguments raise here, not at the first item. A small
        ``prefetch`` (2, as the pool's own streams use) keeps memory at about (accounts
        walked x 3) pages: a pool's parallelism comes from its accounts.

        Up to ``concurrency`` accounts are walked at once, their requests in flight
        capped by the pool's ``max_in_flight``; records of one account come newest
        first, and the accounts interleave as their pages arrive. Memory stays bounded:
        a walk waits while the consumer is behind. Each account's walk pins its end time
        when it starts, as a client's walk does.

        ``errors="raise"`` (default): the first failing account stops the stream; the
        other walks are cancelled and :class:`PoolError` is raised (``.errors`` names
        every account that had failed by then); only :class:`AccountRecord` items are
        yielded. ``errors="yield"``: a failing account yields one :class:`AccountError`
        and the others carry on to the end.

        Leaving the loop early cancels the walks; to do so deterministically, wrap the
        stream in :func:`contextlib.aclosing`.
        """
        if errors not in ("raise", "yield"):
            raise ValidationError("errors", f"must be 'raise' or 'yield', got {errors!r}")
        _positive_int("concurrency", concurrency)
        if self._closed:
            raise ClientClosedError("this pool is closed; create a new AccountPool")
        walks = [(label, walk(self[label])) for label in self.labels]
        return self._merge(walks, errors, concurrency)

    # The three histories by name (as the README shows them): thin wrappers over merge.

    @overload
    def borrow_history(
        self,
        currency: CurrencyArg,
        *,
        errors: Literal["raise"] = ...,
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> Records[BorrowOrder]: ...

    @overload
    def borrow_history(
        self,
        currency: CurrencyArg,
        *,
        errors: Literal["yield"],
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[BorrowOrder]: ...

    def borrow_history(
        self,
        currency: CurrencyArg,
        *,
        errors: ErrorMode = "raise",
        concurrency: int = DEFAULT_CONCURRENCY,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[BorrowOrder]:
        """Every account's borrow orders as one stream (see :meth:`merge`)."""
        return self.merge(
            lambda c: c.borrow_history(currency, prefetch=_POOL_PREFETCH, **filters),
            errors=errors,
            concurrency=concurrency,
        )

    @overload
    def repay_history(
        self,
        currency: CurrencyArg,
        *,
        errors: Literal["raise"] = ...,
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> Records[RepayOrder]: ...

    @overload
    def repay_history(
        self,
        currency: CurrencyArg,
        *,
        errors: Literal["yield"],
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[RepayOrder]: ...

    def repay_history(
        self,
        currency: CurrencyArg,
        *,
        errors: ErrorMode = "raise",
        concurrency: int = DEFAULT_CONCURRENCY,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[RepayOrder]:
        """Every account's repay orders as one stream (see :meth:`merge`)."""
        return self.merge(
            lambda c: c.repay_history(currency, prefetch=_POOL_PREFETCH, **filters),
            errors=errors,
            concurrency=concurrency,
        )

    @overload
    def interest_history(
        self,
        currency: CurrencyArg | None = ...,
        *,
        errors: Literal["raise"] = ...,
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> Records[InterestRecord]: ...

    @overload
    def interest_history(
        self,
        currency: CurrencyArg | None = ...,
        *,
        errors: Literal["yield"],
        concurrency: int = ...,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[InterestRecord]: ...

    def interest_history(
        self,
        currency: CurrencyArg | None = None,
        *,
        errors: ErrorMode = "raise",
        concurrency: int = DEFAULT_CONCURRENCY,
        **filters: Unpack[HistoryFilters],
    ) -> RecordsOrErrors[InterestRecord]:
        """Every account's interest records as one stream (see :meth:`merge`)."""
        return self.merge(
            lambda c: c.interest_history(currency, prefetch=_POOL_PREFETCH, **filters),
            errors=errors,
            concurrency=concurrency,
        )

    async def _merge(
        self,
        walks: list[tuple[str, Paginator[T]]],
        errors: ErrorMode,
        concurrency: int,
    ) -> RecordsOrErrors[T]:
        # The queue holds whole pages: one slot per account walked at once is enough to
        # keep every walk busy while the consumer works, and bounds memory.
        queue: asyncio.Queue[tuple[str, tuple[T, ...] | Exception | _Done]] = asyncio.Queue(
            maxsize=concurrency
        )
        slots = asyncio.Semaphore(concurrency)

        async def produce(label: str, walk: Paginator[T]) -> None:
            async with slots:
                try:
                    async for item_page in walk.pages():
                        if item_page.items:
                            await queue.put((label, item_page.items))
                except Exception as exc:
                    await queue.put((label, exc))
                    return
            await queue.put((label, _DONE))

        tasks = [
            asyncio.create_task(produce(label, walk), name=f"margin-async pool: {label}")
            for label, walk in walks
        ]
        self._tasks.update(tasks)
        remaining = len(tasks)
        failed: dict[str, Exception] = {}
        try:
            while remaining:
                label, payload = await self._next(queue)
                if isinstance(payload, _Done):
                    remaining -= 1
                elif isinstance(payload, Exception):
                    remaining -= 1
                    if errors == "yield":
                        yield AccountError(label, payload)
                        continue
                    failed[label] = payload
                    break
                else:
                    for record in payload:
                        yield AccountRecord(label, record)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        if failed:
            # Other accounts may have failed at the same moment: report them too.
            while not queue.empty():
                label, payload = queue.get_nowait()
                if isinstance(payload, Exception):
                    failed.setdefault(label, payload)
            raise PoolError(failed) from next(iter(failed.values()))

    async def _next(self, queue: asyncio.Queue[_Q]) -> _Q:
        """The next queue entry, or :class:`ClientClosedError` if the pool closes first
        (its producers are cancelled then, so the queue would never fill again)."""
        if not queue.empty():
            return queue.get_nowait()
        if self._closing.is_set():
            raise ClientClosedError("the pool was closed while this stream was open")
        getter = asyncio.ensure_future(queue.get())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((getter, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            # A cancelled Queue.get takes nothing from the queue.
            getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise ClientClosedError("the pool was closed while this stream was open")
