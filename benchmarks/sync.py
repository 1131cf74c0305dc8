"""7. Mirror (``margin_async.sync``): a first ``Mirror.run_once`` vs the raw stream, with
the client's CPU binding and with the rate limit binding, and its memory.

Throughput, CPU-bound (the mirror's own cost). One account on the fake holds N borrow,
N repay and N interest records (USDT, cross margin). Contenders, one after the other in
each round (interleaved), each reading every record of the three histories, 500 records
a page, 8 pages in flight per history, the three histories at once:

* raw stream: ``async for _ in client.borrow_history("USDT", page_size=500,
  prefetch=8)`` and the same for ``repay_history`` and ``interest_history``, run
  together (``asyncio.gather``), each record discarded: the floor;
* a first ``Mirror.run_once`` (all three kinds, default ``batch_size``) into a fresh
  SQLite file (``open_store("sqlite:///...")``, in a temporary directory);
* the same into a fresh database of a throwaway PostgreSQL server.

Timed: the walks / ``run_once`` alone; the ``AccountPool`` is open and the store open
(its tables created) before the clock starts. Client CPU is ``time.process_time()`` of
this process, so it includes the SQLite store's thread (PostgreSQL's work is in its own
processes). Before the first round an untimed raw walk renders the fake's pages once.

Settings that keep the measurement on the mirror's own cost:

* Latency: the fake's default, none (loopback only), as in :mod:`benchmarks.memory`:
  the mirror's CPU shows fully. At :mod:`benchmarks.streaming`'s 20 ms the walk is still
  CPU-bound at 8 pages in flight, so the ratios would hardly differ.
* Quota: ``Mirror(quota=10**9)`` and an unlimited fake. At VIP0's default (4000 weight /
  30 s, 25% headroom) the mirror would read at most 75,000 records per 30 s: that would
  measure the quota, which the quota-bound table does.
* Durability: SQLite as the store opens it (WAL, ``synchronous=NORMAL``); PostgreSQL
  with ``synchronous_commit=off`` (``fsync`` on), its equivalent: a commit survives the
  process being killed, a power loss may undo the last ones, never half of one.

Throughput, quota-bound (the regime users meet: on the exchange the rate limit binds
long before the client's CPU). The fake's quota is scaled down as in
:mod:`benchmarks.quota` (600 weight per 3 s window in a full run; 240 per 1.2 s in a quick
one, the same ceiling of 6,667 records/s), with :mod:`benchmarks.streaming`'s 20 ms
latency. One account holds one borrow history (15 weight a page: 40 pages per window in
a full run), sized so that the raw stream needs exactly 3 full windows plus one page that
opens the 4th: an ideal client takes 3 windows. Contenders, each starting with a fresh,
full window (the fake's rate limit set again just before it), 8 pages in flight:

* raw stream: ``borrow_history`` as above (the SDK's own rate budget paces it);
* a first ``run_once`` into SQLite with the fake's figures (``Mirror(quota=600,
  window=3, headroom=0)`` in a full run): it may spend the whole quota;
* the same with the default ``headroom=0.25``: it leaves a quarter of each window to the
  account's own borrows and repays (30 pages of the 40), so the walk takes 4 windows:
  its ceiling is 0.75x the raw stream's, shown next to the measurement (no target);
* ``headroom=0`` into PostgreSQL.

Borrow only, not the three histories at once: with pages of 15, 15 and 20 weight, how
many fit a window depends on how the walks share it, and a window a few weight short of a
page costs a whole window; one history keeps both ceilings exact.

Memory. A fresh ``python -m benchmarks.sync --child`` process (started from a bare
interpreter, so that its ``ru_maxrss`` is its own, as in :mod:`benchmarks.memory`) runs
a first ``run_once`` of one account's borrow history (borrow only: one stream) into a
fresh store and reports its peak RSS (``VmHWM``, and ``ru_maxrss``). Constant memory
means the peak at 1,000,000 records is within 1.5× the peak at 100,000.

PostgreSQL. The server is started here, not taken from ``tests/pg_cluster.py``: that
module signals a missing server with ``pytest.skip`` (a ``BaseException`` outside pytest)
and imports pytest, and ``tests`` is not a package a wheel ships. :class:`_Postgres`
does the same in fewer lines: ``initdb`` into a temporary directory (as the ``postgres``
user, or ``nobody``, when run as root), ``postgres`` on 127.0.0.1 and a free port, a
fresh database per measurement, everything removed afterwards. The binaries are looked
for in ``$PG_BINDIR``, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` and
``PATH``. Without them, or without asyncpg, the PostgreSQL rows say ``skipped: <why>``.
The server is started before the fake (so it is not pinned to the client's cores).

``python -m benchmarks.sync --profile [N] [--cpu]``: cProfile of a first ``run_once`` of
N borrow records (default 100,000) into SQLite, the event loop's thread and the SQLite
store's merged, the top 25 functions by own time: wall time (cProfile's default; the
threads' idle waits show as ``epoll.poll`` and ``SimpleQueue.get``), or with ``--cpu``
each thread's CPU time (``time.thread_time``: no idle, but a Python-level timer
overstates the many small calls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import pstats
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Mode, Report, Target, fmt, median, stdlib_json
from benchmarks.server import FakeServer
from margin_async import AccountPool, Credentials, Paginator
from margin_async.sync import DEFAULT_HEADROOM, WEIGHTS, AccountSpec, Kind, Mirror, open_store
from margin_async.sync._budget import DEFAULT_WINDOW_S

__all__ = ["run"]

_LABEL = "bench"
_CURRENCY = "USDT"
_PAGE = 500
_PREFETCH = 8
#: The mirror's quota, weight per window: never binding (see the module docstring).
_QUOTA = 10**9
_KINDS: tuple[Kind, ...] = ("borrow", "repay", "interest")
#: Target: the mirror's records/s as a fraction of the raw stream's.
_SPEED_TARGET = 0.8
#: The fake's latency in the quota-bound table (as in :mod:`benchmarks.streaming`).
_LATENCY = 0.020
#: Full windows the quota-bound walk needs at the whole quota: with 3, it needs 4 at 75%
#: of it (the default headroom), so both ideal times are whole windows.
_WINDOWS = 3
#: Target: peak RSS at the large count at most this many times the small count's.
_MEMORY_TARGET = 1.5


# -- the contenders ---------------------------------------------------------------------


@dataclass
class _Run:
    wall: float
    cpu: float
    records: int


async def _raw(url: str, creds: Credentials, kinds: Sequence[Kind]) -> _Run:
    async with AccountPool({_LABEL: creds}, base_url=url) as pool:
        client = pool[_LABEL]

        histories: dict[Kind, Callable[..., Paginator[Any]]] = {
            "borrow": client.borrow_history,
            "repay": client.repay_history,
            "interest": client.interest_history,
        }

        async def walk(kind: Kind) -> int:
            received = 0
            async for _ in histories[kind](_CURRENCY, page_size=_PAGE, prefetch=_PREFETCH):
                received += 1
            return received

        wall, cpu = time.perf_counter(), time.process_time()
        counts = await asyncio.gather(*(walk(kind) for kind in kinds))
        return _Run(time.perf_counter() - wall, time.process_time() - cpu, sum(counts))


async def _mirror(
    url: str,
    creds: Credentials,
    db_url: str,
    kinds: Sequence[Kind],
    *,
    quota: int = _QUOTA,
    window: float = DEFAULT_WINDOW_S,
    headroom: float = DEFAULT_HEADROOM,
) -> _Run:
    store = open_store(db_url)
    spec = AccountSpec(currencies=[_CURRENCY])
    mirror = Mirror(
        store,
        {_LABEL: spec},
        kinds=kinds,
        quota=quota,
        window=window,
        headroom=headroom,
        prefetch=_PREFETCH,
    )
    async with (
        store,
        AccountPool({_LABEL: creds}, base_url=url, on_response=mirror.observe) as pool,
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        status = await mirror.run_once(pool)
        return _Run(time.perf_counter() - wall, time.process_time() - cpu, status.records)


# -- a throwaway PostgreSQL server ------------------------------------------------------


class _Unavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


def _find_bindir() -> Path | None:
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Postgres:
    """A server in a temporary directory; :meth:`create_database` gives fresh ones."""

    _USER = "bench"

    def __init__(self) -> None:
        bindir = _find_bindir()
        problems = []
        if bindir is None:
            problems.append("no PostgreSQL server binaries (initdb, postgres; set PG_BINDIR)")
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            problems.append("asyncpg is not installed (the postgres extra)")
        if problems:
            raise _Unavailable("; ".join(problems))
        assert bindir is not None
        self.bindir = bindir
        self.port = _free_port()
        self._databases = 0
        self._run_as: dict[str, Any] = {}
        self.root = Path(tempfile.mkdtemp(prefix="margin-bench-pg-"))
        self._server: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    user = pwd.getpwnam(name)
                    break
            else:
                raise _Unavailable("running as root, and no postgres or nobody user")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        data = self.root / "data"
        initdb = subprocess.run(
            [
                *(str(self.bindir / "initdb"), "-D", str(data), "-U", self._USER),
                *("--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **self._run_as,
        )
        if initdb.returncode != 0:
            raise _Unavailable(f"initdb failed: {initdb.stderr.strip()[-200:]}")
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - the server holds it
        settings = ["-c", "synchronous_commit=off", "-c", "max_connections=50"]
        self._server = subprocess.Popen(
            [
                *(str(self.bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1"),
                *("-p", str(self.port), "-k", str(self.root), *settings),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._run_as,
        )
        log.close()
        deadline = time.monotonic() + 30
        while not asyncio.run(self._ready()):
            if self._server.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "server.log").read_text(errors="replace")[-300:]
                raise _Unavailable(f"postgres did not start: {tail.strip()}")
            time.sleep(0.05)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self._USER}@127.0.0.1:{self.port}/{database}"

    async def _ready(self) -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(self.url(), timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    async def create_database(self) -> str:
        """A new, empty database; its URL."""
        import asyncpg

        self._databases += 1
        name = f"mirror_{self._databases}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # fast shutdown
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def _postgres() -> Iterator[_Postgres | str]:
    """A running server, or why there is none."""
    try:
        server = _Postgres()
    except (_Unavailable, OSError, subprocess.SubprocessError) as error:
        yield f"skipped: {error}"
        return
    try:
        yield server
    finally:
        server.stop()


# -- throughput -------------------------------------------------------------------------


def _throughput(
    mode: Mode, server: FakeServer, pg: _Postgres | str, tmp: Path, report: Report
) -> None:
    per_kind = mode.pick(1_000, 20_000, 50_000)
    rounds = mode.pick(1, 2, 3)
    total = per_kind * len(_KINDS)
    report.title = (
        f"7. Mirror: first run_once vs the raw stream ({per_kind:,} records of each of "
        f"{len(_KINDS)} histories = {total:,}, {_PAGE} a page, {_PREFETCH} pages in flight "
        f"per history, no latency, {rounds} interleaved round(s), medians)"
    )
    creds = server.account(borrows=per_kind, repays=per_kind, interest=per_kind)
    warm = asyncio.run(_raw(server.url, creds, _KINDS))  # renders the fake's pages once
    assert warm.records == total, warm
    made = 0

    def sqlite() -> Coroutine[Any, Any, _Run]:
        nonlocal made
        made += 1
        return _mirror(server.url, creds, f"sqlite:///{tmp / f'mirror-{made}.db'}", _KINDS)

    async def postgres() -> _Run:
        assert isinstance(pg, _Postgres)
        return await _mirror(server.url, creds, await pg.create_database(), _KINDS)

    contenders: dict[str, Callable[[], Coroutine[Any, Any, _Run]] | str] = {
        "raw stream (3 walks at once)": lambda: _raw(server.url, creds, _KINDS),
        "Mirror.run_once → SQLite": sqlite,
        "Mirror.run_once → PostgreSQL": pg if isinstance(pg, str) else postgres,
    }
    runs: dict[str, list[_Run]] = {label: [] for label in contenders}
    requests: dict[str, int] = {}
    for _ in range(rounds):
        for label, contender in contenders.items():
            if isinstance(contender, str):
                continue
            server.reset_stats()
            result = asyncio.run(contender())
            requests[label] = sum(server.stats()["requests"].values())
            if result.records != total:
                raise RuntimeError(f"{label}: {result.records:,} records of {total:,}")
            runs[label].append(result)
        for leftover in tmp.glob("mirror-*.db*"):
            leftover.unlink()
    raw_rate = total / median([r.wall for r in runs["raw stream (3 walks at once)"]])
    for label, contender in contenders.items():
        if isinstance(contender, str):
            report.add(label, f"{total:,}", "–", "–", "–", "–", "–", contender)
            reason = contender.removeprefix("skipped: ")
            report.targets.append(
                Target(f"{label}: ≥ {_SPEED_TARGET}× the raw stream", None, reason)
            )
            continue
        wall = median([r.wall for r in runs[label]])
        cpu = median([r.cpu for r in runs[label]])
        rate = total / wall
        report.add(
            label,
            f"{total:,}",
            f"{requests[label]:,}",
            f"{wall:.2f}",
            fmt(rate, 0),
            f"{cpu:.2f}",
            fmt(1e6 * cpu / total, 2),
            f"{rate / raw_rate:.2f}×",
        )
        if label.startswith("Mirror"):
            report.targets.append(
                Target(
                    f"{label}: ≥ {_SPEED_TARGET}× the raw stream's records/s",
                    rate / raw_rate >= _SPEED_TARGET,
                    f"{rate / raw_rate:.2f}× ({fmt(rate, 0)} vs {fmt(raw_rate, 0)} records/s)",
                )
            )
    report.notes += [
        "Every contender reads the same records from the same fake, in the same requests "
        "(counted by the fake); the mirror's records are counted from its status (rows "
        "written), the raw stream's as they arrive.",
        f"The mirror writes in batches of 2,000 rows (its default), each with its cursor in "
        f"one transaction; quota set to {_QUOTA:g} so its headroom never binds.",
        "Client CPU: time.process_time() of this process (the SQLite store's thread "
        "included; the PostgreSQL server's processes not).",
    ]


# -- quota-bound throughput -------------------------------------------------------------


@dataclass
class _Quota:
    """The fake's scaled-down rate limit and a borrow walk sized to it."""

    quota: int
    window_ms: int
    weight: int = WEIGHTS["borrow"]

    @property
    def window(self) -> float:
        return self.window_ms / 1000

    @property
    def pages(self) -> int:
        # _WINDOWS full windows for the raw stream, plus one page that opens the next.
        return _WINDOWS * (self.quota // self.weight) + 1

    @property
    def records(self) -> int:
        return (self.pages - 1) * _PAGE + 1

    @property
    def ceiling(self) -> float:
        """The quota's ceiling, records/s (a whole window's weight spent on pages)."""
        return self.quota / self.window / self.weight * _PAGE

    def ideal(self, headroom: float) -> float:
        """Seconds an ideal client spending ``1 - headroom`` of each window needs: one
        burst per window, the last burst's pages (at least one) opening the last window."""
        per_window = math.floor(self.quota * (1 - headroom)) // self.weight
        return (math.ceil(self.pages / per_window) - 1) * self.window


def _quota_bound(mode: Mode, server: FakeServer, pg: _Postgres | str, tmp: Path) -> Report:
    limit = _Quota(mode.pick(60, 240, 600), mode.pick(300, 1_200, 3_000))
    rounds = mode.pick(1, 1, 2)
    records, raw_ideal = limit.records, limit.ideal(0)
    report = Report(
        f"7b. Mirror, quota-bound: first run_once vs the raw stream (one borrow history of "
        f"{records:,} records = {limit.pages} pages of {_PAGE}; the fake's quota "
        f"{limit.quota} weight / {limit.window:g} s, {_LATENCY * 1000:.0f} ms latency; "
        f"{_PREFETCH} pages in flight, {rounds} interleaved round(s), medians)",
        [
            "contender",
            "requests",
            "429s",
            "wall s",
            "ideal s",
            "records/s",
            "client CPU s",
            "records/s vs raw",
            "ceiling vs raw",
        ],
    )
    creds = server.account(borrows=records)
    warm = asyncio.run(_raw(server.url, creds, ("borrow",)))  # renders the fake's pages once
    assert warm.records == records, warm
    made = 0

    def sqlite(headroom: float) -> Callable[[], Coroutine[Any, Any, _Run]]:
        def start() -> Coroutine[Any, Any, _Run]:
            nonlocal made
            made += 1
            db = f"sqlite:///{tmp / f'quota-{made}.db'}"
            return _mirror(server.url, creds, db, ("borrow",), **budget(headroom))

        return start

    async def postgres() -> _Run:
        assert isinstance(pg, _Postgres)
        db = await pg.create_database()
        return await _mirror(server.url, creds, db, ("borrow",), **budget(0))

    def budget(headroom: float) -> dict[str, Any]:
        return {"quota": limit.quota, "window": limit.window, "headroom": headroom}

    raw_label = "raw stream (borrow history)"
    default = f"headroom={DEFAULT_HEADROOM:g} (default)"
    contenders: dict[str, tuple[float, Callable[[], Coroutine[Any, Any, _Run]] | str]] = {
        raw_label: (0, lambda: _raw(server.url, creds, ("borrow",))),
        "Mirror.run_once → SQLite, headroom=0": (0, sqlite(0)),
        f"Mirror.run_once → SQLite, {default}": (DEFAULT_HEADROOM, sqlite(DEFAULT_HEADROOM)),
        "Mirror.run_once → PostgreSQL, headroom=0": (0, pg if isinstance(pg, str) else postgres),
    }
    runs: dict[str, list[_Run]] = {label: [] for label in contenders}
    requests: dict[str, list[int]] = {label: [] for label in contenders}
    rejected: dict[str, int] = dict.fromkeys(contenders, 0)
    server.set_latency(_LATENCY)
    try:
        for _ in range(rounds):
            for label, (_, contender) in contenders.items():
                if isinstance(contender, str):
                    continue
                server.set_rate_limit(limit.quota, limit.window_ms)  # a fresh, full window
                server.reset_stats()
                result = asyncio.run(contender())
                stats = server.stats()
                requests[label].append(sum(stats["requests"].values()))
                rejected[label] += int(stats["rate_limited"])
                if result.records != records:
                    raise RuntimeError(f"{label}: {result.records:,} records of {records:,}")
                runs[label].append(result)
            for leftover in tmp.glob("quota-*.db*"):
                leftover.unlink()
    finally:
        server.set_latency(0)
        server.unlimited()
    raw_rate = records / median([r.wall for r in runs[raw_label]])
    for label, (headroom, contender) in contenders.items():
        expected = raw_ideal / limit.ideal(headroom)
        if isinstance(contender, str):
            report.add(label, "–", "–", "–", "–", "–", "–", contender, f"{expected:.2f}×")
            report.targets.append(
                Target(
                    f"{label}: ≥ {_SPEED_TARGET}× the raw stream",
                    None,
                    contender.removeprefix("skipped: "),
                )
            )
            continue
        wall = median([r.wall for r in runs[label]])
        rate = records / wall
        report.add(
            label,
            "/".join(sorted({f"{n:,}" for n in requests[label]})),
            str(rejected[label]),
            f"{wall:.2f}",
            f"{limit.ideal(headroom):.2f}",
            fmt(rate, 0),
            f"{median([r.cpu for r in runs[label]]):.2f}",
            f"{rate / raw_rate:.2f}×",
            f"{expected:.2f}×",
        )
        if label.startswith("Mirror") and headroom == 0:
            report.targets.append(
                Target(
                    f"{label}: ≥ {_SPEED_TARGET}× the raw stream's records/s",
                    rate / raw_rate >= _SPEED_TARGET,
                    f"{rate / raw_rate:.2f}× ({fmt(rate, 0)} vs {fmt(raw_rate, 0)} records/s)",
                )
            )
    per_window = limit.quota // limit.weight
    allowance = math.floor(limit.quota * (1 - DEFAULT_HEADROOM))
    report.notes += [
        f"The regime users meet: the rate limit binds long before the client's CPU (at "
        f"KuCoin's VIP0 quota, 4000 weight / 30 s, a borrow page of {_PAGE} weighs "
        f"{limit.weight}: at most {4000 / 30 / limit.weight * _PAGE:,.0f} records/s per "
        f"account). Scaled down as in benchmark 4: {limit.quota} weight / "
        f"{limit.window:g} s is {per_window} pages per window, a ceiling of "
        f"{fmt(limit.ceiling, 0)} records/s; the walk needs {_WINDOWS} full windows and "
        f"one page that opens window {_WINDOWS + 1}, so an ideal client takes "
        f"{raw_ideal:g} s ('ideal s'). Each contender starts with a fresh, full window "
        "(the fake's rate limit set again just before it).",
        "Borrow history only: with the three histories at once (15, 15 and 20 weight a "
        "page) how many pages fit a window depends on how the walks share it, and a "
        "window a few weight short of a page would cost a whole window; one history keeps "
        "the ceiling exact.",
        f"The mirror runs with the fake's figures (quota={limit.quota}, "
        f"window={limit.window:g}). headroom=0 lets it spend the whole quota: target "
        f"≥ {_SPEED_TARGET}× the raw stream. The default headroom ({DEFAULT_HEADROOM:g}) "
        f"leaves a quarter of each window to the account's own borrows and repays, by "
        f"design: the mirror spends at most {allowance} weight ({allowance // limit.weight} "
        f"pages) a window, so the walk takes {limit.ideal(DEFAULT_HEADROOM) / limit.window:g} "
        f"windows instead of {_WINDOWS} and its ceiling is "
        f"{raw_ideal / limit.ideal(DEFAULT_HEADROOM):.2f}× the raw stream's ('ceiling vs "
        "raw'): no target, the measurement is shown next to that ceiling.",
        "Requests and 429s: counted by the fake for each run. Client CPU: "
        "time.process_time() of this process (the SQLite store's thread included).",
    ]
    return report


# -- memory -----------------------------------------------------------------------------


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


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("url")
    parser.add_argument("credentials", help="JSON")
    parser.add_argument("db")
    args = parser.parse_args(argv)
    creds = Credentials(**json.loads(args.credentials))
    result = asyncio.run(_mirror(args.url, creds, args.db, ("borrow",)))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "records": result.records,
                "wall": result.wall,
                "peak_kb": peak_kb,
                "hwm_kb": _vm_hwm_kb(),
            }
        )
    )


