"""Money against the real world: cancellation, false alarms, replies KuCoin documents or
has sent, and a base_url that is not KuCoin. Each test failed on the code before the fix."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from helpers import (
    BASE,
    BORROW_PATH,
    FAST,
    REPAY_PATH,
    borrow_item,
    client,
    ok,
    page,
    repay_item,
    url_re,
)

from margin_async import (
    BorrowResult,
    Credentials,
    MarginClient,
    OutcomeUnknownError,
    ProtocolError,
    RepayResult,
    RetryPolicy,
    TransportError,
)
from margin_async.testing import FakeKuCoin

BORROW_ROUTE = "POST " + BORROW_PATH


@pytest.fixture(autouse=True)
def fast_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    """History reads of a reconciliation without the half-second pauses."""
    import margin_async._reconcile as reconcile

    real = reconcile.find_order

    async def quick(*args: Any, **kwargs: Any) -> Any:
        kwargs["interval"] = 0.01
        return await real(*args, **kwargs)

    monkeypatch.setattr("margin_async._reconcile.find_order", quick)


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


# -- cancellation ----------------------------------------------------------------------


async def test_cancelled_borrow_that_was_applied_shadows_the_next_identical_one(
    fake: FakeKuCoin, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    # The first borrow is applied, but its caller gives up before the answer comes.
    fake.inject("apply_then_stall", route=BORROW_ROUTE, stall=30)
    async with MarginClient(creds, base_url=fake.url, retry=FAST) as c:
        first = asyncio.create_task(c.borrow("USDT", "10"))
        await wait_until(lambda: len(fake.ledger(creds.api_key)) == 1)
        with caplog.at_level(logging.WARNING, logger="margin_async"):
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        # The identical next one never reaches the ledger, and its answer is lost: the
        # first one's order must not be taken for its own.
        fake.inject("drop_before", route=BORROW_ROUTE)
        with pytest.raises(OutcomeUnknownError, match="outcome is unknown"):
            await c.borrow("USDT", "10")
    assert len(fake.ledger(creds.api_key)) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "cancelled after sending" in r.getMessage() and "/api/v3/margin/borrow" in r.getMessage()
        for r in warnings
    )


async def test_cancelled_during_reconciliation_shadows_too(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.inject("apply_then_drop", route=BORROW_ROUTE)
    # The history reads of the reconciliation are slow: the caller cancels meanwhile.
    fake.inject("latency", route="GET " + BORROW_PATH, latency=30)
    async with MarginClient(creds, base_url=fake.url, retry=FAST) as c:
        first = asyncio.create_task(c.borrow("USDT", "10"))
        await wait_until(lambda: fake.stats.requests["GET " + BORROW_PATH] == 1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        fake.clear_faults()
        fake.inject("drop_before", route=BORROW_ROUTE)
        with pytest.raises(OutcomeUnknownError):
            await c.borrow("USDT", "10")
    assert len(fake.ledger(creds.api_key)) == 1


async def test_cancelled_before_sending_leaves_no_shadow(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    # Cancelled while waiting for the shared limiter: no byte left, nothing to fear.
    limiter = asyncio.Semaphore(1)
    await limiter.acquire()
    async with MarginClient(creds, base_url=fake.url, retry=FAST, limiter=limiter) as c:
        waiting = asyncio.create_task(c.borrow("USDT", "10"))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        limiter.release()
        fake.inject("apply_then_drop", route=BORROW_ROUTE)
        result = await c.borrow("USDT", "10")  # reconciled to its own order
    ledger = fake.ledger(creds.api_key)
    assert [entry.order_no for entry in ledger] == [result.order_no]


# -- false alarms ----------------------------------------------------------------------


async def test_money_never_goes_on_a_connection_that_sat_idle(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    # Reads share keep-alive connections; each borrow and repay opens its own.
    async with MarginClient(creds, base_url=fake.url) as c:
        await c.get_borrow_history("USDT")
        before = fake.stats.connections_opened
        for _ in range(3):
            await c.borrow("USDT", "10")
            await c.repay("USDT", "10")
        assert fake.stats.connections_opened - before == 6
        await c.get_borrow_history("USDT")
        await c.get_borrow_history("USDT")
        assert fake.stats.connections_opened - before == 6  # the reads reuse theirs


class _Blackhole:
    """A TCP server that accepts and never answers: a TLS handshake never completes."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> _Blackhole:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}"

    async def _accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)


async def test_a_connect_timeout_is_not_sent_not_unknown(creds: Credentials) -> None:
    # With timeout=0.3 (a float) aiohttp raised a bare TimeoutError while connecting,
    # which was read as "may have been applied".
    async with _Blackhole() as hole:
        retry = RetryPolicy(attempts=2, base_delay=0, max_delay=0)
        async with MarginClient(creds, base_url=hole.url, retry=retry, timeout=0.3) as c:
            with pytest.raises(TransportError) as caught:
                await c.borrow("USDT", "10")
        assert not isinstance(caught.value, OutcomeUnknownError)
        # Never sent, so resending was safe: one connection per attempt.
        assert hole.connections == 2


async def test_reconciliation_treats_default_symbol_as_cross(mock: aioresponses) -> None:
    now = int(time.time() * 1000)
    mock.post(BASE + BORROW_PATH, exception=aiohttp.ServerDisconnectedError())
    item = borrow_item(orderNo="B-1", symbol="DEFAULT", createdTime=now)
    mock.get(url_re(BORROW_PATH), payload=ok(page([item])), repeat=True)
    async with client() as c:
        assert await c.borrow("USDT", "10") == BorrowResult("B-1", Decimal("10"))


# -- replies KuCoin documents or has sent ----------------------------------------------


