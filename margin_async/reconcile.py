"""Finding out whether a borrow or repay whose answer was lost was applied.

After an ambiguous failure (timeout, connection reset after sending, HTTP 5xx) the
client reads the account's history from shortly before the moment it sent the
request and looks for the order. A record matches when:

- its currency, isolated symbol and requested ``size`` equal ours (for cross margin the
  exchange writes ``""``, ``null`` or ``"DEFAULT"``: all three mean cross);
- it was created no earlier than ``CLOCK_TOLERANCE_MS`` before we sent (the exchange
  refuses timestamps further off than 5 s, so our clock is at most that far off);
- its order number is not one this client already knows (returned by an earlier call).

In an account with a single writer (this client), no other order can meet all three,
so a unique match is ours. With several writers on one account, an identical order of
another writer placed within seconds can match; if two candidates match, the outcome is
reported unknown rather than guessed. Give each writer its own sub-account to keep the
guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["CLOCK_TOLERANCE_MS", "KnownOrders", "find_order", "same_margin"]

_log = logging.getLogger("margin_async")

#: How far before our send time an order of ours may be stamped, ms.
CLOCK_TOLERANCE_MS = 5_000


# How history records spell cross margin (null arrives as "" from the converter).
_CROSS = frozenset({"", "DEFAULT"})


def same_margin(recorded: str | None, requested: str | None) -> bool:
    """Whether a history record's ``symbol`` is the margin a request asked for
    (``requested`` is ``None`` for cross margin, else the isolated symbol)."""
    if requested is None:
        return recorded is None or recorded in _CROSS
    return recorded == requested


class _Order(Protocol):
    @property
    def order_no(self) -> str: ...


OrderT = TypeVar("OrderT", bound=_Order)


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
