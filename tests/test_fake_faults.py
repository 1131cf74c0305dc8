"""FakeKuCoin's fault injection, over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import aiohttp
import pytest
import yarl
from kucoin_wire import call, kc_headers

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

BORROW = "/api/v3/margin/borrow"
HISTORY = "/api/v3/margin/borrow?currency=USDT"
BORROW_BODY = {"currency": "USDT", "size": 5, "timeInForce": "FOK"}
POST_BORROW = "POST /api/v3/margin/borrow"
DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


async def history_total(http: aiohttp.ClientSession, fake: FakeKuCoin, creds: Credentials) -> int:
    status, _, payload = await call(http, fake, creds, "GET", HISTORY)
    assert status == 200
    total: int = payload["data"]["totalNum"]
    return total


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_5xx_answers_a_gateway_page_and_applies_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, status: int
) -> None:
    fake.inject("5xx", route=POST_BORROW, status=status)
    got, headers, body = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert got == status
    assert headers["Content-Type"].startswith("text/html")
    assert body.startswith("<html>") and f"<title>{status} " in body
    assert fake.ledger(creds.api_key) == []
    assert await history_total(http, fake, creds) == 0
    got, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (got, payload["code"]) == (200, "200000")
    assert fake.stats.status_counts[status] == 1
    assert fake.stats.faults["5xx"] == 1


async def test_rate_limit_fault_applies_nothing_and_charges_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("rate_limit", route=POST_BORROW, reset_ms=250)
    status, headers, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload) == (429, {"code": "429000", "msg": "Too Many Requests"})
    assert (headers["gw-ratelimit-remaining"], headers["gw-ratelimit-reset"]) == ("0", "250")
    assert fake.ledger(creds.api_key) == []
    assert fake.stats.rate_limited == 1
    status, headers, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, headers["gw-ratelimit-remaining"]) == (200, str(4000 - 15))


async def test_drop_before_closes_unanswered_and_applies_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("drop_before", route=POST_BORROW)
    with pytest.raises(DISCONNECTED):
        await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert fake.ledger(creds.api_key) == []
    assert fake.stats.requests[POST_BORROW] == 1
    assert sum(fake.stats.status_counts.values()) == 0
    status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert status == 200
    assert len(fake.ledger(creds.api_key)) == 1


async def test_apply_then_5xx(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("apply_then_5xx", route=POST_BORROW)
    status, headers, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert status == 502 and headers["Content-Type"].startswith("text/html")
    [entry] = fake.ledger(creds.api_key)
    assert entry.actual_size == Decimal(5)
    assert await history_total(http, fake, creds) == 1


async def test_apply_then_drop(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("apply_then_drop", route="POST /api/v3/margin/repay")
    await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    with pytest.raises(DISCONNECTED):
        await call(
            http, fake, creds, "POST", "/api/v3/margin/repay", {"currency": "USDT", "size": 2}
        )
    assert [entry.kind for entry in fake.ledger(creds.api_key)] == ["borrow", "repay"]
    assert fake.debt(creds.api_key, "USDT") == 3


async def test_apply_then_stall_times_out_the_client_and_close_ends_it(
    creds: Credentials, fake: FakeKuCoin
) -> None:
    fake.inject("apply_then_stall", route=POST_BORROW)
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert len(fake.ledger(creds.api_key)) == 1
    # The stalled handler (30 s by default) must not hold the fake open.
    await asyncio.wait_for(fake.close(), timeout=10)


async def test_latency_fault_answers_normally(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("latency", route=POST_BORROW, latency=0.05)
    status, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload["code"]) == (200, "200000")
    assert fake.stats.faults["latency"] == 1


async def test_faults_are_consumed_in_order_by_matching_requests(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("5xx", times=2)  # any signed route
    fake.inject("rate_limit", route="GET /api/v3/margin/borrow")
    fake.inject("5xx", route=POST_BORROW, status=504)
    assert fake.pending_faults == 4
    async with http.get(fake.url + "/api/v1/timestamp") as resp:
        assert resp.status == 200  # not a signed route: untouched
    statuses = []
    for _ in range(2):
        status, _, _ = await call(http, fake, creds, "GET", HISTORY)
        statuses.append(status)
    status, _, _ = await call(http, fake, creds, "GET", HISTORY)
    statuses.append(status)
    status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    statuses.append(status)
    status, _, _ = await call(http, fake, creds, "GET", HISTORY)
    statuses.append(status)
    assert statuses == [502, 502, 429, 504, 200]
    assert fake.pending_faults == 0


async def test_a_route_specific_fault_waits_for_its_route(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.inject("5xx", route="GET /api/v1/timestamp")
    status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert status == 200
    async with http.get(fake.url + "/api/v1/timestamp") as resp:
        assert resp.status == 502
    fake.inject("5xx", route=POST_BORROW)
    fake.clear_faults()
    status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert status == 200


def test_bad_fault_arguments(fake: FakeKuCoin) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.inject("explode")
    with pytest.raises(ValueError):
        fake.inject("5xx", status=404)
    with pytest.raises(ValueError):
        fake.inject("5xx", times=0)
    with pytest.raises(ValueError):
        fake.inject("5xx", route="/api/v3/margin/borrow")
    with pytest.raises(ValueError):
        fake.set_fault_rate(1.5)


async def test_random_faults_hit_reads_only(fake: FakeKuCoin, creds: Credentials) -> None:
    fake.set_fault_rate(1.0, kinds=("5xx",))
    async with aiohttp.ClientSession() as http:
        status, _, _ = await call(http, fake, creds, "GET", HISTORY)
        assert status in (502, 503, 504)
        status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
        assert status == 200
        fake.set_fault_rate(0)
        status, _, _ = await call(http, fake, creds, "GET", HISTORY)
        assert status == 200


async def test_random_fault_mix_is_reproducible(creds: Credentials, fake: FakeKuCoin) -> None:
    async def run() -> list[str]:
        fake.set_fault_rate(0.5, seed=7, latency=0.001)
        outcomes = []
        async with aiohttp.ClientSession() as http:
            for _ in range(40):
                try:
                    status, _, _ = await call(http, fake, creds, "GET", HISTORY)
                    outcomes.append(str(status))
                except DISCONNECTED:
                    outcomes.append("drop")
        return outcomes

    first = await run()
    assert await run() == first
    assert {"200", "429"} <= set(first)
    assert set(first) & {"502", "503", "504"}
    # aiohttp's client resends a GET once after a disconnection, so drops rarely surface.
    assert fake.stats.faults["drop_before"] > 0
    assert fake.stats.faults["latency"] > 0


async def test_drop_on_a_read_seen_from_a_bare_socket(fake: FakeKuCoin, creds: Credentials) -> None:
    fake.inject("drop_before", route="GET /api/v3/margin/borrow")
    url = yarl.URL(fake.url)
    assert url.host is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    lines = [f"GET {HISTORY} HTTP/1.1", f"Host: {url.host}"]
    lines += [f"{name}: {value}" for name, value in kc_headers(creds, "GET", HISTORY).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    with contextlib.suppress(ConnectionResetError):  # a reset is a drop too
        assert await reader.read() == b""  # closed without a byte of reply
    writer.close()


# -- a gateway closing idle keep-alive connections ----------------------------------------


async def test_request_on_a_connection_idle_too_long_is_dropped_unapplied(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.set_idle_close(0.2)
    async with aiohttp.ClientSession() as http:  # keep-alive: one pooled connection
        assert await history_total(http, fake, creds) == 0
        await asyncio.sleep(0.4)  # idle past the gateway's limit
        # A POST is not resent by aiohttp, so the drop reaches the caller.
        with pytest.raises(DISCONNECTED):
            await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert fake.ledger(creds.api_key) == []
    assert fake.debt(creds.api_key, "USDT") == 0
    assert fake.stats.idle_drops == 1
    assert fake.stats.requests[POST_BORROW] == 0  # it never reached the exchange
    assert fake.stats.connections_opened == 1
    async with aiohttp.ClientSession() as http:
        assert await history_total(http, fake, creds) == 0
    fake.stats.reset()
    assert fake.stats.idle_drops == 0


async def test_a_fresh_connection_after_the_same_pause_is_served(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    fake.set_idle_close(0.2)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        assert await history_total(http, fake, creds) == 0
        await asyncio.sleep(0.4)
        status, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload["code"]) == (200, "200000")
    assert len(fake.ledger(creds.api_key)) == 1
    assert fake.stats.idle_drops == 0
    assert fake.stats.connections_opened == 2


async def test_a_connection_idle_less_than_the_limit_is_reused_and_served() -> None:
    async with FakeKuCoin(idle_close_after=30) as fake, aiohttp.ClientSession() as http:
        creds = fake.add_account()
        for _ in range(3):
            status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
            assert status == 200
        assert len(fake.ledger(creds.api_key)) == 3
        assert fake.stats.connections_opened == 1
        assert fake.stats.idle_drops == 0


async def test_time_spent_serving_a_request_is_not_idle_time(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    # Idle means no request in progress: a slow reply must not count towards the limit.
    fake.set_idle_close(0.3)
    fake.inject("latency", route=POST_BORROW, latency=0.6)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
            assert status == 200
    assert len(fake.ledger(creds.api_key)) == 2
    assert (fake.stats.idle_drops, fake.stats.connections_opened) == (0, 1)


async def test_idle_close_can_be_switched_off(fake: FakeKuCoin, creds: Credentials) -> None:
    fake.set_idle_close(0.2)
    fake.set_idle_close(None)
    async with aiohttp.ClientSession() as http:
        assert await history_total(http, fake, creds) == 0
        await asyncio.sleep(0.4)
        status, _, _ = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert status == 200
    assert fake.stats.idle_drops == 0