def _measure(url: str, creds: Credentials, db_url: str) -> dict[str, Any]:
    spec = json.dumps(
        {
            "api_key": creds.api_key,
            "api_secret": creds.api_secret,
            "api_passphrase": creds.api_passphrase,
            "key_version": creds.key_version,
        }
    )
    # Linux keeps ru_maxrss across fork + exec: a bare interpreter starts the child.
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    child = [sys.executable, "-m", "benchmarks.sync", "--child", url, spec, db_url]
    out = subprocess.run(
        [sys.executable, "-S", "-c", launcher, *child],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _memory(mode: Mode, server: FakeServer, pg: _Postgres | str, tmp: Path) -> Report:
    small, large = mode.pick(2_000, 10_000, 100_000), mode.pick(10_000, 100_000, 1_000_000)
    report = Report(
        "7c. Mirror memory (peak RSS of a fresh process mirroring one borrow history, "
        "first run_once)",
        [
            "store",
            "records mirrored",
            "peak RSS MiB (VmHWM)",
            "ru_maxrss MiB",
            "wall s",
            "records/s",
        ],
    )
    accounts = {size: server.account(borrows=size) for size in (small, large)}
    stores: list[tuple[str, Callable[[int], str] | str]] = [
        ("SQLite", lambda size: f"sqlite:///{tmp / f'memory-{size}.db'}"),
        (
            "PostgreSQL",
            pg if isinstance(pg, str) else lambda _: asyncio.run(pg.create_database()),
        ),
    ]
    for store, make_url in stores:
        if isinstance(make_url, str):
            for size in (small, large):
                report.add(store, f"{size:,}", "–", "–", "–", make_url)
            report.targets.append(
                Target(f"{store}: constant memory", None, make_url.removeprefix("skipped: "))
            )
            continue
        peaks: dict[int, float] = {}
        for size in (small, large):
            result = _measure(server.url, accounts[size], make_url(size))
            if result["records"] != size:
                raise RuntimeError(f"memory, {store}: {result['records']:,} records of {size:,}")
            hwm = result["hwm_kb"] if result["hwm_kb"] is not None else result["peak_kb"]
            peaks[size] = hwm / 1024
            report.add(
                store,
                f"{size:,}",
                fmt(peaks[size]),
                fmt(result["peak_kb"] / 1024),
                f"{result['wall']:.2f}",
                fmt(size / result["wall"], 0),
            )
        for leftover in tmp.glob("memory-*.db*"):
            leftover.unlink()
        ratio = peaks[large] / peaks[small]
        report.targets.append(
            Target(
                f"{store}: peak RSS mirroring {large:,} records ≤ {_MEMORY_TARGET}× "
                f"the peak at {small:,}",
                ratio <= _MEMORY_TARGET,
                f"{ratio:.2f}× ({peaks[large] - peaks[small]:+.1f} MiB)",
            )
        )
    report.notes.append(
        "Each process mirrors one account's borrow history into a fresh store and exits; "
        "pages of 500, 8 in flight, batches of 2,000 rows, no server latency. Its wall time "
        "includes the fake rendering these pages for the first time (and the process's "
        "start): not comparable with the table above."
    )
    return report


# -- the report -------------------------------------------------------------------------


@dataclass
class _Sections(Report):
    """The CPU-bound throughput table, then the quota-bound one, then memory."""

    more: list[Report] | None = None

    def render(self) -> str:
        return "\n".join([super().render(), *(r.render() for r in self.more or ())])


def run(mode: Mode) -> Report:
    report = _Sections(
        "7. Mirror",
        [
            "contender",
            "records",
            "requests",
            "wall s",
            "records/s",
            "client CPU s",
            "CPU µs/record",
            "records/s vs raw",
        ],
    )
    with (
        tempfile.TemporaryDirectory(prefix="margin-bench-sync-") as tmp,
        _postgres() as pg,
        FakeServer() as server,
    ):
        _throughput(mode, server, pg, Path(tmp), report)
        report.more = [
            _quota_bound(mode, server, pg, Path(tmp)),
            _memory(mode, server, pg, Path(tmp)),
        ]
    return report


# -- profile ----------------------------------------------------------------------------


def _profile(records: int, top: int, cpu: bool) -> None:
    """Print cProfile's top functions (own time) of a first run_once into SQLite."""
    thread_profiles: list[cProfile.Profile] = []

    def profiler() -> cProfile.Profile:
        # cProfile's default timer (wall time), or the calling thread's CPU time (--cpu).
        return cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()

    def start_in_thread(*_: object) -> None:
        profile = profiler()
        thread_profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    with tempfile.TemporaryDirectory() as tmp, FakeServer() as server:
        creds = server.account(borrows=records)
        asyncio.run(_raw(server.url, creds, ("borrow",)))  # renders the fake's pages once
        url = f"sqlite:///{Path(tmp) / 'unprofiled.db'}"
        plain = asyncio.run(_mirror(server.url, creds, url, ("borrow",)))
        url = f"sqlite:///{Path(tmp) / 'profiled.db'}"
        main = profiler()
        threading.setprofile(start_in_thread)
        main.enable()
        try:
            profiled = asyncio.run(_mirror(server.url, creds, url, ("borrow",)))
        finally:
            main.disable()
            threading.setprofile(None)
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    assert plain.records == profiled.records == records, (plain, profiled)
    print(
        f"run_once of {records:,} borrow records into SQLite: unprofiled {plain.wall:.2f} s wall, "
        f"{plain.cpu:.2f} s CPU ({records / plain.wall:,.0f} records/s); profiled "
        f"{profiled.wall:.2f} s wall. Own {'CPU' if cpu else 'wall'} time per thread "
        f"({len(thread_profiles)} threads besides the event loop's), merged:\n"
    )
    stats = pstats.Stats(main)
    for profile in thread_profiles:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        _child(argv)
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync")
    parser.add_argument("--profile", type=int, nargs="?", const=100_000, metavar="N")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cpu", action="store_true", help="each thread's CPU time, not wall")
    args = parser.parse_args(argv)
    if args.profile is None:
        parser.error("use --profile [N], or python -m benchmarks --only sync")
    _profile(args.profile, args.top, args.cpu)


if __name__ == "__main__":
    with stdlib_json():  # the default path, as the parent measures everything else
        main(sys.argv[1:])
