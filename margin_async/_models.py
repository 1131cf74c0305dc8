"""Typed results of the margin API: frozen, slotted attrs classes.

Every amount and ratio is a :class:`~decimal.Decimal`; every time is ``int`` epoch
milliseconds, with a UTC :class:`~datetime.datetime` property alongside.

Liberal in what is accepted (see DESIGN.md): a field typed without ``None`` is needed
to identify a record or to act on it, and a reply where it is missing, ``null`` or
unreadable is a :class:`~margin_async._errors.ProtocolError` naming the wire field. A
field typed ``X | None`` is optional: ``None`` when the exchange left it out, sent
``null`` or sent something unreadable; the record still comes back, with the reply's
own fields in ``raw`` and a warning logged once per model, field and kind of problem.
``symbol`` is the one exception: always a ``str``, ``""`` for cross margin.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms_to_datetime(ms: int | None) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime; ``None`` for ``None`` or a time no
    datetime can hold (outside years 1..9999)."""
    if ms is None:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=ms)  # exact: no float rounding
    except OverflowError:
        return None


class _Wire:
    """Base of the models: ``raw`` reads ``None`` until set.

    The hot structure functions of :mod:`margin_async._convert` leave the ``raw`` slot
    of a well-formed record unset (one store less per record); reading an unset slot
    raises ``AttributeError``, which Python then hands to ``__getattr__`` here.
    Everything attrs generates (``evolve``, pickling, ``asdict``) reads fields with
    ``getattr`` and so sees ``None`` too.
    """

    __slots__ = ()

    if not TYPE_CHECKING:  # to mypy, a class with __getattr__ has every attribute

        def __getattr__(self, name: str) -> Any:
            if name == "raw":
                return None
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


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
class BorrowResult(_Wire):
    """The answer to a borrow: the order number and the amount actually borrowed.

    Both are required. ``raw`` is always ``None`` here (no field is optional); it is
    present so that every model has one.
    """

    order_no: str
    #: Amount actually borrowed, in units of the currency.
    actual_size: Decimal
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)


@attrs.frozen
class RepayResult(_Wire):
    """The answer to a repay: order number, amount repaid, and server time (epoch ms).

    ``timestamp`` is optional (``None`` when the reply has none); ``raw`` is the
    reply's ``data`` object when it was missing or unreadable, else ``None``.
    """

    order_no: str
    #: Amount actually repaid, in units of the currency.
    actual_size: Decimal
    #: Server time of the repay, epoch ms; ``None`` if the reply had none.
    timestamp: int | None
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def time(self) -> datetime | None:
        """``timestamp`` as an aware UTC datetime (``None`` if there is none)."""
        return _ms_to_datetime(self.timestamp)


@attrs.frozen
class BorrowOrder(_Wire):
    """One record of borrow history. ``symbol`` is ``""`` for cross margin.

    Required: ``order_no``, ``size``, ``actual_size``. Optional (``None`` when missing
    or unreadable, with the wire record in ``raw``): ``currency``, ``status``,
    ``created_time``.
    """

    order_no: str
    symbol: str
    currency: str | None
    #: Amount requested, in units of the currency.
    size: Decimal
    #: Amount actually borrowed, in units of the currency.
    actual_size: Decimal
    status: OrderStatus | None
    #: When the order was created, epoch ms.
    created_time: int | None
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def created_at(self) -> datetime | None:
        """``created_time`` (epoch ms) as an aware UTC datetime, or ``None``."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class RepayOrder(_Wire):
    """One record of repay history: ``size`` requested, split into ``principal`` and
    ``interest``. ``symbol`` is ``""`` for cross margin.

    Required: ``order_no``, ``size``, ``principal``, ``interest``. Optional (``None``
    when missing or unreadable, with the wire record in ``raw``): ``currency``,
    ``status``, ``created_time``.
    """

    order_no: str
    symbol: str
    currency: str | None
    #: Amount requested, in units of the currency.
    size: Decimal
    #: Principal repaid, in units of the currency.
    principal: Decimal
    #: Interest repaid, in units of the currency.
    interest: Decimal
    status: OrderStatus | None
    #: When the order was created, epoch ms.
    created_time: int | None
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def created_at(self) -> datetime | None:
        """``created_time`` (epoch ms) as an aware UTC datetime, or ``None``."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class InterestRecord(_Wire):
    """One interest accrual: daily rate ``day_ratio`` and ``interest_amount`` charged.

    Required: ``interest_amount``. Optional (``None`` when missing or unreadable, with
    the wire record in ``raw``): ``currency``, ``day_ratio``, ``created_time``.
    """

    currency: str | None
    #: Daily interest rate, a fraction (``0.0001`` is 0.01 % a day).
    day_ratio: Decimal | None
    #: Interest charged, in units of the currency.
    interest_amount: Decimal
    #: When the interest was charged, epoch ms.
    created_time: int | None
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def created_at(self) -> datetime | None:
        """``created_time`` (epoch ms) as an aware UTC datetime, or ``None``."""
        return _ms_to_datetime(self.created_time)


@attrs.frozen
class Page(_Wire, Generic[T]):
    """One page of a history: its ``items`` (newest first) and the paging counters.

    ``items`` and the four counters are required: a walk acts on all of them (which
    page this is, how many follow, and whether ``totalPage`` agrees with ``totalNum``
    and ``pageSize`` and ``totalNum`` stays put mid-walk); guessing one would risk
    losing records silently. ``timestamp`` is optional (a page captured from the live
    API had none). ``raw`` is set only when ``timestamp`` was missing or unreadable:
    the page's wire fields other than ``items`` (each item keeps its own ``raw``).
    """

    items: tuple[T, ...]
    #: Number of this page, from 1.
    current_page: int
    #: Records per page, as the exchange applied it.
    page_size: int
    #: Records in the whole history (all pages).
    total_num: int
    #: Number of pages in the whole history.
    total_page: int
    #: Server time of the reply, epoch ms; ``None`` if the page had none.
    timestamp: int | None
    #: The wire object as received, set only when an optional field was missing, null
    #: or unreadable (and so became ``None`` or ``""``); else ``None``. Not part of
    #: equality, hashing or ``repr``.
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
