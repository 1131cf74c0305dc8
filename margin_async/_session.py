"""The request loop of one account: sign -> rate budget -> send -> decode -> retry / resync.

A :class:`Session` sends one :class:`~margin_async._request.Request` at a time on
behalf of one account: it signs it, charges the account's rate-limit budget, hands it
to a :class:`~margin_async._transport.Transport` with a per-attempt timeout, decodes the
``{"code", "data"}`` envelope, resends what the :class:`~margin_async._retry.RetryPolicy`
allows, keeps the clock in step with the exchange's, and turns every failure into a
:class:`MarginError`. It never touches aiohttp itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from yarl import URL

from margin_async._auth import Credentials, signed_headers
from margin_async._envelope import RATE_LIMIT_CODE, NotKuCoinError, Outcome, decode, int_header
from margin_async._errors import (
    ApiError,
    ClientClosedError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from margin_async._events import ResponseEvent, ResponseHook, WaitEvent, WaitHook
from margin_async._ratelimit import BudgetExhausted, RateBudget
from margin_async._redact import Redactor
from margin_async._request import Request, Safety
from margin_async._retry import Failure, RetryPolicy
from margin_async._transport import (
    Exposure,
    HttpRequest,
    SendError,
    Timeout,
    Transport,
    attempt_timeout,
)

__all__ = ["DEFAULT_BASE_URL", "Exposure", "NotKuCoinError", "Session", "Timing"]

_log = logging.getLogger("margin_async")

DEFAULT_BASE_URL = "https://api.kucoin.com"
"""The exchange's API root: the default ``base_url`` of MarginClient and AccountPool."""
# Characters left unencoded in query values: RFC 3986 unreserved, plus "," which is legal
# in a query and which KuCoin signs as is (currency=BTC,ETH).
_QUERY_SAFE = "-_.~,"
# 2001-09-09 .. 2286-11-20: anything outside is not a server clock in milliseconds.
_EPOCH_MS_RANGE = (10**12, 10**13)
_SUCCESS = "200000"
#: How far the exchange lets a request's timestamp be from its clock (400002 beyond), ms:
#: so a clock we have not corrected is off by at most this much.
CLOCK_TOLERANCE_MS = 5_000

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


class Timing:
    """When the answering attempt of a request left and its reply came (wall-clock ns)."""

    __slots__ = ("received_ns", "sent_ns")

    def __init__(self) -> None:
        self.sent_ns = 0
        self.received_ns = 0


# A server time that moves the clock estimate by more than this is not believed from a
# history page (a 400002 resync through the timestamp endpoint settles larger offsets).
_MAX_PAGE_CORRECTION_MS = 300_000
# Offsets within the round trip's uncertainty plus this much are left alone (jitter).
_CLOCK_SLACK_MS = 10


