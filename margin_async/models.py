"""Typed results of the margin API: frozen, slotted attrs classes.

Every amount and ratio is a :class:`~decimal.Decimal`; every time is ``int`` epoch
milliseconds, with a UTC :class:`~datetime.datetime` property alongside.
"""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, TypeVar

import attrs

__all__ = [
    "BorrowOrder",
    "BorrowResult",
    "InterestRecord",
    "OrderStatus",
    "Page",
    "RepayOrder",
    "RepayResult",
    "TimeInForce",
]

_log = logging.getLogger("margin_async")
_unknown_statuses_logged: set[str] = set()

T = TypeVar("T")


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class TimeInForce(enum.StrEnum):
    """How a borrow is filled: ``IOC`` takes what is available, ``FOK`` all or nothing."""

    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(enum.StrEnum):
    """Status of a borrow or repay order.

    A status this version does not know still comes back (never dropped): as a
    pseudo-member whose ``value`` is the raw wire string and ``known`` is ``False``.
    """

    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def known(self) -> bool:
        """``False`` for a status string this version of margin-async does not know."""
        return self._name_ in type(self).__members__

    @classmethod
    def _missing_(cls, value: object) -> OrderStatus | None:
        if not isinstance(value, str):
            return None
        if value not in _unknown_statuses_logged:
            _unknown_statuses_logged.add(value)
            _log.warning("unknown order status %r from the exchange; kept verbatim", value)
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member


@attrs.frozen
class BorrowResult:
    """The answer to a borrow: the order number and the amount actually borrowed."""

    order_no: str
    actual_size: Decimal


@attrs.frozen
class RepayResult:
    """The answer to a repay: order number, amount repaid, and server time (epoch ms)."""

    order_no: str
    actual_size: Decimal
    timestamp: int

    @property
    def time(self) -> datetime:
        """``timestamp`` as an aware UTC datetime."""
        return _ms_to_datetime(self.timestamp)


@attrs.frozen
class BorrowOrder:
    """One record of borrow history. ``symbol`` is ``""`` for cross margin."""

    order_no: str
    symbol: str
    currency: str
    size: Decimal
    actual_size: Decimal
    status: OrderStatus
    created_time: int

    @property
    def created_at(self) -> datetime:
        """``created_time`` (epoch ms) as an aware UTC datetime."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class RepayOrder:
    """One record of repay history: ``size`` requested, split into ``principal`` and
    ``interest``. ``symbol`` is ``""`` for cross margin."""

    order_no: str
    symbol: str
    currency: str
    size: Decimal
    principal: Decimal
    interest: Decimal
    status: OrderStatus
    created_time: int

    @property
    def created_at(self) -> datetime:
        """``created_time`` (epoch ms) as an aware UTC datetime."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class InterestRecord:
    """One interest accrual: daily rate ``day_ratio`` and ``interest_amount`` charged."""

    currency: str
    day_ratio: Decimal
    interest_amount: Decimal
    created_time: int

    @property
    def created_at(self) -> datetime:
        """``created_time`` (epoch ms) as an aware UTC datetime."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class Page(Generic[T]):
    """One page of a history: its ``items`` (newest first) and the paging counters."""

    items: tuple[T, ...]
    current_page: int
    page_size: int
    total_num: int
    total_page: int
    #: Server time of the reply, epoch ms.
    timestamp: int
