"""``MarginClient``: one method per margin operation of one KuCoin account."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, TypeVar

import aiohttp

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
    Movement,
    TimeArg,
    page_number,
)
from margin_async.endpoints._params import (
    page_size as _page_size,
)
from margin_async.endpoints.leverage import leverage_request
from margin_async.endpoints.server_time import server_time_request
from margin_async.errors import MarginError, OutcomeUnknownError, ProtocolError
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
from margin_async.reconcile import CLOCK_TOLERANCE_MS, KnownOrders, find_order, same_margin
from margin_async.retry import RetryPolicy
from margin_async.session import DEFAULT_BASE_URL, Exposure, NotKuCoinError, Session

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
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | aiohttp.ClientTimeout = 10.0,
        on_response: ResponseHook | None = None,
        label: str | None = None,
        limiter: asyncio.Semaphore | None = None,
    ) -> None:
        self._session = Session(
            credentials,
            clock_request=server_time_request(),
            base_url=base_url,
            http=session,
            retry=retry,
            timeout=timeout,
            on_response=on_response,
            label=label,
            limiter=limiter,
        )
        self._credentials = credentials
        self._base_url = base_url
        self._label = label
        self._known = KnownOrders()
        self._movement_locks: dict[tuple[str, str, str | None, Decimal], asyncio.Lock] = {}
        # Identical movements whose outcome stayed unknown: their order, if any, could be
        # mistaken for a later one's, so they make its reconciliation ambiguous.
        self._unknown: dict[tuple[str, str, str | None, Decimal], int] = {}

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
        return await self._move(
            movement,
            _borrow.HISTORY,
            parse=lambda data: structure(data, BorrowResult),
            from_order=lambda o: BorrowResult(o.order_no, o.actual_size),
        )

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
        return await self._move(
            movement,
            _repay.HISTORY,
            parse=lambda data: structure(data, RepayResult),
            from_order=lambda o: RepayResult(o.order_no, o.principal + o.interest, o.created_time),
        )

    async def _move(
        self,
        movement: Movement,
        history: HistorySpec[OrderT],
        *,
        parse: Callable[[Any], ResultT],
        from_order: Callable[[OrderT], ResultT],
    ) -> ResultT:
        """Send a borrow/repay once; if its answer is lost or unreadable, find it in history."""
        key = (movement.request.path, movement.currency, movement.symbol, movement.size)
        # One identical movement at a time per client: if two were in flight and one
        # answer were lost, reconciliation could not tell whose order is whose.
        async with self._movement_locks.setdefault(key, asyncio.Lock()):
            offset_before = self._session.clock_offset_ms
            sent_at = self._session.now_ms()
            exposure = Exposure()
            try:
                try:
                    result = parse(await self._session.request(movement.request, exposure))
                except NotKuCoinError:
                    raise  # not the exchange: nothing there can have applied it
                except (OutcomeUnknownError, ProtocolError) as lost:
                    # A reply we cannot read may still be the answer to an applied order.
                    # A clock resync while sending moved "now": search from the earlier time.
                    since = sent_at + min(0, self._session.clock_offset_ms - offset_before)
                    earlier = self._unknown.get(key)
                    try:
                        order = await self._reconcile(
                            movement, history, since, lost, earlier_unknown=earlier
                        )
                    except OutcomeUnknownError:
                        self._unknown[key] = sent_at
                        raise
                    result = from_order(order)
            except asyncio.CancelledError:
                if exposure.sent:
                    # The caller gave up, but the exchange may have applied it: the same
                    # shadow as an unknown outcome, so a later twin cannot claim its order.
                    self._unknown[key] = sent_at
                    _log.warning(
                        "cancelled after sending; the outcome is unknown, check the "
                        "account's history before trying again: %s",
                        movement.request,
                    )
                raise
            self._known.add(result.order_no)
            return result

    async def _reconcile(
        self,
        movement: Movement,
        history: HistorySpec[OrderT],
        sent_at: int,
        lost: MarginError,
        *,
        earlier_unknown: int | None = None,
    ) -> OrderT:
        """The order ``movement`` created, read from history, or ``OutcomeUnknownError``.

        ``earlier_unknown`` is when an identical movement whose outcome stayed unknown
        was sent: if that was recently, a match could be its order, not this one's.
        """
        filters = HistoryFilter(
            currency=movement.currency,
            is_isolated=movement.symbol is not None,
            symbol=movement.symbol,
            start_time=sent_at - CLOCK_TOLERANCE_MS,
        )

        async def read_recent() -> Sequence[OrderT]:
            request = history.request(filters, 1, _RECONCILE_PAGE)
            return structure(await self._session.request(request), history.page_type).items

        def matches(order: OrderT) -> bool:
            return bool(
                order.currency == movement.currency
                and same_margin(order.symbol, movement.symbol)
                and order.size == movement.size
            )

        try:
            found = await find_order(read_recent, matches, self._known)
        except (MarginError, LookupError) as exc:
            # The history read often fails the way the request did: say it once.
            why = "the history read failed the same way" if str(exc) == str(lost) else str(exc)
            raise OutcomeUnknownError(
                f"{lost}; reconciliation could not tell: {why}. Check the account's "
                "history before trying again.",
                movement.request,
            ) from exc
        if (
            found is not None
            and earlier_unknown is not None
            and (earlier_unknown >= sent_at - _UNKNOWN_SHADOW_MS)
        ):
            raise OutcomeUnknownError(
                f"{lost}; order {found.order_no} matches, but so could an identical "
                "order sent moments before whose outcome is unknown. Check the account's "
                "history before trying again.",
                movement.request,
            ) from lost
        if found is None:
            raise OutcomeUnknownError(
                f"{lost}; no matching order in the account's history yet. Check it "
                "again before trying again.",
                movement.request,
            ) from lost
        return found

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