class Session:
    """Signed, paced, retried requests for one account, sent through ``transport``.

    ``owns_transport``: whether :meth:`close` closes the transport too (``False`` when
    it is shared, as in an :class:`~margin_async.AccountPool`).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock_request: Request,
        base_url: str = DEFAULT_BASE_URL,
        transport: Transport,
        owns_transport: bool = True,
        retry: RetryPolicy | None = None,
        timeout: Timeout = 10.0,
        budget: RateBudget | None = None,
        on_response: ResponseHook | None = None,
        label: str | None = None,
        limiter: asyncio.Semaphore | None = None,
        on_wait: WaitHook | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ValidationError("credentials", "must be a margin_async.Credentials")
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValidationError("base_url", f"must be an http(s) URL, got {base_url!r}")
        self._credentials = credentials
        self._base = str(url).rstrip("/")
        self._transport = transport
        self._owns_transport = owns_transport
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = attempt_timeout(timeout)
        self._budget = budget if budget is not None else RateBudget()
        self._clock_request = clock_request
        self._on_response = on_response
        self._on_wait = on_wait
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
        """Close the transport if this session owns it; idempotent."""
        self._closed = True
        if self._owns_transport:
            await self._transport.close()

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

    def observe_server_time(self, server_ms: int, timing: Timing) -> bool:
        """Correct the clock estimate with a server time a reply carried (a history page's
        ``timestamp``), measured halfway through ``timing``; ``True`` if it moved.

        Small differences (within the round trip's uncertainty) and implausible ones are
        ignored.
        """
        if not _EPOCH_MS_RANGE[0] <= server_ms <= _EPOCH_MS_RANGE[1] or not timing.sent_ns:
            return False
        middle_ms = (timing.sent_ns + timing.received_ns) // 2_000_000
        offset = server_ms - middle_ms
        half_trip_ms = (timing.received_ns - timing.sent_ns) // 2_000_000
        change = abs(offset - self._offset_ms)
        if change <= half_trip_ms + _CLOCK_SLACK_MS or change > _MAX_PAGE_CORRECTION_MS:
            return False
        self._offset_ms = offset
        self._clock_generation += 1
        _log.info("clock corrected from a page's server time: offset %+d ms", offset)
        return True

    async def request(
        self, request: Request, exposure: Exposure | None = None, timing: Timing | None = None
    ) -> Any:
        """Send ``request`` under the retry policy and return the envelope's ``data``.

        ``exposure``, if given, tells afterwards (or after a cancellation) whether the
        request may have reached the exchange; ``timing`` receives when the answering
        attempt left and its reply came.
        """
        limit = self._retry.attempts
        if self._closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        url = (
            self._base
            + request.path
            + ("?" + _encode_query(request.query) if request.query else "")
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
                if timing is not None:
                    timing.sent_ns, timing.received_ns = self._last_exchange_ns
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
            if delay > 0:
                self._waiting(
                    "rate limit" if isinstance(error, RateLimitError) else "retry backoff", delay
                )
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

    def _budget_wait(self, seconds: float) -> None:
        self._waiting("rate limit", seconds)

    def _waiting(self, reason: str, seconds: float) -> None:
        if self._on_wait is None:
            return
        try:
            self._on_wait(WaitEvent(reason, seconds, self._label))
        except Exception:
            _log.exception("on_wait hook raised; ignored")

    def _headers(self, request: Request) -> dict[str, str]:
        if not request.signed:
            return {}
        return signed_headers(
            self._credentials,
            self.now_ms(),
            request.method,
            request.path_with_query,
            request.body,
        )

    async def _attempt(
        self, request: Request, url: str, attempt: int, exposure: Exposure
    ) -> Outcome:
        if self._closed or self._transport.closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        started = time.perf_counter()
        total = self._timeout.total
        # The attempt's timeout covers its wait for the rate budget as well.
        deadline = None if total is None else time.monotonic() + total
        try:
            await self._budget.acquire(
                request.weight, deadline, None if self._on_wait is None else self._budget_wait
            )
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
        try:
            # Signed inside the limiter: a long wait there must not age the timestamp.
            async with self._limiter:
                if self._closed or self._transport.closed:
                    raise ClientClosedError("this client was closed while the request waited")
                started = time.perf_counter()
                prepared = HttpRequest(
                    request.method,
                    url,
                    self._headers(request),
                    request.body,
                    money=request.safety is Safety.MONEY,
                )
                response = await self._transport.send(
                    prepared, limits=self._timeout, deadline=deadline, exposure=exposure
                )
            received_at = response.received_at
            self._last_exchange_ns = (response.sent_ns, response.received_ns)
            status = response.status
            reply_headers = response.headers
            outcome = decode(
                status, response.body, reply_headers, base_url=self._base, redact=self._redact
            )
        except SendError as exc:
            outcome = Outcome(error=TransportError(self._redact(str(exc))), failure=exc.failure)
        except ProtocolError as exc:
            outcome = Outcome(error=exc)
        finally:
            self._budget.release(request.weight, reply_headers, received_at)
        self._report(
            request, attempt, status, reply_headers, outcome, time.perf_counter() - started
        )
        return outcome

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
                int_header(headers, "gw-ratelimit-reset"),
            )
            try:
                self._on_response(event)
            except Exception:
                _log.exception("on_response hook raised; ignored")
