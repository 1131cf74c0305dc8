"""``MarginClient``: one method per margin operation of one KuCoin account."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar

from margin_async._transport import AiohttpTransport, Timeout, Transport
from margin_async.auth import Credentials
from margin_async.convert import structure
from margin_async.endpoints import borrow as _borrow
from margin_async.endpoints import interest as _interest
from margin_async.endpoints import repay as _repay
from margin_async.endpoints._params import (
    Amount,
    CurrencyArg,
    HistoryFilter,
    HistorySpec,
    TimeArg,
    page_number,
)
from margin_async.endpoints._params import (
    page_size as _page_size,
)
from margin_async.endpoints.leverage import leverage_request
from margin_async.endpoints.server_time import server_time_request
from margin_async.errors import ValidationError
from margin_async.events import ResponseHook
from margin_async.history import history_walk
from margin_async.models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    Page,
    RepayOrder,
    RepayResult,
    TimeInForce,
)
from margin_async.pagination import Paginator
from margin_async.reconcile import KnownOrders, Reconciler
from margin_async.retry import RetryPolicy
from margin_async.session import DEFAULT_BASE_URL, Session

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_PAGE_SIZE", "DEFAULT_PREFETCH", "MarginClient"]

T = TypeVar("T")

_log = logging.getLogger("margin_async")


class _Order(Protocol):
    """What reconciliation reads of a borrow or repay order."""

    @property
    def order_no(self) -> str: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def symbol(self) -> str: ...
    @property
    def size(self) -> Decimal: ...


class _Result(Protocol):
    @property
    def order_no(self) -> str: ...


OrderT = TypeVar("OrderT", bound=_Order)
ResultT = TypeVar("ResultT", bound=_Result)

#: Records per page when streaming a history: the API's maximum.
DEFAULT_PAGE_SIZE = 500
#: Pages in flight when streaming a history. With the first page alone in flight, a
#: walk of 100 pages at prefetch p is at most ~p times faster than a sequential one;
#: 8 leaves headroom over the 4x target while the rate-limit budget keeps it in quota.
DEFAULT_PREFETCH = 8
# How long an identical movement with an unknown outcome makes a match ambiguous, ms: its
# order, if it was applied, bears a time near its own sending.
_UNKNOWN_SHADOW_MS = 60_000
# Records per reconciliation read; one writer cannot place more within seconds.
_RECONCILE_PAGE = 100


class MarginClient:
    """Async client for KuCoin's margin borrowing API (v3), for one account.

    Use it as an async context manager (or call :meth:`close`). ``session`` is an
    optional shared :class:`aiohttp.ClientSession` (left open on close); ``timeout``
    is seconds per attempt or an :class:`aiohttp.ClientTimeout`; ``retry`` says how
    failures are resent (borrow and repay are never resent blindly). ``on_response``
    is called after every attempt with a :class:`~margin_async.ResponseEvent`;
    ``label`` names the client in those events. ``limiter`` is an
    :class:`asyncio.Semaphore` held while each request is in flight: share one among
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
        )
        self._credentials = credentials
        self._base_url = base_url
        self._label = label
        known = KnownOrders()
        self._borrows = Reconciler(
            self._session,
            known,
            _borrow.HISTORY,
            parse=lambda data: structure(data, BorrowResult),
            from_order=lambda o: BorrowResult(o.order_no, o.actual_size),
        )
        self._repays = Reconciler(
            self._session,
            known,
            _repay.HISTORY,
            parse=lambda data: structure(data, RepayResult),
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
        from margin_async.history import close_walks

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

    # -- moving money ---------------------------------------------------------------

    async def borrow(
        self,
        currency: str,
        size: Amount,
        time_in_force: TimeInForce | str = TimeInForce.IOC,
        *,
        symbol: str | None = None,
        is_isolated: bool = False,
        is_hf: bool = False,
    ) -> BorrowResult:
        """Borrow ``size`` (Decimal, str or int; floats are refused) of ``currency``.

        ``time_in_force`` IOC takes what is available, FOK all or nothing. Isolated
        margin needs ``is_isolated=True`` and ``symbol`` (``"BTC-USDT"``). Never sent
        twice: if the answer is lost, the account's history is checked, and
        :class:`OutcomeUnknownError` is raised when that cannot tell.
        """
        movement = _borrow.borrow_request(
            currency, size, time_in_force, symbol=symbol, is_isolated=is_isolated, is_hf=is_hf
        )
        return await self._borrows.move(movement)

    async def repay(
        self,
        currency: str,
        size: Amount,
        *,
        symbol: str | None = None,
        is_isolated: bool = False,
        is_hf: bool = False,
    ) -> RepayResult:
        """Repay up to ``size`` of ``currency`` (accrued interest first, then principal).

        Same safety as :meth:`borrow`: never sent twice.
        """
        movement = _repay.repay_request(
            currency, size, symbol=symbol, is_isolated=is_isolated, is_hf=is_hf
        )
        return await self._repays.move(movement)

    async def modify_leverage(
        self, leverage: Amount, *, symbol: str | None = None, is_isolated: bool = False
    ) -> None:
        """Set the account's leverage multiplier (> 1, at most two decimals, e.g. ``"3.5"``)."""
        await self._session.request(
            leverage_request(leverage, symbol=symbol, is_isolated=is_isolated)
        )

    # -- history: one page ------------------------------------------------------------

    async def get_borrow_history(
        self,
        currency: CurrencyArg,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        order_no: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        current_page: int = 1,
        page_size: int = 50,
    ) -> Page[BorrowOrder]:
        """One page of borrow orders, newest first (``page_size`` 10..500)."""
        filters = _borrow.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            order_no=order_no,
            start_time=start_time,
            end_time=end_time,
        )
        return await self._page(_borrow.HISTORY, filters, current_page, page_size)

    async def get_repay_history(
        self,
        currency: CurrencyArg,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        order_no: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        current_page: int = 1,
        page_size: int = 50,
    ) -> Page[RepayOrder]:
        """One page of repay orders, newest first (``page_size`` 10..500)."""
        filters = _repay.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            order_no=order_no,
            start_time=start_time,
            end_time=end_time,
        )
        return await self._page(_repay.HISTORY, filters, current_page, page_size)

    async def get_interest_history(
        self,
        currency: CurrencyArg | None = None,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        current_page: int = 1,
        page_size: int = 50,
    ) -> Page[InterestRecord]:
        """One page of interest records, newest first (``page_size`` 10..500)."""
        filters = _interest.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            start_time=start_time,
            end_time=end_time,
        )
        return await self._page(_interest.HISTORY, filters, current_page, page_size)

    async def _page(
        self, spec: HistorySpec[T], filters: HistoryFilter, current: int, size: int
    ) -> Page[T]:
        request = spec.request(filters, page_number(current), _page_size(size))
        return structure(await self._session.request(request), spec.page_type)

    # -- history: streams -------------------------------------------------------------

    def borrow_history(
        self,
        currency: CurrencyArg,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        order_no: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> Paginator[BorrowOrder]:
        """Every borrow order matching the filters, newest first, across all pages."""
        filters = _borrow.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            order_no=order_no,
            start_time=start_time,
            end_time=end_time,
        )
        return self._stream(_borrow.HISTORY, filters, page_size, prefetch)

    def repay_history(
        self,
        currency: CurrencyArg,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        order_no: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> Paginator[RepayOrder]:
        """Every repay order matching the filters, newest first, across all pages."""
        filters = _repay.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            order_no=order_no,
            start_time=start_time,
            end_time=end_time,
        )
        return self._stream(_repay.HISTORY, filters, page_size, prefetch)

    def interest_history(
        self,
        currency: CurrencyArg | None = None,
        *,
        is_isolated: bool = False,
        symbol: str | None = None,
        start_time: TimeArg | None = None,
        end_time: TimeArg | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> Paginator[InterestRecord]:
        """Every interest record matching the filters, newest first, across all pages."""
        filters = _interest.HISTORY.filters(
            currency,
            is_isolated=is_isolated,
            symbol=symbol,
            start_time=start_time,
            end_time=end_time,
        )
        return self._stream(_interest.HISTORY, filters, page_size, prefetch)

    def _stream(
        self, spec: HistorySpec[T], filters: HistoryFilter, size: int, prefetch: int
    ) -> Paginator[T]:
        return history_walk(self._session, spec, filters, _page_size(size), prefetch)
