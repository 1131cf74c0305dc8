"""``POST /api/v3/margin/repay`` and ``GET /api/v3/margin/repay`` (history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.models import RepayOrder

__all__ = ["HISTORY", "repay_request"]

PATH = "/api/v3/margin/repay"
HISTORY = p.HistorySpec(PATH, weight=15, item=RepayOrder)


def repay_request(
    currency: str,
    size: p.Amount,
    *,
    symbol: str | None = None,
    is_isolated: bool = False,
    is_hf: bool = False,
) -> p.Movement:
    """Validate a repay and build its request."""
    fields: dict[str, object] = {"currency": p.currency(currency), "size": p.amount(size)}
    return p.movement(PATH, 10, fields, symbol=symbol, is_isolated=is_isolated, is_hf=is_hf)
