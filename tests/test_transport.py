"""The transport layer: the in-memory transport for exact request shape, the aiohttp one's
failure kinds, and the layering rules (only the transport touches aiohttp's client; no
import cycles)."""

from __future__ import annotations

import ast
import asyncio
import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from helpers import GOLDEN_TIMESTAMP, KEY, SECRET, SIGNED_PASSPHRASE, creds, page
from kucoin_wire import b64hmac

from margin_async import AccountPool, BorrowResult, MarginClient, TransportError
from margin_async._retry import Failure
from margin_async._transport import (
    AiohttpTransport,
    Exposure,
    HttpRequest,
    HttpResponse,
    MemoryTransport,
    SendError,
    attempt_timeout,
)
from margin_async.testing import FakeKuCoin

PACKAGE = Path(__file__).resolve().parent.parent / "margin_async"


def reply(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps({"code": "200000", "data": data}).encode())


async def test_memory_transport_sees_the_exact_borrow_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("margin_async._session.time.time_ns", lambda: GOLDEN_TIMESTAMP * 10**6)
    transport = MemoryTransport(lambda _: reply({"orderNo": "B-1", "actualSize": "10"}))
    async with MarginClient(creds(), transport=transport) as client:
        result = await client.borrow("USDT", Decimal("10"), time_in_force="FOK")
    assert result == BorrowResult("B-1", Decimal("10"))
    (sent,) = transport.requests
    assert (sent.method, sent.url) == ("POST", "https://api.kucoin.com/api/v3/margin/borrow")
    assert sent.body == b'{"currency":"USDT","size":10,"timeInForce":"FOK"}'
    assert sent.money
    assert sent.headers == {
        "KC-API-KEY": KEY,
        "KC-API-SIGN": "euKk7TzhRTonobrt/WeUugi9e/H659/QyO96vtC1Pjg=",
        "KC-API-TIMESTAMP": str(GOLDEN_TIMESTAMP),
        "KC-API-PASSPHRASE": SIGNED_PASSPHRASE,
        "KC-API-KEY-VERSION": "3",
    }


async def test_memory_transport_sees_the_exact_history_request() -> None:
    transport = MemoryTransport(lambda _: reply(page([])))
    async with MarginClient(creds(), transport=transport) as client:
        await client.get_interest_history(["BTC", "ETH"], current_page=2, page_size=500)
    (sent,) = transport.requests
    assert sent.url == (
        "https://api.kucoin.com/api/v3/margin/interest?currency=BTC,ETH&currentPage=2&pageSize=500"
    )
    assert sent.body == b""
    assert not sent.money
    prehash = (
        sent.headers["KC-API-TIMESTAMP"] + "GET" + sent.url.removeprefix("https://api.kucoin.com")
    )
    assert sent.headers["KC-API-SIGN"] == b64hmac(SECRET, prehash.encode())


async def test_memory_transport_send_errors_map_to_failure_kinds() -> None:
    calls = 0

    def refuse(_: HttpRequest) -> HttpResponse:
        nonlocal calls
        calls += 1
        raise SendError("cannot connect to https://api.kucoin.com: refused", Failure.NOT_SENT)

    transport = MemoryTransport(refuse)
    async with MarginClient(creds(), transport=transport) as client:
        with pytest.raises(TransportError, match="cannot connect"):
            await client.borrow("USDT", "10")
    assert calls == 4  # never sent: resent up to the attempt limit, even for money


async def test_the_client_does_not_close_a_transport_it_was_given() -> None:
    transport = MemoryTransport(lambda _: reply(page([])))
    async with MarginClient(creds(), transport=transport):
        pass
    assert not transport.closed


async def test_a_refused_connection_is_not_sent() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    transport = AiohttpTransport()
    exposure = Exposure()
    try:
        with pytest.raises(SendError) as caught:
            await transport.send(
                HttpRequest("POST", f"http://127.0.0.1:{port}/x", money=True),
                limits=attempt_timeout(1.0),
                deadline=None,
                exposure=exposure,
            )
    finally:
        await transport.close()
    assert caught.value.failure is Failure.NOT_SENT
    assert not exposure.sent


async def test_a_timeout_after_sending_is_ambiguous() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the request arrived: never answer it
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = AiohttpTransport()
    exposure = Exposure()
    try:
        with pytest.raises(SendError) as caught:
            await transport.send(
                HttpRequest("POST", f"http://127.0.0.1:{port}/x", body=b"{}", money=True),
                limits=attempt_timeout(0.2),
                deadline=None,
                exposure=exposure,
            )
    finally:
        await transport.close()
        server.close()
    assert caught.value.failure is Failure.AMBIGUOUS
    assert exposure.sent