async def test_a_money_reply_without_timestamp_is_a_success(mock: aioresponses) -> None:
    mock.post(BASE + REPAY_PATH, payload=ok({"orderNo": "R-1", "actualSize": "10"}))
    async with client() as c:
        result = await c.repay("USDT", "10")
    assert result == RepayResult("R-1", Decimal("10"), None)
    assert result.time is None
    assert len(mock.requests) == 1  # no history read: the reply said everything


async def test_legacy_success_code_200_is_a_success(mock: aioresponses) -> None:
    mock.post(
        BASE + BORROW_PATH,
        payload={"code": "200", "data": {"orderNo": "B-9", "actualSize": "10"}},
    )
    mock.get(url_re(REPAY_PATH), payload={"code": 200, "data": page([repay_item()])})
    async with client() as c:
        assert await c.borrow("USDT", "10") == BorrowResult("B-9", Decimal("10"))
        history = await c.get_repay_history("USDT")
    assert len(history.items) == 1
    assert len(mock.requests) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [(200, "130202"), (200, 130202), (200, "500000"), (500, "500000")],
)
async def test_still_processing_codes_are_reconciled(
    mock: aioresponses, status: int, code: str | int
) -> None:
    now = int(time.time() * 1000)
    body = {"code": code, "msg": "A timeout has occurred. The system is currently processing"}
    mock.post(BASE + BORROW_PATH, status=status, payload=body)
    item = borrow_item(orderNo="B-7", createdTime=now)
    mock.get(url_re(BORROW_PATH), payload=ok(page([item])), repeat=True)
    async with client() as c:
        assert await c.borrow("USDT", "10") == BorrowResult("B-7", Decimal("10"))


async def test_still_processing_without_a_match_is_unknown_not_an_api_error(
    mock: aioresponses,
) -> None:
    mock.post(BASE + BORROW_PATH, payload={"code": "130202", "msg": "processing"})
    mock.get(url_re(BORROW_PATH), payload=ok(page([])), repeat=True)
    async with client() as c:
        with pytest.raises(OutcomeUnknownError, match="130202"):
            await c.borrow("USDT", "10")


# -- a base_url that is not KuCoin ------------------------------------------------------

NOT_FOUND = (
    b"<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"</body></html>"
)


@pytest.fixture
async def not_kucoin() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        status = 501 if request.path.endswith("/repay") else 404
        return web.Response(status=status, body=NOT_FOUND, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("operation", ["borrow", "repay"])
async def test_a_server_that_is_not_kucoin_says_so_once(
    not_kucoin: tuple[str, list[str]], operation: str
) -> None:
    url, seen = not_kucoin
    creds = Credentials("k" * 24, "secret", "passphrase")
    async with MarginClient(creds, base_url=url, retry=FAST) as c:
        with pytest.raises(ProtocolError) as caught:
            await getattr(c, operation)("USDT", "10")
    message = str(caught.value)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert "is not a KuCoin API" in message
    assert "may or may not" not in message
    assert message.count("<!DOCTYPE html>") == 1  # one short excerpt, not the page twice
    assert len(seen) == 1  # no resend, no history read


async def test_a_gateway_that_closes_idle_connections_causes_no_false_alarm() -> None:
    # The gateway drops a request that arrives on a connection idle for longer than
    # 0.2 s (its close notice not yet seen by the client). A bot that borrows and repays
    # every 0.3 s, reading history in between, must never see an unknown outcome: the
    # old client reused the pooled connection and every such money call was a false alarm.
    async with FakeKuCoin(idle_close_after=0.2) as fake:
        creds = fake.add_account()
        retry = RetryPolicy(attempts=4, base_delay=0, max_delay=0)
        false_alarms = 0
        async with MarginClient(creds, base_url=fake.url, retry=retry) as c:
            await c.get_borrow_history("USDT")  # a pooled connection to go stale
            for n in range(8):
                await asyncio.sleep(0.3)
                try:
                    await (c.borrow("USDT", "10") if n % 2 == 0 else c.repay("USDT", "10"))
                except OutcomeUnknownError:
                    false_alarms += 1
                await c.get_borrow_history("USDT")
        assert false_alarms == 0
        assert len(fake.ledger(creds.api_key)) == 8


@pytest.mark.parametrize(
    "item",
    [
        # No creation time: nothing places the order after this call's sending.
        borrow_item(orderNo="B-1", createdTime=None),
        # A symbol missing or mistyped is not cross margin: it says nothing at all.
        {k: v for k, v in borrow_item(orderNo="B-1").items() if k != "symbol"},
        borrow_item(orderNo="B-1", symbol=7),
    ],
    ids=["no-created-time", "no-symbol", "numeric-symbol"],
)
async def test_a_match_with_an_unreadable_field_is_not_taken(
    mock: aioresponses, item: dict[str, Any]
) -> None:
    if item.get("createdTime", 0) is not None:
        item["createdTime"] = int(time.time() * 1000)
    mock.post(BASE + BORROW_PATH, exception=aiohttp.ServerDisconnectedError())
    mock.get(url_re(BORROW_PATH), payload=ok(page([item])), repeat=True)
    async with client() as c:
        with pytest.raises(OutcomeUnknownError):
            await c.borrow("USDT", "10")


async def test_a_repay_match_with_absurd_amounts_is_unknown_not_a_crash(
    mock: aioresponses,
) -> None:
    now = int(time.time() * 1000)
    item = repay_item(
        orderNo="R-1", size="10", principal="1e999999999", interest="1", createdTime=now
    )
    mock.post(BASE + REPAY_PATH, exception=aiohttp.ServerDisconnectedError())
    mock.get(url_re(REPAY_PATH), payload=ok(page([item])), repeat=True)
    async with client() as c:
        with pytest.raises(OutcomeUnknownError, match="unreadable"):
            await c.repay("USDT", "10")
