"""``python -m benchmarks [--quick] [--only NAME ...] [--output FILE]``: run the benchmarks.

Prints each benchmark's table (Markdown) with its ratios and the issue's targets, met or
missed, after a header naming the machine and the library versions.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable

from benchmarks import accounts, memory, overhead, parsing, quota, streaming, sync
from benchmarks.common import Mode, Report, stdlib_json

BENCHMARKS: dict[str, Callable[[Mode], Report]] = {
    "overhead": overhead.run,
    "parsing": parsing.run,
    "streaming": streaming.run,
    "quota": quota.run,
    "memory": memory.run,
    "accounts": accounts.run,
    "sync": sync.run,
}
_DISTRIBUTIONS = (
    "margin-async",
    "aiohttp",
    "cattrs",
    "attrs",
    "kucoin-universal-sdk",
    "python-kucoin",
    "ccxt",
    "pydantic",
    "msgspec",
)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header(mode: Mode) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{name} {_version(name)}" for name in _DISTRIBUTIONS)
    return (
        f"## margin-async benchmarks ({mode.value} run, {now})\n\n"
        f"- Machine: {platform.machine()}, {cpus} cores, {platform.system()} "
        f"{platform.release()}; {platform.python_implementation()} "
        f"{platform.python_version()}\n"
        f"- Versions: {versions}\n"
        "- Server: FakeKuCoin in a separate process on 127.0.0.1, pinned to its own core "
        "when there are two or more\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs, under 2 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny runs that check nothing rots")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME")
    parser.add_argument("--output", help="also write the results (Markdown) to this file")
    args = parser.parse_args(argv)
    mode = Mode.SMOKE if args.smoke else Mode.QUICK if args.quick else Mode.FULL
    names = args.only or list(BENCHMARKS)
    sections = [header(mode)]
    print(sections[0], flush=True)
    started = time.perf_counter()
    for name in names:
        with stdlib_json():  # the default path; rows that say so use the fast extra
            report = BENCHMARKS[name](mode)
        sections.append(report.render())
        print(sections[-1], flush=True)
    footer = f"Total time: {time.perf_counter() - started:.0f} s\n"
    print(footer)
    sections.append(footer)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
