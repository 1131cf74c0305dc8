"""The only code that uses aiohttp's client: send one prepared request, return a bounded reply.

A transport knows nothing of KuCoin: it sends bytes and reports what is known about a
failure, which decides whether a request may be sent again:

- it never left (the connection was never made, a connect timeout included, no
  connection became free in time, or a trace of the request shows that no byte of it was
  written): :attr:`Failure.NOT_SENT`;
- anything after that (a timeout or reset while waiting, a cut-off body):
  :attr:`Failure.AMBIGUOUS`.

Money (borrow, repay) goes out on a fresh connection each time, from a connection pool of
its own: a keep-alive connection that sat idle may have been closed by a gateway without
our side knowing yet, and a request written on it cannot be proven unsent. The transport
caps the connections of the sessions it creates itself, with a gate in front of aiohttp's
connector: aiohttp before 3.10.11 lets a request that waited for a free connection open
one more than ``limit`` when another request took the freed one first. The body is
capped at 16 MiB *after* decompression, which the transport does itself, so that a small
gzip reply cannot inflate to gigabytes first.

:class:`MemoryTransport` serves tests that check the exact shape of requests: a function
from :class:`HttpRequest` to :class:`HttpResponse`, no sockets.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import Any, Protocol, TypeAlias

import aiohttp
import attrs
from yarl import URL

from margin_async._errors import ClientClosedError, ProtocolError, ValidationError
from margin_async._retry import Failure
from margin_async._version import __version__

__all__ = [
    "AiohttpTransport",
    "Exposure",
    "HttpRequest",
    "HttpResponse",
    "MemoryTransport",
    "SendError",
    "Timeout",
    "Transport",
    "attempt_timeout",
]

#: What a caller may give as a per-attempt timeout: seconds, or aiohttp's own value.
Timeout: TypeAlias = float | aiohttp.ClientTimeout

USER_AGENT = f"margin-async/{__version__}"
# A history page of 500 records is about 100 KB; anything near this is not our API.
MAX_BODY = 16 * 2**20
# zlib's window bits for "gzip or zlib header, detected": what servers send for
# Content-Encoding gzip / deflate.
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS
# Money's own connections: a few fresh ones at a time (each borrow or repay opens one).
_MONEY_CONNECTIONS = 8
# What the transport can inflate itself (aiohttp would also ask for br / zstd when their
# packages are installed, which it could not bound).
_ACCEPT_ENCODING = "gzip, deflate"


@attrs.frozen
class HttpRequest:
    """One prepared request: the absolute, already encoded ``url`` and the exact body."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    #: Moves money: sent on a fresh connection, with a trace of what left.
    money: bool = False


