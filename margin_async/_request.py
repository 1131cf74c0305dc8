"""The description of one API call, as endpoints build it and the session sends it."""

from __future__ import annotations

import enum

import attrs

__all__ = ["Request", "Safety"]


class Safety(enum.Enum):
    """What the session may do when a request fails before an answer arrives."""

    #: Reading, or setting a value (leverage): resending is harmless.
    RETRYABLE = "retryable"
    #: Moves money (borrow, repay) with no idempotency key: resend only if it provably
    #: never reached the exchange or was refused before processing.
    MONEY = "money"


@attrs.frozen
class Request:
    """One API call: method, path, unencoded query pairs or JSON body bytes, and its weight.

    ``query`` values are the plain strings that are signed (``"BTC,ETH"``); the session
    percent-encodes only what must be. ``body`` is the exact compact JSON sent.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    #: Rate-limit weight charged against the account's pool.
    weight: int = 0
    safety: Safety = Safety.RETRYABLE
    #: Public endpoints (server time) are sent without signature headers.
    signed: bool = True

    @property
    def path_with_query(self) -> str:
        """The path and unencoded query, as signed."""
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in self.query)

    def __str__(self) -> str:
        body = f" {self.body.decode(errors='replace')}" if self.body else ""
        return f"{self.method} {self.path_with_query}{body}"
