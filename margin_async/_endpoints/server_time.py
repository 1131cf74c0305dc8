"""``GET /api/v1/timestamp``: the exchange's clock (public, unsigned)."""

from __future__ import annotations

from margin_async._endpoints import _params as p
from margin_async._request import Request, Safety

__all__ = ["SERVER_TIME", "server_time_request"]

#: The server's time in epoch ms; public, so unsigned, and costs no weight.
SERVER_TIME = p.Endpoint(
    "server time",
    "GET",
    "/api/v1/timestamp",
    weight=0,
    safety=Safety.RETRYABLE,
    model=int,
    signed=False,
)


def server_time_request() -> Request:
    """The unsigned request for the server's time in epoch ms."""
    return SERVER_TIME.build({})
