"""The only module that uses aiohttp's client.

A :class:`Session` sends one :class:`~margin_async.request.Request` at a time on
behalf of one account: it signs it, charges the account's rate-limit budget, sends
it with a per-attempt timeout, decodes the ``{"code", "data"}`` envelope, resends
what the :class:`~margin_async.retry.RetryPolicy` allows, keeps the clock in step
with the exchange's, and turns every failure into a :class:`MarginError`.

Money (borrow, repay) is sent on a fresh connection each time, from a connection pool of
its own: a keep-alive connection that sat idle may have been closed by a gateway without
our side knowing yet, and a request written on it cannot be proven unsent. A trace of
each money request tells whether its headers left, so that "never sent" is known, not
guessed (a connect timeout included).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from margin_async._version import __version__
from margin_async.auth import Credentials, signed_headers
from margin_async.envelope import (
    RATE_LIMIT_CODE,
    NotKuCoinError,
    Outcome,
    decode,
    int_header,
)
from margin_async.errors import (
    ApiError,
    ClientClosedError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from margin_async.events import ResponseEvent, ResponseHook
from margin_async.ratelimit import BudgetExhausted, RateBudget
from margin_async.redact import Redactor
from margin_async.request import Request, Safety
from margin_async.retry import Failure, RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "Exposure", "NotKuCoinError", "Session"]

_log = logging.getLogger("margin_async")

DEFAULT_BASE_URL = "https://api.kucoin.com"
# A history page of 500 records is about 100 KB; anything near this is not our API. The
# cap is on the decoded body: a small gzip reply can inflate to gigabytes.
_MAX_BODY = 16 * 2**20
# Characters left unencoded in query values: RFC 3986 unreserved, plus "," which is legal
# in a query and which KuCoin signs as is (currency=BTC,ETH).
_QUERY_SAFE = "-_.~,"
_USER_AGENT = f"margin-async/{__version__}"
# 2001-09-09 .. 2286-11-20: anything outside is not a server clock in milliseconds.
_EPOCH_MS_RANGE = (10**12, 10**13)
_SUCCESS = "200000"
# zlib's window bits for "gzip or zlib header, detected": both are what servers send for
# Content-Encoding gzip / deflate.
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS
# What this client can inflate itself (aiohttp would also ask for br / zstd when their
# packages are installed, which _read could not bound).
_ACCEPT_ENCODING = "gzip, deflate"


def _timeout(value: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError("timeout", f"must be seconds > 0 or a ClientTimeout, got {value!r}")
    # The connect phase gets its own limit, so that a connection that never completed is
    # reported as such (ConnectionTimeoutError: not sent), not as a bare total timeout.
    return aiohttp.ClientTimeout(total=value, connect=value, sock_connect=value)


def _remaining(timeout: aiohttp.ClientTimeout, deadline: float | None) -> aiohttp.ClientTimeout:
    """``timeout`` with its total cut to what is left before ``deadline`` (monotonic)."""
    if deadline is None or timeout.total is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)
    return aiohttp.ClientTimeout(
        total=left,
        connect=None if timeout.connect is None else min(timeout.connect, left),
        sock_read=timeout.sock_read,
        sock_connect=None if timeout.sock_connect is None else min(timeout.sock_connect, left),
        ceil_threshold=timeout.ceil_threshold,
    )


# Keys and values made only of characters quote() leaves alone need no quoting (the usual
# case: codes, numbers, camelCase names); the result is the same string either way.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~-]*")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~,-]*")


def _encode_query(query: tuple[tuple[str, str], ...]) -> str:
    if all(_PLAIN_KEY.fullmatch(k) and _PLAIN_VALUE.fullmatch(v) for k, v in query):
        return "&".join(f"{k}={v}" for k, v in query)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=_QUERY_SAFE)}" for k, v in query)


class _Unlimited:
    """A limiter that never waits (no shared cap on requests in flight)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_UNLIMITED = _Unlimited()


