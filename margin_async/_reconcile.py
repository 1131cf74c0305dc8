"""The reconciliation policy: how a borrow or repay whose answer was lost is settled.

A movement is sent once. After an ambiguous failure (timeout, connection reset after
sending, HTTP 5xx, a "still processing" code, a reply that cannot be read) the client
reads the account's history from shortly before the moment it sent the request and
looks for the order. A record matches when:

- its currency, margin mode and requested ``size`` equal ours (for cross margin the
  exchange writes ``""``, ``null`` or ``"DEFAULT"``: all three mean cross);
- it was created no earlier than ``CLOCK_TOLERANCE_MS`` before we sent (the exchange
  refuses timestamps further off than 5 s, so our clock is at most that far off);
- its order number is not one this client already knows (returned by an earlier call).

In an account with a single writer (this client), no other order can meet all three,
so a unique match is ours. With several writers on one account, an identical order of
another writer placed within seconds can match; if two candidates match, the outcome is
reported unknown rather than guessed. Give each writer its own sub-account to keep the
guarantee.

Two more rules keep a match from being another call's order: identical movements of one
client are sent one at a time, and a movement whose outcome stayed unknown (an
:class:`OutcomeUnknownError`, or a cancellation after it may have been sent) leaves a
shadow: for a minute, a match for an identical movement is reported unknown too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from margin_async._convert import structure
from margin_async._endpoints._params import HistoryFilter, HistorySpec, Movement
from margin_async._errors import MarginError, OutcomeUnknownError, ProtocolError
from margin_async._session import CLOCK_TOLERANCE_MS, Exposure, NotKuCoinError, Session

__all__ = [
    "CLOCK_TOLERANCE_MS",
    "KnownOrders",
    "Reconciler",
    "find_order",
    "same_margin",
]

_log = logging.getLogger("margin_async")

# How long an identical movement with an unknown outcome makes a match ambiguous, ms: its
# order, if it was applied, bears a time near its own sending.
_UNKNOWN_SHADOW_MS = 60_000
# Records per reconciliation read; one writer cannot place more within seconds.
_RECONCILE_PAGE = 100
# How history records spell cross margin (null arrives as "" from the converter).
_CROSS = frozenset({"", "DEFAULT"})


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
    @property
    def created_time(self) -> int | None: ...
    @property
    def raw(self) -> Mapping[str, Any] | None: ...


class _Result(Protocol):
    @property
    def order_no(self) -> str: ...


OrderT = TypeVar("OrderT", bound=_Order)
ResultT = TypeVar("ResultT", bound=_Result)
_Key = tuple[str, str, str | None, Decimal]


def same_margin(recorded: str | None, requested: str | None) -> bool:
    """Whether a history record's ``symbol`` is the margin a request asked for
    (``requested`` is ``None`` for cross margin, else the isolated symbol)."""
    if requested is None:
        return recorded is None or recorded in _CROSS
    return recorded == requested


def _symbol_readable(order: _Order) -> bool:
    """Whether the record's ``symbol`` is what the exchange sent (not a stand-in ``""``
    for a missing or mistyped value, which says nothing of the margin mode)."""
    raw = order.raw
    return raw is None or (isinstance(raw.get("symbol"), str | None) and "symbol" in raw)


class KnownOrders:
    """The most recent order numbers this client has seen (bounded)."""

    __slots__ = ("_order", "_set")

    def __init__(self, capacity: int = 10_000) -> None:
        self._order: deque[str] = deque(maxlen=capacity)
        self._set: set[str] = set()

    def add(self, order_no: str) -> None:
        """Remember ``order_no``, forgetting the oldest one when full."""
        if order_no in self._set:
            return
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(order_no)
        self._set.add(order_no)

    def __contains__(self, order_no: object) -> bool:
        return order_no in self._set


async def find_order(
    read_recent: Callable[[], Awaitable[Sequence[OrderT]]],
    matches: Callable[[OrderT], bool],
    known: KnownOrders,
    *,
    reads: int = 3,
    interval: float = 0.5,
) -> OrderT | None:
    """Return the one order of ``read_recent()`` that ``matches`` and is not ``known``.

    History can lag the order by a moment, so an empty result is read again (``reads``
    times in all, ``interval`` seconds apart). ``None`` means no match was seen; it does
    not prove the order was never applied. Several matches raise ``LookupError``.
    """
    for read in range(reads):
        if read:
            await asyncio.sleep(interval)
        candidates = [o for o in await read_recent() if o.order_no not in known and matches(o)]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            numbers = ", ".join(o.order_no for o in candidates)
            raise LookupError(f"{len(candidates)} orders match: {numbers}")
    return None


class Reconciler(Generic[OrderT, ResultT]):
    """Sends one kind of movement (borrow or repay) for one client, under the policy above.

    ``history`` is where its orders appear; ``parse`` reads the exchange's answer;
    ``from_order`` turns a reconciled order into the same result type.
    """

    def __init__(
        self,
        session: Session,
        known: KnownOrders,
        history: HistorySpec[OrderT],
        *,
        parse: Callable[[Any], ResultT],
        from_order: Callable[[OrderT], ResultT],
    ) -> None:
        self._session = session
        self._known = known
        self._history = history
        self._parse = parse
        self._from_order = from_order
        self._locks: dict[_Key, asyncio.Lock] = {}
        #: When each identical movement whose outcome stayed unknown was sent (ms).
        self._unknown: dict[_Key, int] = {}

    async def move(self, movement: Movement) -> ResultT:
        """Send ``movement`` once; if its answer is lost or unreadable, find it in history."""
        key = (movement.request.path, movement.currency, movement.symbol, movement.size)
        # One identical movement at a time: if two were in flight and one answer were
        # lost, history could not tell whose order is whose.
        async with self._locks.setdefault(key, asyncio.Lock()):
            offset_before = self._session.clock_offset_ms
            sent_at = self._session.now_ms()
            exposure = Exposure()
            try:
                result = await self._send(movement, key, sent_at, offset_before, exposure)
            except OutcomeUnknownError:
                self._unknown[key] = sent_at
                raise
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

    async def _send(
        self,
        movement: Movement,
        key: _Key,
        sent_at: int,
        offset_before: int,
        exposure: Exposure,
    ) -> ResultT:
        try:
            return self._parse(await self._session.request(movement.request, exposure))
        except NotKuCoinError:
            raise  # not the exchange: nothing there can have applied it
        except (OutcomeUnknownError, ProtocolError) as lost:
            # A reply we cannot read may still be the answer to an applied order. A clock
            # resync while sending moved "now": search from the earlier time.
            since = sent_at + min(0, self._session.clock_offset_ms - offset_before)
            order = await self._search(movement, since, lost, self._unknown.get(key))
            try:
                return self._from_order(order)
            except (ArithmeticError, ValueError) as exc:
                raise self._unknown_error(
                    movement, lost, f"order {order.order_no} matches but is unreadable: {exc}"
                ) from exc

    async def _search(
        self, movement: Movement, sent_at: int, lost: MarginError, earlier_unknown: int | None
    ) -> OrderT:
        """The order ``movement`` created, read from history, or ``OutcomeUnknownError``.

        ``earlier_unknown`` is when an identical movement whose outcome stayed unknown
        was sent: if that was recently, a match could be its order, not this one's.
        """
        history = self._history
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
                and order.size == movement.size
                and same_margin(order.symbol, movement.symbol)
                and _symbol_readable(order)
            )

        try:
            found = await find_order(read_recent, matches, self._known)
        except (MarginError, LookupError) as exc:
            # The history read often fails the way the request did: say it once.
            why = "the history read failed the same way" if str(exc) == str(lost) else str(exc)
            raise self._unknown_error(movement, lost, why) from exc
        if found is None:
            raise self._unknown_error(
                movement, lost, "no matching order in the account's history yet"
            ) from lost
        if earlier_unknown is not None and earlier_unknown >= sent_at - _UNKNOWN_SHADOW_MS:
            raise self._unknown_error(
                movement,
                lost,
                f"order {found.order_no} matches, but so could an identical order sent "
                "moments before whose outcome is unknown",
            ) from lost
        if found.created_time is None:
            raise self._unknown_error(
                movement, lost, f"order {found.order_no} matches but carries no creation time"
            ) from lost
        return found

    @staticmethod
    def _unknown_error(movement: Movement, lost: MarginError, why: str) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"{lost}; reconciliation could not tell: {why}. The outcome is unknown: check "
            "the account's history before trying again.",
            movement.request,
        )