@attrs.frozen
class HttpResponse:
    """A reply: status, headers and the decoded (inflated) body, at most 16 MiB."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Wall-clock ns when the request was handed to the network, and when the reply's
    #: headers arrived (the midpoint estimates the server's moment, for clock sync).
    sent_ns: int = 0
    received_ns: int = 0
    #: ``time.monotonic()`` when the reply's headers arrived.
    received_at: float = 0.0


class SendError(Exception):
    """No usable reply. ``failure`` says whether the request may have reached the server."""

    def __init__(self, message: str, failure: Failure) -> None:
        super().__init__(message)
        self.failure = failure


class Exposure:
    """Whether a request may have reached the exchange: ``sent`` turns ``True`` when its
    bytes may have left, and back to ``False`` when they provably did not."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class Transport(Protocol):
    """Sends prepared requests; shared by every client of a pool."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        ...

    async def send(
        self,
        request: HttpRequest,
        *,
        limits: aiohttp.ClientTimeout,
        deadline: float | None,
        exposure: Exposure,
    ) -> HttpResponse:
        """Send ``request``; raise :class:`SendError` when no usable reply came.

        ``limits`` are the attempt's timeouts; ``deadline`` (``time.monotonic()``) cuts
        their total short.
        """
        ...

    async def close(self) -> None:
        """Release the connections this transport opened. Idempotent."""
        ...


def attempt_timeout(value: object) -> aiohttp.ClientTimeout:
    """A caller's per-attempt ``timeout`` (seconds > 0, or a ``ClientTimeout``), checked.

    Seconds get a connect phase of their own, so that a connection that never completed
    is reported as such (not sent), not as a bare total timeout.
    """
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError("timeout", f"must be seconds > 0 or a ClientTimeout, got {value!r}")
    return aiohttp.ClientTimeout(total=value, connect=value, sock_connect=value)


def _within(timeout: aiohttp.ClientTimeout, deadline: float | None) -> aiohttp.ClientTimeout:
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


class AiohttpTransport:
    """A :class:`Transport` over aiohttp.

    ``session`` is a caller's :class:`aiohttp.ClientSession`, left open on :meth:`close`;
    without one, the transport creates its own, with at most ``limit`` connections.
    Money always uses a small pool of fresh connections of the transport's own. The caps
    of the sessions it creates hold on every aiohttp version (see the module docstring);
    a caller's session keeps its own connector's.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit: int = 64) -> None:
        self._http = session
        self._owns_http = session is None
        self._limit = limit
        self._money: aiohttp.ClientSession | None = None
        # Requests in flight on each session this transport created: at most as many as
        # its connector's limit, so that aiohttp never queues one for a connection (its
        # queue overshot the limit before 3.10.11). A caller's session keeps its own rules.
        self._gates: dict[aiohttp.ClientSession, asyncio.Semaphore] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    async def close(self) -> None:
        """Close the sessions this transport created. Idempotent."""
        self._closed = True
        if self._money is not None and not self._money.closed:
            await self._money.close()
        if self._owns_http and self._http is not None and not self._http.closed:
            await self._http.close()

    def _session_for(self, request: HttpRequest) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        if self._http is None:
            # Created here, inside the running loop, as aiohttp requires.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                headers={"User-Agent": USER_AGENT},
            )
            self._gates[self._http] = asyncio.Semaphore(self._limit)
        if self._http.closed:
            raise ClientClosedError("the aiohttp.ClientSession behind this client is closed")
        if not request.money:
            return self._http
        if self._money is None:
            self._money = aiohttp.ClientSession(
                # A new connection per request, closed after the reply: never a stale one.
                connector=aiohttp.TCPConnector(limit=_MONEY_CONNECTIONS, force_close=True),
                headers={"User-Agent": USER_AGENT},
                trust_env=self._http.trust_env,
                trace_configs=[_money_trace()],
            )
            self._gates[self._money] = asyncio.Semaphore(_MONEY_CONNECTIONS)
        return self._money

    async def send(
        self,
        request: HttpRequest,
        *,
        limits: aiohttp.ClientTimeout,
        deadline: float | None,
        exposure: Exposure,
    ) -> HttpResponse:
        """Send ``request``; see :class:`Transport`."""
        http = self._session_for(request)
        left = _within(limits, deadline)
        gate = self._gates.get(http)
        if gate is None:
            return await self._send(http, request, limits, left, exposure)
        waited = await _enter(gate, left, request.url)
        try:
            if http.closed:
                raise ClientClosedError("this client was closed while the request waited")
            return await self._send(http, request, limits, _after(left, waited), exposure)
        finally:
            gate.release()

    async def _send(
        self,
        http: aiohttp.ClientSession,
        request: HttpRequest,
        limits: aiohttp.ClientTimeout,
        left: aiohttp.ClientTimeout,
        exposure: Exposure,
    ) -> HttpResponse:
        """Send on ``http`` within ``left`` (``limits`` as cut by the deadline and any
        wait at the gate; ``limits`` itself names the timeout in messages)."""
        headers = dict(request.headers)
        headers["User-Agent"] = USER_AGENT
        headers["Accept-Encoding"] = _ACCEPT_ENCODING
        if request.body:
            headers["Content-Type"] = "application/json"
        progress = _Progress()
        url = URL(request.url, encoded=True)
        sent_ns = time.time_ns()
        exposure.sent = True
        try:
            async with http.request(
                request.method,
                url,
                data=request.body or None,
                headers=headers,
                timeout=left,
                allow_redirects=False,
                auto_decompress=False,
                # Only the money session traces requests (see _money_trace).
                trace_request_ctx={"margin_async": progress} if request.money else None,
            ) as response:
                received_at = time.monotonic()
                received_ns = time.time_ns()
                body = await _read(response)
                return HttpResponse(
                    response.status, response.headers, body, sent_ns, received_ns, received_at
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            exposure.sent = False
            where = url.origin()
            raise SendError(f"cannot connect to {where}: {_why(exc)}", Failure.NOT_SENT) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            where = url.origin()
            if progress.started and not progress.headers_sent:
                # The trace saw the request begin but no byte of it leave.
                exposure.sent = False
                raise SendError(
                    f"could not send to {where}: {type(exc).__name__}: {exc}", Failure.NOT_SENT
                ) from exc
            if isinstance(exc, TimeoutError):
                raise SendError(
                    f"no reply within {limits.total} s from {where}", Failure.AMBIGUOUS
                ) from exc
            raise SendError(
                f"connection to {where} failed: {type(exc).__name__}: {exc}", Failure.AMBIGUOUS
            ) from exc
        except Exception as exc:
            if not http.closed:
                raise
            # Closed under the request. aiohttp before 3.12.4 resends an idempotent request
            # whose keep-alive connection the close cut, then trips an assertion (or, under
            # -O, an AttributeError) on the connector the close dropped; later versions say
            # "Connector is closed". Either way the first try may have reached the server.
            raise SendError(
                f"connection to {url.origin()} closed with the client", Failure.AMBIGUOUS
            ) from exc
        except BaseException:
            if progress.started and not progress.headers_sent:
                exposure.sent = False  # cancelled before any byte left
            raise


async def _enter(gate: asyncio.Semaphore, left: aiohttp.ClientTimeout, url: str) -> float:
    """Take a place at ``gate`` within the connect phase's timeout (``left``), as aiohttp's
    connector waits for a free connection; return the seconds waited."""
    if not gate.locked():
        await gate.acquire()  # free: returns at once
        return 0.0
    started = time.monotonic()
    limit = min((t for t in (left.connect, left.total) if t is not None), default=None)
    try:
        async with asyncio.timeout(limit):
            await gate.acquire()
    except TimeoutError:
        where = URL(url, encoded=True).origin()
        raise SendError(
            f"no connection to {where} became free within {limit} s", Failure.NOT_SENT
        ) from None
    return time.monotonic() - started


def _after(left: aiohttp.ClientTimeout, waited: float) -> aiohttp.ClientTimeout:
    """``left`` less the ``waited`` seconds from its total and connect phase (where
    aiohttp counts its own wait for a connection)."""
    if not waited:
        return left
    return aiohttp.ClientTimeout(
        total=None if left.total is None else max(left.total - waited, 0.001),
        connect=None if left.connect is None else max(left.connect - waited, 0.001),
        sock_read=left.sock_read,
        sock_connect=left.sock_connect,
        ceil_threshold=left.ceil_threshold,
    )


def _why(exc: Exception) -> str:
    """Why a connection failed, in the operating system's words (aiohttp's own text
    mentions ``ssl:default`` even for plain http)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the server's TLS certificate was refused: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if os_error.errno:
            return os.strerror(os_error.errno).lower()
        return os_error.strerror or str(os_error) or type(os_error).__name__
    return "the connection was not established within the timeout"


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The body, inflated here so that the cap applies to what it inflates to."""
    length = response.content_length
    if length is not None and length > MAX_BODY:
        raise ProtocolError(f"reply of {length} bytes is too large for this API")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if length is not None and encoding in ("", "identity"):
        # Plain, of a stated length within the cap: aiohttp reads exactly that much.
        return await response.read()
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
                    data = inflater.decompress(chunk, MAX_BODY - size + 1)
                    chunk = inflater.unconsumed_tail
                size += len(data)
                if size > MAX_BODY:
                    raise ProtocolError(
                        f"reply larger than {MAX_BODY} bytes (decoded) is too large for this API"
                    )
                chunks.append(data)
        if inflater is not None:
            chunks.append(inflater.flush())
    except zlib.error as exc:
        raise ProtocolError(f"reply could not be decoded ({encoding}): {exc}") from None
    return b"".join(chunks)


#: What a :class:`MemoryTransport` calls: a request in, a response (or SendError) out.
Handler: TypeAlias = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


class MemoryTransport:
    """A :class:`Transport` that hands each request to ``handler`` (no sockets).

    ``requests`` records every request sent, in order, for tests of their exact shape.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    async def close(self) -> None:
        """Mark the transport closed. Idempotent."""
        self._closed = True

    async def send(
        self,
        request: HttpRequest,
        *,
        limits: aiohttp.ClientTimeout,
        deadline: float | None,
        exposure: Exposure,
    ) -> HttpResponse:
        """Record ``request`` and return what ``handler`` makes of it."""
        if self._closed:
            raise ClientClosedError("this client is closed; create a new MarginClient")
        self.requests.append(request)
        exposure.sent = True
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, HttpResponse)
        return result
