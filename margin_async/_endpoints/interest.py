"""``GET /api/v3/margin/interest`` (interest history)."""

from __future__ import annotations

from margin_async._endpoints import _params as p
from margin_async._models import InterestRecord

__all__ = ["HISTORY"]

#: Interest records, newest first; the currency is optional and there is no order number.
HISTORY = p.HistorySpec(
    "/api/v3/margin/interest",
    weight=20,
    item=InterestRecord,
    currency_required=False,
    filters=p.HISTORY_FILTERS,
    name="interest history",
)
