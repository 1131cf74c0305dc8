"""FakeKuCoin's rate limits, clock skew, latency and statistics, over loopback."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from kucoin_wire import b64hmac, call, kc_headers, send

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin
from margin_async.testing import _server as fake_server

BORROW = "/api/v3/margin/borrow"
HISTORY = "/api/v3/margin/borrow?currency=USDT"
BORROW_BODY = {"currency": "USDT", "size": 1, "timeInForce": "IOC"}


def limits(headers: Mapping[str, str]) -> tuple[int, int, int]:
    return (
        int(headers["gw-ratelimit-limit"]),
        int(headers["gw-ratelimit-remaining"]),
        int(headers["gw-ratelimit-reset"]),
    )


@pytest.mark.parametrize(
    ("method", "target", "body", "weight"),
    [
        ("POST", BORROW, BORROW_BODY, 15),
        ("GET", HISTORY, b"", 15),
        ("POST", "/api/v3/margin/repay", {"currency": "USDT", "size": 1}, 10),
        ("GET", "/api/v3/margin/repay?currency=USDT", b"", 15),
        ("GET", "/api/v3/margin/interest", b"", 20),
        ("POST", "/api/v3/position/update-user-leverage", {"leverage": "2"}, 8),
    ],
)
async def test_weights_and_headers(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    creds: Credentials,
    method: str,
    target: str,
    body: Any,
    weight: int,
) -> None:
    _, headers, _ = await call(http, fake, creds, method, target, body)
    limit, remaining, reset = limits(headers)
    assert (limit, remaining) == (4000, 4000 - weight)
    assert 0 < reset <= 30_000
    _, headers, _ = await call(http, fake, creds, method, target, body)
    assert limits(headers)[1] == 4000 - 2 * weight


class SteppedClock:
    """Stands in for the ``time`` module inside the fake's server: a monotonic clock the
    test sets to the nanosecond, and the real wall clock (the timestamp check needs it)."""

    def __init__(self) -> None:
        self.ns = 0

    def monotonic_ns(self) -> int:
        return self.ns

    def monotonic(self) -> float:
        return self.ns / 1e9

    @staticmethod
    def time_ns() -> int:
        return time.time_ns()


# Monotonic readings (ns) at which float milliseconds made a fresh window's reset read
# 30001 (start + 30000 - start rounded up past 30000); then a seeded spread of others.
FLOAT_TRAPS = [4_180_786_039_377, 16_766_445_615_464, 268_414_077_330_298]
SPREAD = [random.Random(seed).randrange(10**9, 10**16) for seed in range(12)]
MS = 1_000_000


@pytest.mark.parametrize("start_ns", FLOAT_TRAPS + SPREAD)
async def test_reset_is_exact_on_a_controlled_clock(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    start_ns: int,
) -> None:
    clock = SteppedClock()
    monkeypatch.setattr(fake_server, "time", clock)
    creds = fake.add_account()

    async def reset_at(ns: int) -> int:
        clock.ns = ns
        _, headers, _ = await call(http, fake, creds, "GET", HISTORY)
        return limits(headers)[2]

    # What is left of the 30000 ms window, rounded up to a whole millisecond.
    assert await reset_at(start_ns) == 30_000
    assert await reset_at(start_ns + 1) == 30_000
    assert await reset_at(start_ns + MS) == 29_999
    assert await reset_at(start_ns + MS + 1) == 29_999
    assert await reset_at(start_ns + 12_345 * MS + 678) == 17_655
    assert await reset_at(start_ns + 30_000 * MS - 1) == 1
    assert await reset_at(start_ns + 30_000 * MS) == 30_000  # a new window starts


async def test_429_when_the_weight_does_not_fit(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_rate_limit(40, 60_000)
    for expected in (25, 10):
        status, headers, _ = await call(http, fake, creds, "GET", HISTORY)
        assert (status, limits(headers)[1]) == (200, expected)
    status, headers, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload) == (429, {"code": "429000", "msg": "Too Many Requests"})
    limit, remaining, reset = limits(headers)
    assert (limit, remaining) == (40, 0)
    assert 0 < reset <= 60_000
    assert fake.ledger(creds.api_key) == []
    assert fake.stats.rate_limited == 1
    # A lighter request that still fits is served (a repay weighs 10).
    status, headers, payload = await call(
        http, fake, creds, "POST", "/api/v3/margin/repay", {"currency": "USDT", "size": 1}
    )
    assert (status, payload["code"], limits(headers)[1]) == (200, "130102", 0)
    # Other accounts have their own budget.
    other = fake.add_account()
    status, headers, _ = await call(http, fake, other, "GET", HISTORY)
    assert (status, limits(headers)[1]) == (200, 25)


async def test_window_starts_at_first_request_and_resets(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_rate_limit(15, 300)
    status, headers, _ = await call(http, fake, creds, "GET", HISTORY)
    assert (status, limits(headers)[1]) == (200, 0)
    status, headers, _ = await call(http, fake, creds, "GET", HISTORY)
    assert status == 429
    await asyncio.sleep(limits(headers)[2] / 1000 + 0.05)
    status, headers, _ = await call(http, fake, creds, "GET", HISTORY)
    assert (status, limits(headers)[1]) == (200, 0)


async def test_server_time_is_never_rate_limited(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_rate_limit(0, 60_000)
    status, _, _ = await call(http, fake, creds, "GET", HISTORY)
    assert status == 429
    async with http.get(fake.url + "/api/v1/timestamp") as resp:
        assert resp.status == 200


async def test_clock_skew(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_clock_skew(60_000)
    status, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload["code"]) == (401, "400002")
    async with http.get(fake.url + "/api/v1/timestamp") as resp:
        server_ms = (await resp.json())["data"]
    offset = server_ms - time.time_ns() // 1_000_000
    assert 55_000 < offset < 65_000
    # A client that applies the measured offset is accepted.
    body = json.dumps(BORROW_BODY, separators=(",", ":")).encode()
    headers = kc_headers(creds, "POST", BORROW, body)
    ts = str(int(headers["KC-API-TIMESTAMP"]) + offset)
    headers["KC-API-TIMESTAMP"] = ts
    headers["KC-API-SIGN"] = b64hmac(creds.api_secret, (ts + "POST" + BORROW).encode() + body)
    status, _, _ = await send(http, fake, "POST", BORROW, body, headers)
    assert status == 200
    [entry] = fake.ledger(creds.api_key)
    assert entry.created_time - time.time_ns() // 1_000_000 > 55_000


async def test_latency_delays_but_answers(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_latency(0.05)
    status, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload["code"]) == (200, "200000")
    fake.set_latency(0)
    with pytest.raises(ValueError):
        fake.set_latency(-1)


async def test_request_and_status_counters(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    await call(http, fake, creds, "GET", HISTORY)
    await call(http, fake, creds, "GET", HISTORY)
    await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    await call(http, fake, creds, "POST", BORROW, b"{}")
    async with http.get(fake.url + "/api/v1/timestamp") as resp:
        await resp.read()
    stats = fake.stats
    assert stats.requests["GET /api/v3/margin/borrow"] == 2
    assert stats.requests["POST /api/v3/margin/borrow"] == 2
    assert stats.requests["GET /api/v1/timestamp"] == 1
    assert stats.requests["GET /api/v3/margin/repay"] == 0
    assert stats.status_counts == {200: 4, 400: 1}
    assert stats.rate_limited == 0
    stats.reset()
    assert stats.requests == {} and stats.status_counts == {}


async def test_connection_counters(fake: FakeKuCoin, creds: Credentials) -> None:
    async with aiohttp.ClientSession() as keep_alive:
        for _ in range(3):
            await call(keep_alive, fake, creds, "GET", HISTORY)
    assert fake.stats.connections_opened == 1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        for _ in range(3):
            await call(fresh, fake, creds, "GET", HISTORY)
    assert fake.stats.connections_opened == 4

    fake.stats.reset()
    fake.set_latency(0.2)  # keeps the five requests in flight together
    async with aiohttp.ClientSession() as parallel:
        await asyncio.gather(*(call(parallel, fake, creds, "GET", HISTORY) for _ in range(5)))
    assert fake.stats.connections_opened == 5
    assert fake.stats.max_concurrent_connections == 5
    await asyncio.sleep(0.05)
    assert fake.stats.open_connections == 0


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        FakeKuCoin(rate_limit_window_ms=0)
    fake = FakeKuCoin()
    with pytest.raises(RuntimeError):
        _ = fake.url
    with pytest.raises(KeyError, match="no account"):
        fake.debt("nobody", "USDT")
    with pytest.raises(TypeError):
        fake.set_liquidity("USDT", 1.5)  # type: ignore[arg-type]
    creds = fake.add_account()
    assert fake.debt(creds.api_key, "USDT") == Decimal(0)


async def test_start_and_close_without_context_manager() -> None:
    fake = FakeKuCoin()
    assert await fake.start() is fake
    with pytest.raises(RuntimeError):
        await fake.start()
    url = fake.url
    await fake.close()
    await fake.close()  # closing twice is harmless
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(url + "/api/v1/timestamp")
