"""``POST /api/v3/margin/borrow`` and ``GET /api/v3/margin/borrow`` (history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.models import TimeInForce
from margin_async.request import Request, Safety

__all__ = ["HISTORY", "borrow_request"]

PATH = "/api/v3/margin/borrow"
HISTORY = p.HistorySpec(PATH, weight=15)


def borrow_request(
    currency: str,
    size: p.Amount,
    time_in_force: TimeInForce | str,
    *,
    symbol: str | None = None,
    is_isolated: bool = False,
    is_hf: bool = False,
) -> Request:
    """Validate a borrow and build its request (only flags set to ``True`` are sent)."""
    fields: dict[str, object] = {
        "currency": p.currency(currency),
        "size": p.amount(size),
        "timeInForce": p.time_in_force(time_in_force).value,
    }
    sym = p.margin_mode(symbol, is_isolated)
    if sym is not None:
        fields["symbol"] = sym
        fields["isIsolated"] = True
    if p.flag(is_hf, "is_hf"):
        fields["isHf"] = True
    return Request("POST", PATH, body=p.json_body(fields), weight=15, safety=Safety.MONEY)
