"""The keyword arguments callers pass, typed once (``**kwargs: Unpack[...]``).

These TypedDicts are the caller's side of the parameters that
:mod:`margin_async._endpoints._params` declares with their checks and wire names;
``tests/test_endpoints.py`` checks that both sides name the same keywords. All keys are
optional: a keyword left out takes the endpoint's default.
"""

from __future__ import annotations

from typing import TypedDict

from margin_async.types import TimeArg

__all__ = [
    "HistoryFilters",
    "MarginMode",
    "MoneyOptions",
    "OrderFilters",
    "OrderPageQuery",
    "OrderWalkQuery",
    "PageQuery",
    "WalkQuery",
]


class MarginMode(TypedDict, total=False):
    """Cross margin by default; isolated margin is ``is_isolated=True`` with ``symbol``
    (``"BTC-USDT"``)."""

    is_isolated: bool
    symbol: str | None


class MoneyOptions(MarginMode, total=False):
    """Options of a borrow or repay: the margin mode, and ``is_hf`` (high-frequency
    borrowing, the API's ``isHf``; default ``False``)."""

    is_hf: bool


class HistoryFilters(MarginMode, total=False):
    """Filters of every history: the margin mode, and a window from ``start_time`` to
    ``end_time`` (epoch milliseconds, or aware ``datetime``; both ends included)."""

    start_time: TimeArg | None
    end_time: TimeArg | None


class OrderFilters(HistoryFilters, total=False):
    """Filters of borrow and repay history: those of every history, and ``order_no``."""

    order_no: str | None


class _Paging(TypedDict, total=False):
    #: Page number, from 1 (default 1).
    current_page: int
    #: Records per page, 10..500 (default 50).
    page_size: int


class _Walking(TypedDict, total=False):
    #: Records per page, 10..500 (default 500, the maximum).
    page_size: int
    #: Pages in flight while pages remain, >= 1 (default 8).
    prefetch: int


class PageQuery(HistoryFilters, _Paging, total=False):
    """One page of interest history: its filters, ``current_page`` and ``page_size``."""


class OrderPageQuery(OrderFilters, _Paging, total=False):
    """One page of borrow or repay history: its filters, ``current_page``, ``page_size``."""


class WalkQuery(HistoryFilters, _Walking, total=False):
    """A walk of interest history: its filters, ``page_size`` and ``prefetch``."""


class OrderWalkQuery(OrderFilters, _Walking, total=False):
    """A walk of borrow or repay history: its filters, ``page_size`` and ``prefetch``."""
