"""``GET /api/v3/margin/interest`` (interest history)."""

from __future__ import annotations

from margin_async.endpoints import _params as p

__all__ = ["HISTORY"]

HISTORY = p.HistorySpec("/api/v3/margin/interest", weight=20)
