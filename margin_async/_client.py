"""``MarginClient``: one method per margin operation of one KuCoin account.

The methods are thin: each operation is declared once in :mod:`margin_async._endpoints`
(path, weight, safety, parameters with their checks and wire names, reply model), and
:meth:`MarginClient._call` is the one place a reply becomes its model (openai-python's
``cast_to``). Borrow and repay go through :mod:`margin_async._reconcile`; history walks
through :mod:`margin_async._history`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import NoneType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, cast

from margin_async._auth import Credentials
from margin_async._convert import structure
from margin_async._endpoints import borrow as _borrow
from margin_async._endpoints import interest as _interest
from margin_async._endpoints import repay as _repay
from margin_async._endpoints._kwargs import (
    MarginMode,
    MoneyOptions,
    OrderPageQuery,
    OrderWalkQuery,
    PageQuery,
    WalkQuery,
)
from margin_async._endpoints._params import Endpoint, HistorySpec, page_size
from margin_async._endpoints.leverage import LEVERAGE
from margin_async._endpoints.server_time import server_time_request
from margin_async._errors import ValidationError
from margin_async._events import ResponseHook, WaitHook
from margin_async._history import history_walk
from margin_async._models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    Page,
    RepayOrder,
    RepayResult,
    TimeInForce,
)
from margin_async._pagination import Paginator
from margin_async._reconcile import KnownOrders, Reconciler
from margin_async._retry import RetryPolicy
from margin_async._session import DEFAULT_BASE_URL, Session
from margin_async._transport import AiohttpTransport, Timeout, Transport
from margin_async.types import Amount, CurrencyArg

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_PAGE_SIZE", "DEFAULT_PREFETCH", "MarginClient"]

M = TypeVar("M")
T = TypeVar("T")

#: Records per page when streaming a history: the API's maximum.
DEFAULT_PAGE_SIZE = 500
#: Pages in flight when streaming a history. With the first page alone in flight, a
#: walk of 100 pages at prefetch p is at most ~p times faster than a sequential one;
#: 8 leaves headroom over the 4x target while the rate-limit budget keeps it in quota.
DEFAULT_PREFETCH = 8


def _cast(data: Any, model: type[M]) -> M:
    """A reply's ``data`` as ``model``; ``NoneType``: the reply carries nothing of use."""
    if model is NoneType:
        return cast(M, None)
    return structure(data, model)


