"""``GET /api/v1/timestamp``: the exchange's clock (public, unsigned)."""

from __future__ import annotations

from margin_async.request import Request

__all__ = ["server_time_request"]

PATH = "/api/v1/timestamp"


def server_time_request() -> Request:
    """The unsigned request for the server's time in epoch ms."""
    return Request("GET", PATH, weight=0, signed=False)
