"""``POST /api/v3/margin/repay`` and ``GET /api/v3/margin/repay`` (history)."""

from __future__ import annotations

from typing import Any

from margin_async._endpoints import _params as p
from margin_async._models import RepayOrder, RepayResult

__all__ = ["HISTORY", "REPAY", "repay_request"]

PATH = "/api/v3/margin/repay"

#: Repay up to ``size`` of ``currency`` (accrued interest first, then principal).
REPAY = p.MoneyEndpoint(
    "repay",
    PATH,
    weight=10,
    model=RepayResult,
    params=(
        p.Param("currency", "currency", p.currency),
        p.Param("size", "size", p.amount),
        *p.MARGIN_MODE_BODY,
        p.IS_HF,
    ),
)
#: Repay orders, newest first.
HISTORY = p.HistorySpec(PATH, weight=15, item=RepayOrder, name="repay history")


def repay_request(currency: str, size: p.Amount, **options: Any) -> p.Movement:
    """Validate a repay and build its request (``options``: symbol, is_isolated, is_hf)."""
    return REPAY.movement({"currency": currency, "size": size, **options})