class MarginClient:
    """Async client for KuCoin's margin borrowing API (v3), for one account.

    Use it as an async context manager (or call :meth:`close`). ``session`` is an
    optional shared :class:`aiohttp.ClientSession` (left open on close); ``timeout``
    is seconds per attempt or an :class:`aiohttp.ClientTimeout`; ``retry`` says how
    failures are resent (borrow and repay are never resent blindly). ``on_response``
    is called after every attempt with a :class:`~margin_async.ResponseEvent`, and
    ``on_wait`` with a :class:`~margin_async.WaitEvent` when a request starts waiting
    (for the rate limit, or before a resend); ``label`` names the client in those
    events. ``limiter`` is an :class:`asyncio.Semaphore` held while each request is in
    flight: share one among
    many clients to cap their requests in flight together (``AccountPool`` does).
    ``transport`` (internal: ``AccountPool`` and tests) replaces ``session``: a transport
    shared by many clients, which the client does not close.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout = 10.0,
        on_response: ResponseHook | None = None,
        label: str | None = None,
        limiter: asyncio.Semaphore | None = None,
        transport: Transport | None = None,
        on_wait: WaitHook | None = None,
    ) -> None:
        if transport is not None and session is not None:
            raise ValidationError("session", "give a session or a transport, not both")
        self._session = Session(
            credentials,
            clock_request=server_time_request(),
            base_url=base_url,
            transport=transport if transport is not None else AiohttpTransport(session),
            owns_transport=transport is None,
            retry=retry,
            timeout=timeout,
            on_response=on_response,
            label=label,
            limiter=limiter,
            on_wait=on_wait,
        )
        self._credentials = credentials
        self._base_url = base_url
        self._label = label
        known = KnownOrders()
        self._borrows = Reconciler(
            self._session,
            known,
            _borrow.HISTORY,
            parse=lambda data: _cast(data, _borrow.BORROW.model),
            from_order=lambda o: BorrowResult(o.order_no, o.actual_size),
        )
        self._repays = Reconciler(
            self._session,
            known,
            _repay.HISTORY,
            parse=lambda data: _cast(data, _repay.REPAY.model),
            from_order=lambda o: RepayResult(o.order_no, o.principal + o.interest, o.created_time),
        )

    def __repr__(self) -> str:
        label = f", label={self._label!r}" if self._label else ""
        key = self._credentials.api_key
        return f"MarginClient(api_key={key!r}, base_url={self._base_url!r}{label})"

    async def __aenter__(self) -> MarginClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client (and its HTTP session, if it created it). Idempotent.

        History walks and follow streams still open stop fetching pages first.
        """
        from margin_async._history import close_walks

        await close_walks(self._session)
        await self._session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._session.closed

    @property
    def label(self) -> str | None:
        """The label given at construction (e.g. an account name), or ``None``."""
        return self._label

    @property
    def clock_offset_ms(self) -> int:
        """Milliseconds added to the local clock to match the exchange's (0 until synced)."""
        return self._session.clock_offset_ms

    async def sync_clock(self) -> int:
        """Measure the offset to the exchange's clock now, apply it, and return it (ms).

        Not needed in normal use: a refused timestamp (400002) triggers a resync.
        """
        return await self._session.sync_clock()

    # -- the one call site ------------------------------------------------------------

    async def _call(self, endpoint: Endpoint[M], /, **arguments: object) -> M:
        """Validate ``arguments``, send, and structure the reply as ``endpoint.model``."""
        return _cast(await self._session.request(endpoint.build(arguments)), endpoint.model)

    def _walk(
        self, spec: HistorySpec[T], currency: CurrencyArg | None, query: Mapping[str, Any]
    ) -> Paginator[T]:
        """A walk of ``spec``: filters validated now, ``page_size`` per page, ``prefetch``."""
        filters = dict(query)
        size = filters.pop("page_size", DEFAULT_PAGE_SIZE)
        prefetch = filters.pop("prefetch", DEFAULT_PREFETCH)
        checked = spec.filters(currency, **filters)
        return history_walk(self._session, spec, checked, page_size(size), prefetch)

    # -- moving money ---------------------------------------------------------------

    async def borrow(
        self,
        currency: str,
        size: Amount,
        time_in_force: TimeInForce | str = TimeInForce.IOC,
        **options: Unpack[MoneyOptions],
    ) -> BorrowResult:
        """Borrow ``size`` (Decimal, str or int; floats are refused) of ``currency``.

        ``time_in_force`` IOC takes what is available, FOK all or nothing. Isolated
        margin needs ``is_isolated=True`` and ``symbol`` (``"BTC-USDT"``); ``is_hf=True``
        borrows high-frequency. Never sent twice: if the answer is lost, the account's
        history is checked, and :class:`OutcomeUnknownError` is raised when that cannot
        tell.
        """
        arguments = {"currency": currency, "size": size, "time_in_force": time_in_force}
        return await self._borrows.move(_borrow.BORROW.movement({**arguments, **options}))

    async def repay(
        self, currency: str, size: Amount, **options: Unpack[MoneyOptions]
    ) -> RepayResult:
        """Repay up to ``size`` of ``currency`` (accrued interest first, then principal).

        Takes the options of :meth:`borrow`, with the same safety: never sent twice.
        """
        arguments = {"currency": currency, "size": size}
        return await self._repays.move(_repay.REPAY.movement({**arguments, **options}))

    async def modify_leverage(self, leverage: Amount, **mode: Unpack[MarginMode]) -> None:
        """Set the account's leverage multiplier (> 1, at most two decimals, e.g. ``"3.5"``)."""
        await self._call(LEVERAGE, leverage=leverage, **mode)

    # -- history: one page ------------------------------------------------------------

    async def get_borrow_history(
        self, currency: CurrencyArg, **query: Unpack[OrderPageQuery]
    ) -> Page[BorrowOrder]:
        """One page of borrow orders, newest first (``page_size`` 10..500, default 50)."""
        return await self._call(_borrow.HISTORY, currency=currency, **query)

    async def get_repay_history(
        self, currency: CurrencyArg, **query: Unpack[OrderPageQuery]
    ) -> Page[RepayOrder]:
        """One page of repay orders, newest first (``page_size`` 10..500, default 50)."""
        return await self._call(_repay.HISTORY, currency=currency, **query)

    async def get_interest_history(
        self, currency: CurrencyArg | None = None, **query: Unpack[PageQuery]
    ) -> Page[InterestRecord]:
        """One page of interest records, newest first (``page_size`` 10..500, default 50)."""
        return await self._call(_interest.HISTORY, currency=currency, **query)

    # -- history: streams -------------------------------------------------------------

    def borrow_history(
        self, currency: CurrencyArg, **query: Unpack[OrderWalkQuery]
    ) -> Paginator[BorrowOrder]:
        """Every borrow order matching the filters, newest first, across all pages."""
        return self._walk(_borrow.HISTORY, currency, query)

    def repay_history(
        self, currency: CurrencyArg, **query: Unpack[OrderWalkQuery]
    ) -> Paginator[RepayOrder]:
        """Every repay order matching the filters, newest first, across all pages."""
        return self._walk(_repay.HISTORY, currency, query)

    def interest_history(
        self, currency: CurrencyArg | None = None, **query: Unpack[WalkQuery]
    ) -> Paginator[InterestRecord]:
        """Every interest record matching the filters, newest first, across all pages."""
        return self._walk(_interest.HISTORY, currency, query)
