"""The only module that uses aiohttp's client.

A :class:`Session` sends one :class:`~margin_async.request.Request` at a time on
behalf of one account: it signs it, charges the account's rate-limit budget, sends
it with a per-attempt timeout, decodes the ``{"code", "data"}`` envelope, resends
what the :class:`~margin_async.retry.RetryPolicy` allows, keeps the clock in step
with the exchange's, and turns every failure into a :class:`MarginError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
from yarl import URL

from margin_async._version import __version__
from margin_async.auth import Credentials, signed_headers
from margin_async.errors import (
    ApiError,
    AuthenticationError,
    ClientClosedError,
    MarginError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    TimestampError,
    TransportError,
    ValidationError,
)
from margin_async.events import ResponseEvent, ResponseHook
from margin_async.ratelimit import RateBudget
from margin_async.request import Request
from margin_async.retry import Failure, RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "Session"]

_log = logging.getLogger("margin_async")

DEFAULT_BASE_URL = "https://api.kucoin.com"
_SUCCESS = "200000"
_TIMESTAMP_CODE = "400002"
_RATE_LIMIT_CODE = "429000"
_AUTH_CODES = frozenset({"400001", "400003", "400004", "400005", "400006", "400007"})
# A history page of 500 records is about 100 KB; anything near this is not our API.
_MAX_BODY = 16 * 2**20
# Characters left unencoded in query values: RFC 3986 unreserved, plus "," which is legal
# in a query and which KuCoin signs as is (currency=BTC,ETH).
_QUERY_SAFE = "-_.~,"
_USER_AGENT = f"margin-async/{__version__}"
# 2001-09-09 .. 2286-11-20: anything outside is not a server clock in milliseconds.
_EPOCH_MS_RANGE = (10**12, 10**13)


@attrs.frozen
class _Outcome:
    """The end of one attempt: data on success, else a failure class and the error."""

    data: Any = None
    error: MarginError | None = None
    #: ``None`` means the error is final (not worth resending).
    failure: Failure | None = None
    clock_refused: bool = False


def _timeout(value: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError("timeout", f"must be seconds > 0 or a ClientTimeout, got {value!r}")
    return aiohttp.ClientTimeout(total=value)


# Keys and values made only of characters quote() leaves alone need no quoting (the usual
# case: codes, numbers, camelCase names); the result is the same string either way.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~-]*")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~,-]*")


def _encode_query(query: tuple[tuple[str, str], ...]) -> str:
    if all(_PLAIN_KEY.fullmatch(k) and _PLAIN_VALUE.fullmatch(v) for k, v in query):
        return "&".join(f"{k}={v}" for k, v in query)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=_QUERY_SAFE)}" for k, v in query)


# One decoder for every reply (json.loads would build a new one per call for parse_float).
_DECODER = json.JSONDecoder(parse_float=Decimal)


def _loads(body: bytes) -> Any:
    """``json.loads(body, parse_float=Decimal)``, with the decoder built once."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


