"""``POST /api/v3/margin/borrow`` and ``GET /api/v3/margin/borrow`` (history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.models import BorrowOrder, TimeInForce

__all__ = ["HISTORY", "borrow_request"]

PATH = "/api/v3/margin/borrow"
HISTORY = p.HistorySpec(PATH, weight=15, item=BorrowOrder)


def borrow_request(
    currency: str,
    size: p.Amount,
    time_in_force: TimeInForce | str,
    *,
    symbol: str | None = None,
    is_isolated: bool = False,
    is_hf: bool = False,
) -> p.Movement:
    """Validate a borrow and build its request."""
    fields: dict[str, object] = {
        "currency": p.currency(currency),
        "size": p.amount(size),
        "timeInForce": p.time_in_force(time_in_force).value,
    }
    return p.movement(PATH, 15, fields, symbol=symbol, is_isolated=is_isolated, is_hf=is_hf)
