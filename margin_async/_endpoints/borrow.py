"""``POST /api/v3/margin/borrow`` and ``GET /api/v3/margin/borrow`` (history)."""

from __future__ import annotations

from typing import Any

from margin_async._endpoints import _params as p
from margin_async._models import BorrowOrder, BorrowResult, TimeInForce

__all__ = ["BORROW", "HISTORY", "borrow_request"]

PATH = "/api/v3/margin/borrow"


def _time_in_force(value: object) -> str:
    return p.time_in_force(value).value


#: Borrow ``size`` of ``currency``: IOC takes what is available, FOK all or nothing.
BORROW = p.MoneyEndpoint(
    "borrow",
    PATH,
    weight=15,
    model=BorrowResult,
    params=(
        p.Param("currency", "currency", p.currency),
        p.Param("size", "size", p.amount),
        p.Param("time_in_force", "timeInForce", _time_in_force, default=TimeInForce.IOC),
        *p.MARGIN_MODE_BODY,
        p.IS_HF,
    ),
)
#: Borrow orders, newest first.
HISTORY = p.HistorySpec(PATH, weight=15, item=BorrowOrder, name="borrow history")


def borrow_request(
    currency: str, size: p.Amount, time_in_force: TimeInForce | str, **options: Any
) -> p.Movement:
    """Validate a borrow and build its request (``options``: symbol, is_isolated, is_hf)."""
    return BORROW.movement(
        {"currency": currency, "size": size, "time_in_force": time_in_force, **options}
    )
