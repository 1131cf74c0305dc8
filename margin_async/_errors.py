"""The exception hierarchy: every failure a caller can see is a :class:`MarginError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from margin_async._request import Request

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ClientClosedError",
    "MarginError",
    "OutcomeUnknownError",
    "PoolError",
    "ProtocolError",
    "RateLimitError",
    "TimestampError",
    "TransportError",
    "ValidationError",
]


class MarginError(Exception):
    """Base class of every error margin-async raises."""


class ValidationError(MarginError, ValueError):
    """An argument is invalid; raised before any request is sent.

    ``argument`` names the offending parameter (Python spelling).
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class ClientClosedError(MarginError, RuntimeError):
    """A method was called on a :class:`~margin_async.MarginClient` that is closed."""


class ApiError(MarginError):
    """The exchange answered with an error code.

    ``code`` is the wire string (``"400100"``), ``message`` the exchange's ``msg``,
    ``http_status`` the HTTP status of the reply.
    """

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(f"KuCoin error {code} (HTTP {http_status}): {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class AuthenticationError(ApiError):
    """The exchange refused the credentials (codes 400001-400007 except 400002).

    Check the API key, secret, passphrase, key version, IP allow-list and permissions.
    """


class TimestampError(ApiError):
    """The request timestamp was refused (code 400002) even after a clock resync."""


class RateLimitError(ApiError):
    """The account's rate limit was exceeded (HTTP 429, code 429000) on every attempt.

    ``retry_after`` is how long the exchange asked to wait, in seconds, when it said.
    """

    def __init__(
        self, code: str, message: str, http_status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(code, message, http_status)
        self.retry_after = retry_after


class TransportError(MarginError):
    """The network or the gateway failed on every attempt (connection, timeout, HTTP 5xx page).

    ``http_status`` is the last HTTP status seen, or ``None`` if no reply arrived.
    """

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class ProtocolError(MarginError):
    """The reply is not what the API promises: not JSON, wrong shape, a field missing or
    mistyped."""


class OutcomeUnknownError(MarginError):
    """A borrow or repay may or may not have executed, and reconciliation could not tell.

    ``request`` is the request that was sent (without credentials). Look the order up in
    the account's history (or the exchange's web UI) before trying again: resending
    blindly can borrow or repay twice.
    """

    def __init__(self, message: str, request: Request) -> None:
        super().__init__(message)
        self.request = request


class PoolError(MarginError):
    """One or more accounts of a pool operation failed.

    ``errors`` maps each failed account's label to its exception (the first failure is
    also the ``__cause__``).
    """

    def __init__(self, errors: Mapping[str, Exception]) -> None:
        self.errors: dict[str, Exception] = dict(errors)
        first, error = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        suffix = f" (and {more} more account{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"account {first!r} failed: {error}{suffix}")
