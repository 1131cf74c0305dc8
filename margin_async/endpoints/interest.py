"""``GET /api/v3/margin/interest`` (interest history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p
from margin_async.models import InterestRecord

__all__ = ["HISTORY"]

HISTORY = p.HistorySpec(
    "/api/v3/margin/interest", weight=20, item=InterestRecord, currency_required=False
)
