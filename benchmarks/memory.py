"""5. Memory: peak RSS of a process streaming 10,000 vs 1,000,000 records.

Each size runs in a fresh ``python -m benchmarks.memory --child`` process that streams
every record of one account's borrow history (``async for``, discarding each record)
and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``. Streaming in constant
memory means the two peaks differ by little (target: at most 20 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import Mode, Report, Target, fmt, stdlib_json
from benchmarks.server import FakeServer
from margin_async import Credentials, MarginClient

__all__ = ["run"]

_LIMIT_MB = 20.0


async def _stream(url: str, creds: Credentials) -> int:
    async with MarginClient(creds, base_url=url) as client:
        received = 0
        async for _ in client.borrow_history("USDT"):
            received += 1
        return received


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("url")
    parser.add_argument("credentials", help="JSON")
    args = parser.parse_args(argv)
    creds = Credentials(**json.loads(args.credentials))
    started = time.perf_counter()
    received = asyncio.run(_stream(args.url, creds))
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps({"received": received, "peak_kb": peak_kb, "hwm_kb": _vm_hwm_kb(), "wall": wall})
    )


def _vm_hwm_kb() -> int | None:
    """This process's own peak RSS (Linux ``VmHWM``), or ``None`` elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _measure(url: str, creds: Credentials) -> dict[str, Any]:
    spec = json.dumps(
        {
            "api_key": creds.api_key,
            "api_secret": creds.api_secret,
            "api_passphrase": creds.api_passphrase,
            "key_version": creds.key_version,
        }
    )
    # Linux keeps ru_maxrss across fork + exec: a child forked from this (large) process
    # would report this process's size. So a bare interpreter (a few MB) starts the child.
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    child = [sys.executable, "-m", "benchmarks.memory", "--child", url, spec]
    out = subprocess.run(
        [sys.executable, "-S", "-c", launcher, *child],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run(mode: Mode) -> Report:
    small, large = mode.pick(1_000, 10_000, 10_000), mode.pick(20_000, 1_000_000, 1_000_000)
    report = Report(
        "5. Memory (peak RSS of a fresh process streaming every record, discarding them)",
        ["records streamed", "peak RSS MiB (ru_maxrss)", "VmHWM MiB", "wall s", "records/s"],
    )
    peaks: dict[int, float] = {}
    with FakeServer() as server:
        for size in (small, large):
            creds = server.account(borrows=size)
            result = _measure(server.url, creds)
            assert result["received"] == size, result
            peaks[size] = result["peak_kb"] / 1024
            hwm = result.get("hwm_kb")
            report.add(
                f"{size:,}",
                fmt(peaks[size]),
                "–" if hwm is None else fmt(hwm / 1024),
                f"{result['wall']:.2f}",
                fmt(size / result["wall"], 0),
            )
    growth = peaks[large] - peaks[small]
    report.notes.append(
        f"Difference: {growth:+.1f} MiB for {large - small:,} more records "
        "(default page size 500 and prefetch, no server latency)."
    )
    report.targets.append(
        Target(
            f"peak RSS for {large:,} records at most {_LIMIT_MB:g} MB above {small:,}",
            growth <= _LIMIT_MB,
            f"{growth:+.1f} MiB",
        )
    )
    return report


if __name__ == "__main__":
    with stdlib_json():  # the default path, as the parent measures everything else
        _child(sys.argv[1:])