class Exposure:
    """Whether a request may have reached the exchange: ``sent`` turns ``True`` when its
    bytes may have left, and back to ``False`` when they provably did not."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class _Progress:
    """How far aiohttp got with one money request (filled in by trace callbacks)."""

    __slots__ = ("headers_sent", "started")

    def __init__(self) -> None:
        self.started = False
        self.headers_sent = False


def _progress(context: SimpleNamespace) -> _Progress | None:
    request_context = context.trace_request_ctx
    if isinstance(request_context, dict):
        progress = request_context.get("margin_async")
        if isinstance(progress, _Progress):
            return progress
    return None


async def _on_request_start(_: Any, context: SimpleNamespace, __: Any) -> None:
    progress = _progress(context)
    if progress is not None:
        progress.started = True


async def _on_headers_sent(_: Any, context: SimpleNamespace, __: Any) -> None:
    progress = _progress(context)
    if progress is not None:
        progress.headers_sent = True


def _money_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_request_start)
    trace.on_request_headers_sent.append(_on_headers_sent)
    return trace


class Session:
    """Signed, paced, retried requests for one account.

    ``http`` is a shared :class:`aiohttp.ClientSession` left open on :meth:`close`;
    without one, the session creates (and later closes) its own. Borrow and repay use a
    small connection pool of the session's own either way (see the module docstring).
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
        #: Fresh connections for money, created on the first borrow or repay.
        self._money_http: aiohttp.ClientSession | None = None
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = _timeout(timeout)
        self._budget = budget if budget is not None else RateBudget()
        self._clock_request = clock_request
        self._on_response = on_response
        self._label = label
        self._limiter: AbstractAsyncContextManager[Any] = (
            limiter if limiter is not None else _UNLIMITED
        )
        # Everything secret that a reply could echo back: never shown in an error.
        self._redact = Redactor(
            (credentials.api_secret, credentials.api_passphrase, credentials._signed_passphrase)
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

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base

    def redact(self, text: str) -> str:
        """``text`` with this account's secrets removed."""
        return self._redact(text)

    def now_ms(self) -> int:
        """The exchange's current time as this session estimates it, epoch ms."""
        return time.time_ns() // 1_000_000 + self._offset_ms

    async def close(self) -> None:
        """Close the HTTP sessions this session created; idempotent."""
        self._closed = True
        if self._money_http is not None and not self._money_http.closed:
            await self._money_http.close()
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

    async def request(self, request: Request, exposure: Exposure | None = None) -> Any:
        """Send ``request`` under the retry policy and return the envelope's ``data``.

        ``exposure``, if given, tells afterwards (or after a cancellation) whether the
        request may have reached the exchange.
        """
        limit = self._retry.attempts
        if self._closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        url = URL(
            self._base
            + request.path
            + ("?" + _encode_query(request.query) if request.query else ""),
            encoded=True,
        )
        exposure = exposure if exposure is not None else Exposure()
        attempt = 0
        clock_resent = False
        while True:
            attempt += 1
            generation = self._clock_generation
            outcome = await self._attempt(request, url, attempt, exposure)
            error = outcome.error
            if error is None:
                return outcome.data
            if outcome.clock_refused or outcome.failure is Failure.REFUSED:
                exposure.sent = False  # refused before processing: nothing was applied
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
            if isinstance(error, RateLimitError):
                # Nothing is left until the window resets: every request of this account
                # waits for it, and this one sleeps until then (at most the window).
                self._budget.refused(error.retry_after)
                if error.retry_after is not None:
                    delay = error.retry_after
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

    def _http_session(self, request: Request) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64), headers={"User-Agent": _USER_AGENT}
            )
        if self._http.closed:
            raise ClientClosedError("the aiohttp.ClientSession behind this client is closed")
        if request.safety is not Safety.MONEY:
            return self._http
        if self._money_http is None:
            self._money_http = aiohttp.ClientSession(
                # A new connection per request, closed after the reply: never a stale one.
                connector=aiohttp.TCPConnector(limit=8, force_close=True),
                headers={"User-Agent": _USER_AGENT},
                trust_env=self._http.trust_env,
                trace_configs=[_money_trace()],
            )
        return self._money_http

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
        headers["Accept-Encoding"] = _ACCEPT_ENCODING
        if request.body:
            headers["Content-Type"] = "application/json"
        if not self._owns_http:
            headers["User-Agent"] = _USER_AGENT
        return headers

    async def _attempt(
        self, request: Request, url: URL, attempt: int, exposure: Exposure
    ) -> Outcome:
        http = self._http_session(request)
        started = time.perf_counter()
        total = self._timeout.total
        # The attempt's timeout covers its wait for the rate budget as well.
        deadline = None if total is None else time.monotonic() + total
        try:
            await self._budget.acquire(request.weight, deadline)
        except BudgetExhausted as exc:
            wait = "" if exc.wait is None else f" for {exc.wait:.1f} s more"
            outcome = Outcome(
                error=RateLimitError(
                    RATE_LIMIT_CODE,
                    f"not sent: this account's rate budget is spent{wait}, past this "
                    f"attempt's timeout of {total} s",
                    429,
                    exc.wait,
                ),
                failure=Failure.REFUSED,
            )
            self._report(request, attempt, None, None, outcome, time.perf_counter() - started)
            return outcome
        reply_headers: Any = None
        status: int | None = None
        received_at: float | None = None
        progress = _Progress()
        try:
            # Signed inside the limiter: a long wait there must not age the timestamp.
            async with self._limiter:
                if self._closed or http.closed:
                    raise ClientClosedError("this client was closed while the request waited")
                started = time.perf_counter()
                sent_ns = time.time_ns()
                exposure.sent = True
                async with http.request(
                    request.method,
                    url,
                    data=request.body or None,
                    headers=self._headers(request),
                    timeout=_remaining(self._timeout, deadline),
                    allow_redirects=False,
                    auto_decompress=False,
                    trace_request_ctx={"margin_async": progress},
                ) as response:
                    received_at = time.monotonic()
                    self._last_exchange_ns = (sent_ns, time.time_ns())
                    status = response.status
                    reply_headers = response.headers
                    body = await self._read(response)
            outcome = decode(status, body, reply_headers, base_url=self._base, redact=self._redact)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            exposure.sent = False
            outcome = Outcome(
                error=TransportError(f"cannot connect to {self._base}: {self._text(exc)}"),
                failure=Failure.NOT_SENT,
            )
        except ProtocolError as exc:
            outcome = Outcome(error=exc)
        except (TimeoutError, aiohttp.ClientError) as exc:
            if progress.started and not progress.headers_sent:
                # The trace saw the request begin but no byte of it leave.
                exposure.sent = False
                outcome = Outcome(
                    error=TransportError(
                        f"could not send to {self._base} within the timeout: "
                        f"{type(exc).__name__}: {self._text(exc)}"
                    ),
                    failure=Failure.NOT_SENT,
                )
            elif isinstance(exc, TimeoutError):
                outcome = Outcome(
                    error=TransportError(f"no reply within {total} s from {self._base}"),
                    failure=Failure.AMBIGUOUS,
                )
            else:
                outcome = Outcome(
                    error=TransportError(
                        f"connection to {self._base} failed: "
                        f"{type(exc).__name__}: {self._text(exc)}"
                    ),
                    failure=Failure.AMBIGUOUS,
                )
        except BaseException:
            if progress.started and not progress.headers_sent:
                exposure.sent = False  # cancelled before any byte left
            raise
        finally:
            self._budget.release(request.weight, reply_headers, received_at)
        self._report(
            request, attempt, status, reply_headers, outcome, time.perf_counter() - started
        )
        return outcome

    def _text(self, exc: BaseException) -> str:
        return self._redact(str(exc)) or type(exc).__name__

    @staticmethod
    async def _read(response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length > _MAX_BODY:
            raise ProtocolError(f"reply of {length} bytes is too large for this API")
        # The body is inflated here, not by aiohttp, so that the cap applies to what it
        # inflates to as it inflates: a gzip reply of 1 MB can hold gigabytes.
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            inflater: Any = zlib.decompressobj(_GZIP_OR_ZLIB)
        elif encoding in ("", "identity"):
            inflater = None
        else:
            raise ProtocolError(f"reply in an encoding this client did not ask for: {encoding}")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.content.iter_chunked(2**16):
                while chunk:
                    if inflater is None:
                        data, chunk = chunk, b""
                    else:
                        data = inflater.decompress(chunk, _MAX_BODY - size + 1)
                        chunk = inflater.unconsumed_tail
                    size += len(data)
                    if size > _MAX_BODY:
                        raise ProtocolError(
                            f"reply larger than {_MAX_BODY} bytes (decoded) is too large "
                            "for this API"
                        )
                    chunks.append(data)
            if inflater is not None:
                chunks.append(inflater.flush())
        except zlib.error as exc:
            raise ProtocolError(f"reply could not be decoded ({encoding}): {exc}") from None
        return b"".join(chunks)

    def _report(
        self,
        request: Request,
        attempt: int,
        status: int | None,
        headers: Any,
        outcome: Outcome,
        latency: float,
    ) -> None:
        if self._on_response is None and not _log.isEnabledFor(logging.DEBUG):
            return
        code = None
        if outcome.error is None:
            code = _SUCCESS
        elif isinstance(outcome.error, ApiError):
            code = outcome.error.code
        remaining = int_header(headers, "gw-ratelimit-remaining")
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
