"""4. Quota-bound streaming: how close to the rate-limit ceiling a long walk gets.

The fake's quota is scaled down (600 weight per 3 s; a borrow-history page weighs 15,
so 40 pages of 500 records per window: a ceiling of 600 / 3 / 15 × 500 = 6,667
records/s). The walk is sized to need exactly ``k`` full windows plus one page, so an
ideal client finishes just as window ``k + 1`` opens and its rate equals the ceiling;
starting the clock with a full window in hand gives no head start. The number of 429
replies comes from the server process's own counters.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import Mode, Report, Target, fmt, median
from benchmarks.server import FakeServer
from margin_async import Credentials, MarginClient

__all__ = ["run"]

_QUOTA, _WINDOW_MS, _WEIGHT, _PAGE = 600, 3_000, 15, 500


async def _walk(url: str, creds: Credentials) -> int:
    async with MarginClient(creds, base_url=url) as client:
        received = 0
        async for _ in client.borrow_history("USDT", page_size=_PAGE):
            received += 1
        return received


def run(mode: Mode) -> Report:
    quota, window_ms = (_QUOTA, _WINDOW_MS) if mode is not Mode.SMOKE else (150, 1_000)
    windows = mode.pick(1, 2, 4)
    rounds = mode.pick(1, 1, 2)
    pages_per_window = quota // _WEIGHT
    pages = windows * pages_per_window + 1
    records = (pages - 1) * _PAGE + 1
    ceiling = quota / (window_ms / 1000) / _WEIGHT * _PAGE
    report = Report(
        f"4. Quota-bound streaming (quota {quota} weight / {window_ms / 1000:g} s, "
        f"{records:,} records = {pages} pages, {rounds} round(s), medians)",
        ["contender", "wall s", "records/s", "ceiling records/s", "% of ceiling", "429s served"],
    )
    fractions: list[float] = []
    walls: list[float] = []
    rejected = 0
    with FakeServer() as server:
        server.set_rate_limit(quota, window_ms)
        server.set_latency(0.02)
        for _ in range(rounds):
            creds = server.account(borrows=records)  # a fresh account: a fresh window
            server.reset_stats()
            started = time.perf_counter()
            received = asyncio.run(_walk(server.url, creds))
            wall = time.perf_counter() - started
            assert received == records, received
            rejected += int(server.stats()["rate_limited"])
            walls.append(wall)
            fractions.append(records / wall / ceiling)
    wall = median(walls)
    fraction = median(fractions)
    report.add(
        "margin-async (default prefetch)",
        f"{wall:.2f}",
        fmt(records / wall, 0),
        fmt(ceiling, 0),
        f"{fraction:.1%}",
        str(rejected),
    )
    report.notes.append(
        f"Ideal wall time: {windows} × {window_ms / 1000:g} s windows = "
        f"{windows * window_ms / 1000:g} s (the last page opens window {windows + 1})."
    )
    report.targets.append(
        Target(
            "≥ 90% of the quota ceiling with zero 429s",
            fraction >= 0.9 and rejected == 0,
            f"{fraction:.1%}, {rejected} × 429",
        )
    )
    return report
