"""``POST /api/v3/margin/repay`` and ``GET /api/v3/margin/repay`` (history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.request import Request, Safety

__all__ = ["HISTORY", "repay_request"]

PATH = "/api/v3/margin/repay"
HISTORY = p.HistorySpec(PATH, weight=15)


def repay_request(
    currency: str,
    size: p.Amount,
    *,
    symbol: str | None = None,
    is_isolated: bool = False,
    is_hf: bool = False,
) -> Request:
    """Validate a repay and build its request (only flags set to ``True`` are sent)."""
    fields: dict[str, object] = {"currency": p.currency(currency), "size": p.amount(size)}
    sym = p.margin_mode(symbol, is_isolated)
    if sym is not None:
        fields["symbol"] = sym
        fields["isIsolated"] = True
    if p.flag(is_hf, "is_hf"):
        fields["isHf"] = True
    return Request("POST", PATH, body=p.json_body(fields), weight=10, safety=Safety.MONEY)
