"""1. Per-request overhead: client CPU per signed request for a 50-record page.

Contenders, alternating round by round against the same FakeKuCoin process:

* margin-async: ``await client.get_borrow_history("USDT", page_size=50)`` (signing, rate
  budget, retry policy, envelope checks, typed ``Page[BorrowOrder]`` with ``Decimal``s),
  as installed by default (replies decoded by the standard library's json) and with the
  ``fast`` extra (msgspec), when it is installed;
* baseline: plain aiohttp + ``hmac`` signing + ``json.loads``, no models, no checks
  beyond the envelope code: the least a hand-written client can do.

Client CPU is ``time.process_time()`` of this process (the server runs in another).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import aiohttp

from benchmarks.common import (
    FAST_JSON,
    Mode,
    Report,
    Target,
    fast_json,
    fmt,
    median,
    stdlib_json,
)
from benchmarks.server import FakeServer
from margin_async import Credentials, MarginClient

__all__ = ["run"]

_PATH = "/api/v3/margin/borrow"
_QUERY = "currency=USDT&currentPage=1&pageSize=50"
_TARGET = 1.15
_BASELINE = "baseline (aiohttp + hmac + json.loads)"
_OURS = "margin-async"
_FAST = "margin-async + fast extra (msgspec)"


async def _margin_async(url: str, creds: Credentials, requests: int) -> tuple[float, float]:
    with stdlib_json():
        return await _margin_async_run(url, creds, requests)


async def _margin_async_run(url: str, creds: Credentials, requests: int) -> tuple[float, float]:
    async with MarginClient(creds, base_url=url) as client:
        for _ in range(10):  # warm up: connection, budget, caches
            await client.get_borrow_history("USDT", page_size=50)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            page = await client.get_borrow_history("USDT", page_size=50)
            assert len(page.items) == 50
        return time.process_time() - cpu, time.perf_counter() - wall


async def _margin_async_fast(url: str, creds: Credentials, requests: int) -> tuple[float, float]:
    with fast_json():
        return await _margin_async_run(url, creds, requests)


async def _baseline(url: str, creds: Credentials, requests: int) -> tuple[float, float]:
    secret = creds.api_secret.encode()
    passphrase = base64.b64encode(
        hmac.new(secret, creds.api_passphrase.encode(), hashlib.sha256).digest()
    ).decode()
    target = f"{url}{_PATH}?{_QUERY}"
    signed_path = f"GET{_PATH}?{_QUERY}"

    async def get(session: aiohttp.ClientSession) -> object:
        timestamp = str(time.time_ns() // 1_000_000)
        signature = base64.b64encode(
            hmac.new(secret, (timestamp + signed_path).encode(), hashlib.sha256).digest()
        ).decode()
        headers = {
            "KC-API-KEY": creds.api_key,
            "KC-API-SIGN": signature,
            "KC-API-TIMESTAMP": timestamp,
            "KC-API-PASSPHRASE": passphrase,
            "KC-API-KEY-VERSION": "3",
        }
        async with session.get(target, headers=headers) as response:
            envelope = json.loads(await response.read())
        if envelope["code"] != "200000":
            raise RuntimeError(envelope)
        return envelope["data"]

    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            await get(session)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            data = await get(session)
            assert isinstance(data, dict) and len(data["items"]) == 50
        return time.process_time() - cpu, time.perf_counter() - wall


def run(mode: Mode) -> Report:
    requests = mode.pick(50, 1000, 2000)
    rounds = mode.pick(1, 3, 5)
    report = Report(
        f"1. Per-request overhead ({requests:,} sequential signed requests, 50-record page, "
        f"{rounds} interleaved rounds, medians)",
        ["contender", "client CPU µs/request", "wall µs/request", "CPU ratio to baseline"],
    )
    with FakeServer() as server:
        creds = server.account(borrows=1_000)
        contenders = {_BASELINE: _baseline, _OURS: _margin_async}
        if FAST_JSON is not None:
            contenders[_FAST] = _margin_async_fast
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, contender in contenders.items():
                c, w = asyncio.run(contender(server.url, creds, requests))
                cpu[name].append(c / requests * 1e6)
                wall[name].append(w / requests * 1e6)
    base = median(cpu[_BASELINE])
    ratios: dict[str, float] = {}
    for name in contenders:
        value = median(cpu[name])
        ratios[name] = value / base
        report.add(name, fmt(value), fmt(median(wall[name])), f"{ratios[name]:.2f}×")
    if FAST_JSON is None:
        report.add(_FAST, "–", "–", "not installed")
    report.notes.append(
        "Each contender parses the same 50 records: the baseline into dicts (json.loads), "
        "margin-async into frozen attrs models with Decimal amounts."
    )
    report.targets.append(
        Target(
            f"margin-async ≤ {_TARGET}× the baseline's client CPU",
            ratios[_OURS] <= _TARGET,
            f"{ratios[_OURS]:.2f}×",
        )
    )
    fast = ratios.get(_FAST)
    report.targets.append(
        Target(
            f"with the fast extra: ≤ {_TARGET}× the baseline's client CPU",
            None if fast is None else fast <= _TARGET,
            "not installed" if fast is None else f"{fast:.2f}×",
        )
    )
    return report
