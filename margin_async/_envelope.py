"""Decoding a reply: ``{"code", "data", "msg"}`` into data, or a typed error and what it
tells about the request's fate. Pure: no I/O, never raises.

The reply codes that decide whether a request may have been applied live here, each
with where it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from margin_async._errors import (
    ApiError,
    AuthenticationError,
    MarginError,
    ProtocolError,
    RateLimitError,
    TimestampError,
    TransportError,
)
from margin_async._retry import Failure

__all__ = [
    "PROCESSING_CODES",
    "SUCCESS_CODES",
    "NotKuCoinError",
    "Outcome",
    "decode",
    "int_header",
    "loads",
    "loads_stdlib",
]

#: Codes that mean success when the HTTP status is 2xx and ``data`` is well formed.
SUCCESS_CODES = frozenset(
    {
        "200000",  # every endpoint of the v3 margin API (margin-api.md)
        "200",  # KuCoin's 2023 documentation; python-kucoin and ccxt accept it too
    }
)
#: Codes that say the exchange may still apply the request: after a borrow or repay they
#: are reconciled against history like an HTTP 5xx, never read as "not done".
PROCESSING_CODES: Mapping[str, str] = {
    # KuCoin's margin error table: "A timeout has occurred. The system is currently
    # processing".
    "130202": "the exchange timed out and is still processing",
    # KuCoin's generic "Internal Server Error", also sent with HTTP 200.
    "500000": "internal error at the exchange",
}
TIMESTAMP_CODE = "400002"
RATE_LIMIT_CODE = "429000"
AUTH_CODES = frozenset({"400001", "400003", "400004", "400005", "400006", "400007"})
# KuCoin's API answers every request with a JSON envelope; a gateway in front of it may
# answer with a page of its own, but only for these statuses (overload, maintenance).
_GATEWAY_STATUSES = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})
# Characters of a reply shown in an error: enough to recognise it, short enough to read.
_EXCERPT = 120

# One decoder for every reply (json.loads would build a new one per call for parse_float).
_DECODER = json.JSONDecoder(parse_float=Decimal)


def loads_stdlib(body: bytes) -> Any:
    """``json.loads(body, parse_float=Decimal)``, with the decoder built once."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def _fast_decoder() -> Callable[[bytes], Any] | None:
    """msgspec's JSON decoder with ``Decimal`` for numbers with a fraction or exponent
    (the ``fast`` extra), or ``None`` when msgspec is not installed."""
    try:
        import msgspec
    except ImportError:
        return None
    decoder: Callable[[bytes], Any] = msgspec.json.Decoder(float_hook=Decimal).decode
    return decoder


#: The ``fast`` extra's decoder (msgspec), when installed; see :func:`loads`.
_fast_loads = _fast_decoder()


def loads(body: bytes) -> Any:
    """A reply body as Python values, numbers with a fraction or exponent as ``Decimal``:
    always what :func:`loads_stdlib` returns.

    With the ``fast`` extra (msgspec) installed, msgspec decodes, about twice as fast;
    its ``float_hook`` gets each number's text, as ``parse_float`` does. A body it
    refuses (NaN, a lone surrogate, a BOM, UTF-16, an integer of more than 4300 digits,
    ...) goes to the standard library, which accepts some of them and decides.
    """
    fast = _fast_loads
    if fast is not None:
        try:
            return fast(body)
        except Exception:  # msgspec.DecodeError, RecursionError, ...: stdlib decides
            pass
    return loads_stdlib(body)


class NotKuCoinError(ProtocolError):
    """The server answered in a way KuCoin's API never does (an HTML 404, a 501, ...):
    ``base_url`` most likely points somewhere else. Nothing there applied the request."""


@attrs.frozen
class Outcome:
    """The end of one attempt: data on success, else an error and what it means."""

    data: Any = None
    error: MarginError | None = None
    #: ``None`` means the error is final (resending would not help).
    failure: Failure | None = None
    #: The exchange refused the request's timestamp (400002): resync the clock, resend.
    clock_refused: bool = False


def int_header(headers: Mapping[str, str] | None, name: str) -> int | None:
    """A non-negative integer header, or ``None`` if absent or not plain ASCII digits."""
    value = headers.get(name) if headers is not None else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def excerpt(body: bytes, redact: Callable[[str], str]) -> str:
    """The start of ``body`` as one line of text, with secrets removed."""
    text = redact(body.decode("utf-8", errors="replace"))
    return " ".join(text[: _EXCERPT * 8].split())[:_EXCERPT] or "<empty body>"


def decode(
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    base_url: str,
    redact: Callable[[str], str],
) -> Outcome:
    """Map one HTTP reply to an :class:`Outcome`. ``redact`` removes secrets from any
    text of the reply that goes into an error."""
    try:
        envelope = loads(body)
    # JSONDecodeError, UnicodeDecodeError, deep nesting, and a number no Decimal holds
    # (1e99999999999999999999: decimal.InvalidOperation, an ArithmeticError).
    except (ValueError, RecursionError, ArithmeticError):
        envelope = None
    code = envelope.get("code") if isinstance(envelope, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not isinstance(envelope, dict):
        if status == 429:
            return Outcome(
                error=RateLimitError(
                    RATE_LIMIT_CODE,
                    "Too Many Requests",
                    status,
                    _reset_seconds(headers),
                ),
                failure=Failure.REFUSED,
            )
        if status in _GATEWAY_STATUSES:
            error = TransportError(
                f"HTTP {status} from the gateway: {excerpt(body, redact)}", status
            )
            return Outcome(error=error, failure=Failure.AMBIGUOUS)
        if not 200 <= status < 300:
            return Outcome(
                error=NotKuCoinError(
                    f"{base_url} is not a KuCoin API: it answered HTTP {status} with "
                    f"{excerpt(body, redact)!r}. Check base_url."
                )
            )
        what = "not a JSON object" if envelope is None else "a JSON value without a code"
        return Outcome(
            error=ProtocolError(f"HTTP {status}: reply is {what}: {excerpt(body, redact)}")
        )
    if code in SUCCESS_CODES and 200 <= status < 300:
        return Outcome(data=envelope.get("data"))
    raw_msg = envelope.get("msg")
    message = redact(raw_msg)[: _EXCERPT * 4] if isinstance(raw_msg, str) else "no message"
    if code in SUCCESS_CODES:
        return Outcome(error=ProtocolError(f"HTTP {status} with success code: {message}"))
    if status == 429 or code == RATE_LIMIT_CODE:
        return Outcome(
            error=RateLimitError(code, message, status, _reset_seconds(headers)),
            failure=Failure.REFUSED,
        )
    if code == TIMESTAMP_CODE:
        return Outcome(error=TimestampError(code, message, status), clock_refused=True)
    if code in AUTH_CODES:
        return Outcome(error=AuthenticationError(code, message, status))
    if status >= 500 or code in PROCESSING_CODES:
        return Outcome(error=ApiError(code, message, status), failure=Failure.AMBIGUOUS)
    return Outcome(error=ApiError(code, message, status))


#: The longest rate-limit reset believed, seconds: the exchange's window is 30 s.
MAX_RESET_SECONDS = 30.0


def _reset_seconds(headers: Mapping[str, str] | None) -> float | None:
    reset_ms = int_header(headers, "gw-ratelimit-reset")
    return None if reset_ms is None else min(reset_ms / 1000, MAX_RESET_SECONDS)