class _Unlimited:
    """A limiter that never waits (no shared cap on requests in flight)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_UNLIMITED = _Unlimited()


def _int_header(headers: Any, name: str) -> int | None:
    """A non-negative integer header, or ``None`` if absent or not plain ASCII digits."""
    value = headers.get(name) if headers is not None else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", errors="replace")
    return " ".join(text.split())[:120] or "<empty body>"


def _decode(status: int, body: bytes, headers: Any) -> _Outcome:
    """Map one HTTP reply to an outcome (never raises)."""
    try:
        envelope = _loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, deep nesting
        envelope = None
    code = envelope.get("code") if isinstance(envelope, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not isinstance(envelope, dict):
        if status == 429:
            return _Outcome(
                error=RateLimitError(_RATE_LIMIT_CODE, "Too Many Requests", status),
                failure=Failure.REFUSED,
            )
        if status >= 500:
            error = TransportError(f"HTTP {status} from the gateway: {_snippet(body)}", status)
            return _Outcome(error=error, failure=Failure.AMBIGUOUS)
        what = "not a JSON object" if envelope is None else "a JSON value without a code"
        return _Outcome(error=ProtocolError(f"HTTP {status}: reply is {what}: {_snippet(body)}"))
    if code == _SUCCESS and 200 <= status < 300:
        return _Outcome(data=envelope.get("data"))
    raw_msg = envelope.get("msg")
    message = raw_msg if isinstance(raw_msg, str) else "no message"
    if code == _SUCCESS:
        return _Outcome(error=ProtocolError(f"HTTP {status} with success code: {message}"))
    if status == 429 or code == _RATE_LIMIT_CODE:
        reset_ms = _int_header(headers, "gw-ratelimit-reset")
        seconds = None if reset_ms is None else reset_ms / 1000
        return _Outcome(
            error=RateLimitError(code, message, status, seconds), failure=Failure.REFUSED
        )
    if code == _TIMESTAMP_CODE:
        return _Outcome(error=TimestampError(code, message, status), clock_refused=True)
    if code in _AUTH_CODES:
        return _Outcome(error=AuthenticationError(code, message, status))
    if status >= 500:
        return _Outcome(error=ApiError(code, message, status), failure=Failure.AMBIGUOUS)
    return _Outcome(error=ApiError(code, message, status))


class Session:
    """Signed, paced, retried requests for one account.

    ``http`` is a shared :class:`aiohttp.ClientSession` left open on :meth:`close`;
    without one, the session creates (and later closes) its own.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock_request: Request,
        base_url: str = DEFAULT_BASE_URL,
        http: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | aiohttp.ClientTimeout = 10.0,
        budget: RateBudget | None = None,
        on_response: ResponseHook | None = None,
        label: str | None = None,
        limiter: asyncio.Semaphore | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ValidationError("credentials", "must be a margin_async.Credentials")
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValidationError("base_url", f"must be an http(s) URL, got {base_url!r}")
        self._credentials = credentials
        self._base = str(url).rstrip("/")
        self._http = http
        self._owns_http = http is None
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = _timeout(timeout)
        self._budget = budget if budget is not None else RateBudget()
        self._clock_request = clock_request
        self._on_response = on_response
        self._label = label
        self._limiter: AbstractAsyncContextManager[Any] = (
            limiter if limiter is not None else _UNLIMITED
        )
        self._offset_ms = 0
        self._clock_generation = 0
        #: Wall-clock ns around the last HTTP exchange (for clock sync).
        self._last_exchange_ns = (0, 0)
        self._clock_lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def clock_offset_ms(self) -> int:
        """Milliseconds added to the local clock to match the exchange's (0 until synced)."""
        return self._offset_ms

    @property
    def budget(self) -> RateBudget:
        """This account's rate-limit budget."""
        return self._budget

    def now_ms(self) -> int:
        """The exchange's current time as this session estimates it, epoch ms."""
        return time.time_ns() // 1_000_000 + self._offset_ms

    async def close(self) -> None:
        """Close the HTTP session if this session created it; idempotent."""
        self._closed = True
        if self._owns_http and self._http is not None and not self._http.closed:
            await self._http.close()

    async def sync_clock(self) -> int:
        """Measure the exchange's clock, apply the offset to later requests, return it (ms).

        The server's time is compared with the local clock halfway through the round trip
        of the attempt that answered (waits for the limiter or a backoff do not count).
        """
        data = await self.request(self._clock_request)
        sent_ns, received_ns = self._last_exchange_ns
        if isinstance(data, bool) or not isinstance(data, int | Decimal):
            raise ProtocolError(f"server time is not epoch milliseconds: {data!r}")
        if not _EPOCH_MS_RANGE[0] <= data <= _EPOCH_MS_RANGE[1]:
            raise ProtocolError(f"server time {data} is not a plausible epoch in milliseconds")
        self._offset_ms = int(data) - (sent_ns + received_ns) // 2_000_000
        self._clock_generation += 1
        _log.info("clock synced with the exchange: offset %+d ms", self._offset_ms)
        return self._offset_ms

    async def request(self, request: Request) -> Any:
        """Send ``request`` under the retry policy and return the envelope's ``data``."""
        limit = self._retry.attempts
        if self._closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        url = URL(
            self._base
            + request.path
            + ("?" + _encode_query(request.query) if request.query else ""),
            encoded=True,
        )
        attempt = 0
        clock_resent = False
        while True:
            attempt += 1
            generation = self._clock_generation
            outcome = await self._attempt(request, url, attempt)
            error = outcome.error
            if error is None:
                return outcome.data
            if outcome.clock_refused:
                if clock_resent or request is self._clock_request:
                    raise error
                clock_resent = True
                async with self._clock_lock:
                    if self._clock_generation == generation:
                        await self.sync_clock()
                attempt -= 1  # the resync resend does not use up an attempt
                continue
            failure = outcome.failure
            if failure is None:
                raise error
            if not self._retry.may_resend(request, failure):
                raise OutcomeUnknownError(
                    f"{request.method} {request.path} may or may not have been applied: {error}",
                    request,
                ) from error
            if attempt >= limit:
                if attempt > 1 and isinstance(error, TransportError):
                    raise TransportError(
                        f"{error} (gave up after {attempt} attempts)", error.http_status
                    ) from error
                raise error
            delay = self._retry.delay(attempt)
            if isinstance(error, RateLimitError) and error.retry_after is not None:
                # The budget learned the reset from this reply and waits for it itself.
                delay = 0.0
            _log.info(
                "%s %s failed (%s); resend %d of %d in %.2f s",
                request.method,
                request.path,
                error,
                attempt,
                limit - 1,
                delay,
            )
            await asyncio.sleep(delay)

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64), headers={"User-Agent": _USER_AGENT}
            )
        if self._http.closed:
            raise ClientClosedError("the aiohttp.ClientSession behind this client is closed")
        return self._http

    def _headers(self, request: Request) -> dict[str, str]:
        if request.signed:
            headers = signed_headers(
                self._credentials,
                self.now_ms(),
                request.method,
                request.path_with_query,
                request.body,
            )
        else:
            headers = {}
        if request.body:
            headers["Content-Type"] = "application/json"
        if not self._owns_http:
            headers["User-Agent"] = _USER_AGENT
        return headers

    async def _attempt(self, request: Request, url: URL, attempt: int) -> _Outcome:
        http = self._http_session()
        await self._budget.acquire(request.weight)
        reply_headers: Any = None
        status: int | None = None
        started = time.perf_counter()
        received_at: float | None = None
        try:
            # Signed inside the limiter: a long wait there must not age the timestamp.
            async with self._limiter:
                if self._closed or http.closed:
                    raise ClientClosedError("this client was closed while the request waited")
                started = time.perf_counter()
                sent_ns = time.time_ns()
                async with http.request(
                    request.method,
                    url,
                    data=request.body or None,
                    headers=self._headers(request),
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    received_at = time.monotonic()
                    self._last_exchange_ns = (sent_ns, time.time_ns())
                    status = response.status
                    reply_headers = response.headers
                    body = await self._read(response)
            outcome = _decode(status, body, reply_headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            outcome = _Outcome(
                error=TransportError(f"cannot connect to {self._base}: {exc}"),
                failure=Failure.NOT_SENT,
            )
        except ProtocolError as exc:
            outcome = _Outcome(error=exc)
        except TimeoutError:
            total = self._timeout.total
            outcome = _Outcome(
                error=TransportError(f"no reply within {total} s from {self._base}"),
                failure=Failure.AMBIGUOUS,
            )
        except aiohttp.ClientError as exc:
            outcome = _Outcome(
                error=TransportError(
                    f"connection to {self._base} failed: {type(exc).__name__}: {exc}"
                ),
                failure=Failure.AMBIGUOUS,
            )
        finally:
            self._budget.release(request.weight, reply_headers, received_at)
        self._report(
            request, attempt, status, reply_headers, outcome, time.perf_counter() - started
        )
        return outcome

    @staticmethod
    async def _read(response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None:
            if length > _MAX_BODY:
                raise ProtocolError(f"reply of {length} bytes is too large for this API")
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(2**16):
            size += len(chunk)
            if size > _MAX_BODY:
                raise ProtocolError(
                    f"reply larger than {_MAX_BODY} bytes is too large for this API"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _report(
        self,
        request: Request,
        attempt: int,
        status: int | None,
        headers: Any,
        outcome: _Outcome,
        latency: float,
    ) -> None:
        if self._on_response is None and not _log.isEnabledFor(logging.DEBUG):
            return
        code = None
        if outcome.error is None:
            code = _SUCCESS
        elif isinstance(outcome.error, ApiError):
            code = outcome.error.code
        remaining = _int_header(headers, "gw-ratelimit-remaining")
        error = None if outcome.error is None else str(outcome.error)
        _log.debug(
            "%s %s attempt=%d status=%s code=%s latency_ms=%.1f ratelimit_remaining=%s%s",
            request.method,
            request.path,
            attempt,
            status,
            code,
            latency * 1000,
            remaining,
            "" if error is None else f" error={error!r}",
        )
        if self._on_response is not None:
            event = ResponseEvent(
                request.method,
                request.path,
                attempt,
                status,
                code,
                latency,
                remaining,
                error,
                self._label,
            )
            try:
                self._on_response(event)
            except Exception:
                _log.exception("on_response hook raised; ignored")
