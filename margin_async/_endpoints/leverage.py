"""``POST /api/v3/position/update-user-leverage``."""

from __future__ import annotations

from types import NoneType
from typing import Any

from margin_async._endpoints import _params as p
from margin_async._request import Request, Safety

__all__ = ["LEVERAGE", "leverage_request"]

PATH = "/api/v3/position/update-user-leverage"

#: Set the leverage multiplier (> 1, at most two decimals, sent as a JSON string).
#: Setting the same leverage twice is harmless, so it is retried like a read; the reply
#: carries nothing of use.
LEVERAGE = p.Endpoint(
    "modify leverage",
    "POST",
    PATH,
    weight=8,
    safety=Safety.RETRYABLE,
    model=NoneType,
    # The margin mode goes first on the wire but is checked after the leverage.
    params=(p.SYMBOL, p.IS_ISOLATED, p.Param("leverage", "leverage", p.leverage), p.MARGIN_MODE),
)


def leverage_request(leverage: p.Amount, **options: Any) -> Request:
    """Validate a leverage change and build its request (``options``: symbol, is_isolated)."""
    return LEVERAGE.build({"leverage": leverage, **options})