async def test_user_agent_and_encoding_on_every_request(fake: FakeKuCoin) -> None:
    seen: list[dict[str, str]] = []

    async def record(_: object, context: object, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(dict(params.headers))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(record)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        transport = AiohttpTransport(session)
        response = await transport.send(
            HttpRequest("GET", fake.url + "/api/v1/timestamp"),
            limits=attempt_timeout(5.0),
            deadline=None,
            exposure=Exposure(),
        )
        await transport.close()
        assert not session.closed  # a caller's session is left open
    assert response.status == 200
    assert seen[0]["User-Agent"].startswith("margin-async/")
    assert seen[0]["Accept-Encoding"] == "gzip, deflate"


async def test_a_pool_shares_one_transport(fake: FakeKuCoin) -> None:
    accounts = {f"a{n}": fake.add_account() for n in range(3)}
    async with AccountPool(accounts, base_url=fake.url, max_connections=2) as pool:
        transports = {id(pool[label]._session._transport) for label in pool}
        assert len(transports) == 1
        await pool.gather(lambda c: c.get_borrow_history("USDT"))
    assert fake.stats.max_concurrent_connections <= 2


async def _timestamps(transport: AiohttpTransport, url: str, count: int, money: bool) -> None:
    """``count`` requests, 16 at a time: each one that ends lets a new one start, which
    then competes for the freed connection with one already queued for it."""
    in_flight = asyncio.Semaphore(16)

    async def one() -> None:
        async with in_flight:
            await transport.send(
                HttpRequest("POST" if money else "GET", url + "/api/v1/timestamp", money=money),
                limits=attempt_timeout(10.0),
                deadline=None,
                exposure=Exposure(),
            )

    await asyncio.gather(*(one() for _ in range(count)))


async def test_the_connection_cap_holds_while_requests_queue_for_one(fake: FakeKuCoin) -> None:
    """aiohttp before 3.10.11 let a request that queued for a free connection open one
    more when another request took the freed one first: 12 of 8 with these numbers."""
    fake.set_latency(0.005)
    transport = AiohttpTransport(limit=8)
    try:
        await _timestamps(transport, fake.url, 200, money=False)
    finally:
        await transport.close()
    assert fake.stats.connections_opened <= 8
    assert fake.stats.max_concurrent_connections <= 8


async def test_money_connections_stay_capped_under_contention(fake: FakeKuCoin) -> None:
    """A fresh connection per money request, but never more than 8 at once."""
    fake.set_latency(0.005)
    transport = AiohttpTransport()
    try:
        await _timestamps(transport, fake.url, 200, money=True)
    finally:
        await transport.close()
    assert fake.stats.connections_opened == 200  # fresh ones, as before
    assert fake.stats.max_concurrent_connections <= 8


async def test_waiting_too_long_for_a_free_connection_is_not_sent(fake: FakeKuCoin) -> None:
    fake.set_latency(0.5)
    transport = AiohttpTransport(limit=1)
    exposure = Exposure()
    try:
        busy = asyncio.create_task(_timestamps(transport, fake.url, 1, money=False))
        await asyncio.sleep(0.05)
        with pytest.raises(SendError) as caught:
            await transport.send(
                HttpRequest("GET", fake.url + "/api/v1/timestamp"),
                limits=attempt_timeout(0.1),
                deadline=None,
                exposure=exposure,
            )
        await busy
    finally:
        await transport.close()
    assert caught.value.failure is Failure.NOT_SENT
    assert "no connection to" in str(caught.value)
    assert not exposure.sent
    assert fake.stats.requests["GET /api/v1/timestamp"] == 1


async def test_closing_the_transport_under_a_request_is_a_send_error(fake: FakeKuCoin) -> None:
    """aiohttp before 3.12.4 resends a GET whose keep-alive connection the close cut and
    trips an assertion (AssertionError, or AttributeError under -O) on the connector the
    close dropped: the caller must get a SendError, never that."""
    transport = AiohttpTransport()
    url = fake.url + "/api/v1/timestamp"
    exposure = Exposure()
    await _timestamps(transport, fake.url, 1, money=False)  # a keep-alive connection to reuse
    fake.set_latency(0.3)
    pending = asyncio.create_task(
        transport.send(
            HttpRequest("GET", url), limits=attempt_timeout(5.0), deadline=None, exposure=exposure
        )
    )
    await asyncio.sleep(0.05)
    await transport.close()
    with pytest.raises(SendError) as caught:
        await pending
    assert caught.value.failure is Failure.AMBIGUOUS
    assert exposure.sent


# -- layering ---------------------------------------------------------------------------


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def _imports(tree: ast.Module, *, runtime_only: bool) -> set[str]:
    names: set[str] = set()
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_transport_imports_aiohttp_client() -> None:
    for name, tree in _modules().items():
        if name.startswith("margin_async.testing"):
            continue  # the fake is an aiohttp.web server, not a client
        aiohttp_imports = {
            i for i in _imports(tree, runtime_only=True) if i.split(".")[0] == "aiohttp"
        }
        if name == "margin_async._transport":
            assert aiohttp_imports
        else:
            assert not aiohttp_imports, f"{name} imports {aiohttp_imports}"


def test_no_import_cycles() -> None:
    modules = _modules()
    # Type-only imports count too: a cycle through them is still a tangle to read.
    graph = {
        name: {i for i in _imports(tree, runtime_only=False) if i in modules and i != name}
        for name, tree in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
