"""3. Streaming: every record of a 50,000-record borrow history, 20 ms server latency.

Contenders, one after the other in each round, all walking the same account (its pages
rendered once by an untimed walk first, so that the server's work is the same for all;
no binding quota here, see :mod:`benchmarks.quota` for that):

* margin-async, ``async for order in client.borrow_history("USDT")`` at the default
  prefetch and at ``prefetch=1`` (pages strictly one after another);
* each installed peer library, walking page 1..totalPage at 500 records a page (the
  API's maximum, which every peer allows), see :mod:`benchmarks.peers`.

The ideal bound of a walk is latency × pages ÷ pages in flight (CPU time ignored).
"""

from __future__ import annotations

import asyncio
import math
import re
import time

from benchmarks import peers
from benchmarks.common import Mode, Report, Target, fmt, median, optional_import
from benchmarks.server import FakeServer
from margin_async import Credentials, MarginClient
from margin_async._client import DEFAULT_PREFETCH

__all__ = ["run"]

_PAGE = 500
_LATENCY = 0.020


async def _margin_async(url: str, creds: Credentials, prefetch: int) -> int:
    async with MarginClient(creds, base_url=url) as client:
        received = 0
        async for _ in client.borrow_history("USDT", page_size=_PAGE, prefetch=prefetch):
            received += 1
        return received


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    code = re.search(r"\b(4\d{5})\b", text)
    if code is not None:
        return f"refused by the fake: {code.group(1)} (see notes)"
    return f"{type(error).__name__}: {text[:60]}"


def run(mode: Mode) -> Report:
    records = mode.pick(2_000, 50_000, 50_000)
    rounds = mode.pick(1, 1, 3)
    pages = math.ceil(records / _PAGE)
    report = Report(
        f"3. Streaming ({records:,} records = {pages} pages of {_PAGE}, "
        f"{_LATENCY * 1000:.0f} ms latency, {rounds} interleaved round(s), medians)",
        ["contender", "wall s", "records/s", "ideal bound s", "wall ÷ ideal", "margin-async ×"],
    )
    contenders: list[tuple[str, str | None, peers.Walker | None, int]] = [
        (f"margin-async (default prefetch={DEFAULT_PREFETCH})", None, None, DEFAULT_PREFETCH),
        ("margin-async (prefetch=1)", None, None, 1),
    ]
    contenders += [(label, module, walker, 1) for label, module, walker in peers.PEERS]
    walls: dict[str, list[float]] = {label: [] for label, *_ in contenders}
    failures: dict[str, str] = {}
    with FakeServer() as server:
        creds = server.account(borrows=records)
        asyncio.run(_margin_async(server.url, creds, DEFAULT_PREFETCH))  # warm the fake
        server.set_latency(_LATENCY)
        for label, module, _, _ in contenders:
            if module is not None and optional_import(module) is None:
                failures[label] = "not installed"  # imported here, outside the timings
        for _ in range(rounds):
            for label, _, walker, prefetch in contenders:
                if label in failures:
                    continue
                started = time.perf_counter()
                try:
                    if walker is None:
                        received = asyncio.run(_margin_async(server.url, creds, prefetch))
                    else:
                        received = peers.run_walker(walker, server.url, creds, _PAGE)
                except Exception as error:
                    failures[label] = _short(error)
                    continue
                wall = time.perf_counter() - started
                if received != records:
                    failures[label] = f"received {received:,} of {records:,} records"
                    continue
                walls[label].append(wall)
        rejected = server.stats()["rate_limited"]
    ours = median(walls[contenders[0][0]])
    fastest_peer, fastest_wall = "", math.inf
    for label, module, _, prefetch in contenders:
        if label in failures:
            report.add(label, "–", "–", "–", "–", failures[label])
            continue
        wall = median(walls[label])
        if module is not None and wall < fastest_wall:
            fastest_peer, fastest_wall = label, wall
        ideal = _LATENCY * pages / prefetch
        report.add(
            label,
            f"{wall:.2f}",
            fmt(records / wall, 0),
            f"{ideal:.2f}",
            f"{wall / ideal:.2f}×",
            f"{wall / ours:.2f}×",
        )
    ideal_default = _LATENCY * pages / DEFAULT_PREFETCH
    report.notes += [
        "Ideal bound = latency × pages ÷ pages in flight; peers walk one page at a time.",
        "The official SDK is synchronous (requests): it runs as its users run it, blocking.",
        "python-kucoin 2.2.0 signs requests the key-version-1 way (plain passphrase, no "
        "KC-API-KEY-VERSION header), which KuCoin has not accepted for new keys since 2021; "
        "the fake, like the exchange, applies version 1 rules then and refuses it with 400004 "
        "(bad passphrase). The '+ v2 key headers' row adds the two headers (a "
        "10-line subclass) to time its pagination anyway.",
        "ccxt has no unified borrow-history method; it walks the implicit "
        "private_get_margin_borrow endpoint. By default its client-side throttle spaces "
        "requests by their weight (15) whatever the quota left.",
        f"429 replies served during the walks: {rejected}.",
    ]
    if fastest_peer:
        speedup = fastest_wall / ours
        report.targets.append(
            Target(
                "≥ 4× faster than the fastest peer",
                speedup >= 4,
                f"{speedup:.2f}× vs {fastest_peer}",
            )
        )
    else:
        report.targets.append(Target("≥ 4× faster than the fastest peer", None, "no peer ran"))
    within = ours / ideal_default
    report.targets.append(
        Target(
            "within 1.25× of the ideal bound at the default prefetch",
            within <= 1.25,
            f"{within:.2f}× ({ours:.2f} s vs {ideal_default:.2f} s)",
        )
    )
    return report
