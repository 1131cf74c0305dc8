"""Every benchmark runs end to end at a tiny size, so none of them rots.

No timing is asserted: only that each completes, sees every record it asked for, and
renders a table. Peer libraries (the ``bench`` extra) are skipped when not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` lives next to `tests`, not in the package
    sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import BENCHMARKS  # noqa: E402
from benchmarks.common import Mode  # noqa: E402


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_at_smoke_size(name: str) -> None:
    report = BENCHMARKS[name](Mode.SMOKE)
    text = report.render()
    assert report.rows
    assert all(len(row) == len(report.columns) for row in report.rows)
    assert report.title in text


@pytest.mark.parametrize(
    ("module", "label"),
    [
        ("kucoin_universal_sdk", "official SDK (kucoin-universal-sdk)"),
        ("kucoin", "python-kucoin AsyncClient + v2 key headers"),
        ("ccxt", "ccxt.async_support.kucoin (enableRateLimit=False)"),
    ],
)
def test_peer_walks_the_fake(module: str, label: str) -> None:
    pytest.importorskip(module)
    from benchmarks import peers
    from benchmarks.server import FakeServer

    walker = dict((name, walk) for name, _, walk in peers.PEERS)[label]
    with FakeServer(pin=False) as server:
        creds = server.account(borrows=1_050)
        assert peers.run_walker(walker, server.url, creds, 500) == 1_050


def test_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "parsing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "2. Parsing" in result.stdout
    assert "Targets:" in result.stdout
