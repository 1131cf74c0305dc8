"""6. Many accounts: 200 accounts each fetching one interest-history page.

* shared pool: one ``aiohttp.ClientSession`` passed to 200 ``MarginClient``s (capped at
  64 connections, a ``MarginClient``'s own default, or uncapped);
* one session each: 200 ``MarginClient``s, each creating (and closing) its own.

All 200 fetches run concurrently (``asyncio.gather``), twice per round: a cold poll (no
connection open yet) and a warm one (connections kept from the first). Sockets opened
are counted by the server (``FakeStats.connections_opened``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import aiohttp

from benchmarks.common import Mode, Report, fmt, median
from benchmarks.server import FakeServer
from margin_async import Credentials, MarginClient

__all__ = ["run"]

_LATENCY = 0.02
#: The shared pool's size: the same limit a MarginClient gives the session it creates.
_POOL = 64


async def _poll(clients: list[MarginClient]) -> float:
    started = time.perf_counter()
    pages = await asyncio.gather(*(c.get_interest_history("USDT", page_size=50) for c in clients))
    assert all(len(page.items) == 50 for page in pages)
    return time.perf_counter() - started


async def _shared(url: str, accounts: list[Credentials], limit: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = [MarginClient(creds, base_url=url, session=http) for creds in accounts]
        cold, warm = await _poll(clients), await _poll(clients)
        for client in clients:
            await client.close()
    return cold, warm


async def _separate(url: str, accounts: list[Credentials]) -> tuple[float, float]:
    clients = [MarginClient(creds, base_url=url) for creds in accounts]
    try:
        return await _poll(clients), await _poll(clients)
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def run(mode: Mode) -> Report:
    count = mode.pick(20, 200, 200)
    rounds = mode.pick(1, 3, 5)
    report = Report(
        f"6. Many accounts ({count} accounts × 1 interest-history page, "
        f"{_LATENCY * 1000:.0f} ms latency, {rounds} interleaved rounds, medians)",
        ["contender", "cold poll s", "warm poll s", "sockets opened", "max open at once"],
    )
    contenders: dict[
        str, Callable[[str, list[Credentials]], Coroutine[Any, Any, tuple[float, float]]]
    ] = {
        f"one shared ClientSession (pool limit {_POOL})": partial(_shared, limit=_POOL),
        "one shared ClientSession (no pool limit)": partial(_shared, limit=0),
        "one ClientSession per client": _separate,
    }
    results: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in contenders}
    with FakeServer() as server:
        accounts = server.accounts(count, interest=100)
        server.set_latency(_LATENCY)
        for _ in range(rounds):
            for name, contender in contenders.items():
                server.reset_stats()
                cold, warm = asyncio.run(contender(server.url, accounts))
                stats = server.stats()
                results[name].append(
                    (cold, warm, stats["connections_opened"], stats["max_concurrent_connections"])
                )
    for name, rows in results.items():
        report.add(
            name,
            f"{median([r[0] for r in rows]):.3f}",
            f"{median([r[1] for r in rows]):.3f}",
            fmt(median([r[2] for r in rows]), 0),
            fmt(median([r[3] for r in rows]), 0),
        )
    report.notes.append(
        "No target in the issue; the figures show what sharing a pool costs and saves. "
        "The shared pool caps concurrent sockets, so its cold poll runs in waves of "
        f"{_POOL}; per-client sessions open one socket per account."
    )
    return report
