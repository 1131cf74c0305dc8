"""``POST /api/v3/position/update-user-leverage``."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.errors import ValidationError
from margin_async.request import Request, Safety

__all__ = ["leverage_request"]

PATH = "/api/v3/position/update-user-leverage"


def leverage_request(
    leverage: p.Amount, *, symbol: str | None = None, is_isolated: bool = False
) -> Request:
    """Validate a leverage change (> 1, at most two decimals) and build its request."""
    value = p.amount(leverage, name="leverage")
    if value <= 1:
        raise ValidationError("leverage", f"must be greater than 1, got {leverage!r}")
    text = p.format_decimal(value)
    if "." in text and len(text.split(".")[1]) > 2:
        raise ValidationError("leverage", f"allows at most two decimals, got {leverage!r}")
    fields: dict[str, object] = {}
    sym = p.margin_mode(symbol, is_isolated)
    if sym is not None:
        fields["symbol"] = sym
        fields["isIsolated"] = True
    fields["leverage"] = text
    # Setting the same leverage twice is harmless, so it is retried like a read.
    return Request("POST", PATH, body=p.json_body(fields), weight=8, safety=Safety.RETRYABLE)
