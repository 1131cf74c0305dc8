"""margin_async.sync in process, on SQLite: workers sharing accounts, failures and
retries, stopping during a commit, clocks, paging checks, headroom, and the command's
signal handling."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from sync_helpers import exchange_history, query, table_history

from margin_async import (
    AccountPool,
    Credentials,
    MarginClient,
    Page,
    ProtocolError,
    ResponseEvent,
    RetryPolicy,
    TransportError,
)
from margin_async.cli import main
from margin_async.sync import AccountSpec, Headroom, Mirror, StreamKey, SyncConfigError, open_store
from margin_async.sync._mirror import _check
from margin_async.sync._rows import Row
from margin_async.sync._sqlite import SQLiteStore
from margin_async.testing import FakeKuCoin

USDT = AccountSpec(currencies=["USDT"])


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'm.db'}"


async def until(condition: object, *, limit: float = 30) -> None:
    """Wait until ``await condition()`` holds (``limit`` guards against hangs only)."""
    async with asyncio.timeout(limit):
        # Polling: the condition is the state of the database.
        while not await condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def test_settings_of_a_mirror(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path))
    assert AccountSpec(currencies="USDT", isolated="BTC-USDT").currencies == ("USDT",)  # type: ignore[arg-type]
    assert AccountSpec(currencies="USDT", isolated="BTC-USDT").isolated == ("BTC-USDT",)  # type: ignore[arg-type]
    for accounts, options, message in [
        ({"": USDT}, {}, "non-empty strings"),
        ({"a": "USDT"}, {}, "must map to an AccountSpec"),
        ({"a": AccountSpec(["USDT"], cross=False)}, {}, "nothing to mirror"),
        ({"a": USDT}, {"lease_ttl": 0}, "lease_ttl"),
        ({"a": USDT}, {"batch_size": 0}, "batch_size"),
        ({"a": USDT}, {"overlap_ms": -1}, "overlap_ms"),
        ({"a": USDT}, {"headroom": 1.0}, "fraction"),
        ({"a": USDT}, {"quota": 0}, "quota"),
        ({"a": USDT}, {"window": 0}, "window"),
    ]:
        with pytest.raises(SyncConfigError, match=message):
            Mirror(store, accounts, **options)  # type: ignore[arg-type]
    mirror = Mirror(store, {"a": USDT}, worker="w1")
    assert repr(mirror) == f"Mirror(SQLiteStore({sqlite_url(tmp_path)!r}), 1 accounts, worker='w1')"
    assert mirror.status().lag_ms is None and mirror.status().held == ()
    assert (
        str(StreamKey("a", "interest", "BTC-USDT", ""))
        == "a/interest/isolated BTC-USDT/all currencies"
    )
    assert str(StreamKey("a", "borrow", "", "USDT")) == "a/borrow/cross/USDT"


async def test_follow_interval_is_checked(tmp_path: Path) -> None:
    mirror = Mirror(open_store(sqlite_url(tmp_path)), {"a": USDT})
    with pytest.raises(SyncConfigError, match="interval"):
        await mirror.follow({"a": object()}, interval=0)  # type: ignore[dict-item]


async def test_two_workers_split_the_accounts_and_one_takes_over_on_stop(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = {f"acct{n}": fake.add_account() for n in range(4)}
        for c in creds.values():
            fake.seed_history(c.api_key, "USDT", borrows=120, repays=60, interest=150)
        specs = dict.fromkeys(creds, USDT)
        a = Mirror(open_store(url), specs, worker="A", lease_ttl=0.6, quota=10**7)
        b = Mirror(open_store(url), specs, worker="B", lease_ttl=0.6, quota=10**7)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        async with (
            a.store,
            b.store,
            AccountPool(creds, base_url=fake.url, on_response=a.observe) as pool_a,
            AccountPool(creds, base_url=fake.url, on_response=b.observe) as pool_b,
        ):
            run_a = asyncio.ensure_future(a.follow(pool_a, interval=0.05, stop=stop_a))
            await until(lambda: _owners(url, {"A"}))  # alone, it takes all four
            run_b = asyncio.ensure_future(b.follow(pool_b, interval=0.05, stop=stop_b))
            await until(lambda: _split(url))  # A gives two back, B takes them
            status = a.status()
            assert len(status.held) == 2 and status.lag_ms is not None
            stop_a.set()
            await run_a
            await until(lambda: _owners(url, {"B"}))  # A's go to B
            # Records that arrive now reach the tables through B.
            for c in creds.values():
                fake.append_interest(c.api_key, "USDT", "1.5", "0.001")
            expected = {}
            for label, c in creds.items():
                async with MarginClient(c, base_url=fake.url) as client:
                    expected[label] = await exchange_history(client, ["USDT"])

            async def complete() -> bool:
                return all([await table_history(url, k) == v for k, v in expected.items()])

            await until(complete)
            stop_b.set()
            await run_b
    takeovers = await query(url, "SELECT sum(takeovers) FROM sync_leases")
    assert takeovers == [(0,)]  # given back, never taken from a live worker


async def _owners(url: str, owners: set[str]) -> bool:
    rows = await query(url, "SELECT owner FROM sync_leases")
    return len(rows) == 4 and {owner for (owner,) in rows} == owners


async def _split(url: str) -> bool:
    rows = await query(url, "SELECT owner, count(*) FROM sync_leases GROUP BY owner")
    return sorted(rows, key=str) == [("A", 2), ("B", 2)]


async def test_follow_retries_failing_polls_and_once_reports_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=700, repays=10, interest=10)
        # Every attempt of the next interest reads fails (a gateway error page).
        fake.inject("5xx", route="GET /api/v3/margin/interest", times=3)
        retry = RetryPolicy(attempts=1)
        mirror = Mirror(open_store(url), {"a": USDT}, quota=10**7)
        async with mirror.store, AccountPool({"a": creds}, base_url=fake.url, retry=retry) as pool:
            with pytest.raises(TransportError):
                await mirror.run_once(pool)  # --once: reported
            assert await query(url, "SELECT owner FROM sync_leases") == [(None,)]
            stop = asyncio.Event()
            caplog.set_level(logging.WARNING, "margin_async.sync")
            run = asyncio.ensure_future(mirror.follow(pool, interval=0.02, stop=stop))
            async with MarginClient(creds, base_url=fake.url) as client:

                async def served() -> bool:
                    return fake.pending_faults == 0

                await until(served)
                expected = await exchange_history(client, ["USDT"])
            await until(lambda: _equal(url, "a", expected))
            stop.set()
            await run
    assert "a/interest/cross/USDT: " in caplog.text and "trying again in" in caplog.text


async def _equal(url: str, account: str, expected: object) -> bool:
    return await table_history(url, account) == expected


async def test_once_failures_are_raised_after_the_other_accounts(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        good = fake.add_account()
        fake.seed_history(good.api_key, "USDT", borrows=30)
        dead = "http://127.0.0.1:9"  # nothing listens there
        retry = RetryPolicy(attempts=1)
        mirror = Mirror(open_store(url), {"good": USDT, "x": USDT, "y": USDT}, quota=10**7)
        async with (
            mirror.store,
            MarginClient(good, base_url=fake.url) as client,
            MarginClient(Credentials("k", "s", "p"), base_url=dead, retry=retry) as x,
            MarginClient(Credentials("k", "s", "p"), base_url=dead, retry=retry) as y,
        ):
            with pytest.raises(Exception) as caught:
                await mirror.run_once({"good": client, "x": x, "y": y})
    assert type(caught.value).__name__ == "PoolError"
    assert set(caught.value.errors) == {"x", "y"}  # type: ignore[attr-defined]
    assert mirror.status().done == ("good",)
    assert await query(url, "SELECT count(*) FROM borrow_orders") == [(30,)]


class _GatedStore(SQLiteStore):
    """A SQLite store whose commits wait at a gate (to stop a mirror mid-commit)."""

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url, path)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def commit(
        self, worker: str, key: StreamKey, rows: Sequence[Row], cursor: str, since: int, ttl_ms: int
    ) -> int:
        self.entered.set()
        await self.gate.wait()
        return await super().commit(worker, key, rows, cursor, since, ttl_ms)


async def test_stopping_finishes_the_commit_under_way(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = _GatedStore(f"sqlite:///{path}", str(path))
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", interest=40)
        mirror = Mirror(store, {"a": AccountSpec(kinds=["interest"])}, quota=10**7)
        stop = asyncio.Event()
        async with store, AccountPool({"a": creds}, base_url=fake.url) as pool:
            run = asyncio.ensure_future(mirror.follow(pool, interval=0.05, stop=stop))
            await store.entered.wait()
            stop.set()  # SIGTERM: the mirror stops ...
            for _ in range(20):
                await asyncio.sleep(0)
            assert not run.done()  # ... but not before the transaction under way ends
            store.gate.set()
            status = await run
    assert status.records == 40
    assert await query(f"sqlite:///{path}", "SELECT count(*) FROM interest_records") == [(40,)]


async def test_a_lease_taken_away_stops_the_account_until_it_is_free(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", interest=20)
        mirror = Mirror(
            open_store(url), {"a": AccountSpec(kinds=["interest"])}, lease_ttl=0.3, quota=10**7
        )
        stop = asyncio.Event()
        async with mirror.store, AccountPool({"a": creds}, base_url=fake.url) as pool:
            run = asyncio.ensure_future(mirror.follow(pool, interval=0.02, stop=stop))
            await until(lambda: _count(url, 20))
            # Another worker has it now (as after a pause longer than the lease).
            far = int(time.time() * 1000) + 3_600_000
            await query(url, "UPDATE sync_leases SET owner = 'other', expires_at = ?", far)
            await until(lambda: _held(mirror, ()))
            fake.append_interest(creds.api_key, "USDT", "2", "0.001")
            await asyncio.sleep(0.2)
            assert await _count(url, 20)  # not written by a worker without the lease
            await query(url, "UPDATE sync_leases SET owner = NULL, expires_at = 0")
            await until(lambda: _count(url, 21))  # free again: taken back, caught up
            stop.set()
            await run


async def _count(url: str, n: int) -> bool:
    return await query(url, "SELECT count(*) FROM interest_records") == [(n,)]


async def _held(mirror: Mirror, held: tuple[str, ...]) -> bool:
    return mirror.status().held == held


async def test_an_exchange_clock_behind_ours(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        fake.set_clock_skew(-2_000)  # the window end is pinned to the exchange's time
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=600, repays=30, interest=900)
        fake.append_interest(creds.api_key, "USDT", "0.5", "0.001")  # stamped at its "now"
        mirror = Mirror(open_store(url), {"a": USDT}, quota=10**7)
        async with mirror.store, AccountPool({"a": creds}, base_url=fake.url) as pool:
            await mirror.run_once(pool)
            expected = await exchange_history(pool["a"], ["USDT"])
    assert await table_history(url, "a") == expected


def test_paging_fields_that_would_misplace_records_are_refused() -> None:
    def page(number: int, items: int, total: int, size: int = 10) -> Page[int]:
        return Page(tuple(range(items)), number, size, total, -(-total // size), None)

    first = page(1, 10, 25)
    _check(first, 1, first)
    _check(page(3, 5, 25), 3, first)
    for bad, message in [
        (page(2, 10, 25), "got currentPage=2"),
        (page(3, 5, 25, size=20), "pageSize=20"),
        (Page(tuple(range(11)), 3, 10, 25, 3, None), "more than its pageSize"),
        (page(3, 0, 25), "is empty but totalNum=25"),
    ]:
        with pytest.raises(ProtocolError, match=message):
            _check(bad, 3, first)


async def test_headroom_waits_while_others_spend_the_reserve() -> None:
    budget = Headroom(quota=400, headroom=0.5, window=0.2)
    assert (budget.allowance, budget.reserve) == (200, 200)
    budget.observe(210)  # others left 210: one request of 20 would dip into the reserve
    entered = asyncio.Event()

    async def request() -> None:
        async with budget.use(20):
            entered.set()

    task = asyncio.ensure_future(request())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not entered.is_set()  # waiting for a fresh figure
    await task  # the recheck lets it go (the figure is stale by then)
    # Its own allowance: ten requests of 20 fill it; the eleventh waits for a reply.
    uses = [budget.use(20) for _ in range(11)]
    for use in uses[:10]:
        await use.__aenter__()
    eleventh = asyncio.ensure_future(uses[10].__aenter__())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not eleventh.done()
    for use in uses[:10]:
        await use.__aexit__(None, None, None)
    await eleventh  # a window after the replies
    await uses[10].__aexit__(None, None, None)


async def test_headroom_waits_for_the_announced_reset_not_a_tenth_of_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The exchange said how long its window has left: the mirror waits that long, where
    # it used to wait a tenth of the window (3 s at 30 s) each time a window ran dry.
    import margin_async.sync._budget as budget_module

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(budget_module.asyncio, "sleep", sleep)
    budget = Headroom(quota=4000, headroom=0.25, window=30.0)
    budget.observe(500, reset_ms=200)  # below the reserve of 1000, resets in 0.2 s
    async with budget.use(15):
        pass
    assert len(waits) == 1 and 0.15 < waits[0] <= 0.25 + 0.05
    budget.observe(0, reset_ms=0)  # that window has already reset: no wait at all
    async with budget.use(15):
        pass
    assert len(waits) == 1


# -- the command in process: signals ----------------------------------------------------------


def _signal_when_leased(path: Path, sig: signal.Signals, rows: int = 0) -> threading.Thread:
    """Send ``sig`` to this process once the database at ``path`` shows a held lease
    (the command's handlers are installed by then) and at least ``rows`` interest rows."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                db = sqlite3.connect(path)
                try:
                    owners = db.execute("SELECT owner FROM sync_leases").fetchall()
                    count = db.execute("SELECT count(*) FROM interest_records").fetchone()[0]
                finally:
                    db.close()
                if owners and owners[0][0] is not None and count >= rows:
                    os.kill(os.getpid(), sig)
                    return
            except sqlite3.Error:
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sandbox_follow_stops_on_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.db"
    watcher = _signal_when_leased(path, signal.SIGTERM, rows=2000)
    argv = ["sync", "--sandbox", "--db", f"sqlite:///{path}", "--follow", "--interval", "0.05"]
    assert main([*argv, "--progress", "--sandbox-records", "1000", "--currency", "USDT"]) == 0
    watcher.join()
    assert "sync: stopped, " in capsys.readouterr().err
    db = sqlite3.connect(path)
    assert db.execute("SELECT owner FROM sync_leases").fetchall() == [(None,)]
    assert db.execute("SELECT count(*) FROM borrow_orders").fetchone()[0] == 1000


def test_once_interrupted_exits_130_and_leaves_the_database_consistent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.db"
    watcher = _signal_when_leased(path, signal.SIGINT)
    argv = ["sync", "--sandbox", "--db", f"sqlite:///{path}", "--once", "--batch-size", "100"]
    assert main([*argv, "--sandbox-records", "20000", "--no-progress"]) == 130
    watcher.join()
    assert "interrupted; the database is consistent" in capsys.readouterr().err
    db = sqlite3.connect(path)
    assert db.execute("SELECT owner FROM sync_leases").fetchall() == [(None,)]
    # Every stream's cursor matches its rows: the cursor counts what was committed.
    for kind, table in [("borrow", "borrow_orders"), ("interest", "interest_records")]:
        cursor = db.execute(
            "SELECT coalesce(sum(records), 0) FROM sync_cursors WHERE kind = ?", (kind,)
        ).fetchone()[0]
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == cursor


@pytest.mark.parametrize(
    "flags", [["--interval", "0"], ["--headroom", "1.5"], ["--quota", "x"], ["--lease-ttl", "y"]]
)
def test_bad_flag_values(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sync", "--db", "sqlite:///m.db", "--once", *flags])
    assert caught.value.code == 2
    assert "argument" in capsys.readouterr().err


def test_decimal_text_is_exact(tmp_path: Path) -> None:
    from margin_async.sync._rows import plain

    assert [plain(Decimal(v)) for v in ("1E-8", "0.50", "1E+3", "123.456")] == [
        "0.00000001",
        "0.50",
        "1000",
        "123.456",
    ]


async def test_a_record_posted_during_a_poll_makes_it_read_again(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", interest=2600)  # 6 pages
        route = "GET /api/v3/margin/interest"
        posted: list[int] = []

        def post_late(event: ResponseEvent) -> None:
            # Right after page 1 pinned the window: a charge stamped inside it (10 s
            # ago), so the pages read next count one record more.
            if event.path == "/api/v3/margin/interest" and not posted:
                posted.append(fake.now_ms() - 10_000)
                fake.append_interest(creds.api_key, "USDT", "0.7", "0.001", posted[0])

        mirror = Mirror(open_store(url), {"a": AccountSpec(kinds=["interest"])}, quota=10**7)
        async with (
            mirror.store,
            AccountPool({"a": creds}, base_url=fake.url, on_response=post_late) as pool,
        ):
            status = await mirror.run_once(pool)
            expected = await exchange_history(pool["a"], ["USDT"])
        reads = fake.stats.requests[route]
    assert posted and status.records == 2601
    assert await table_history(url, "a") == expected
    # Page 1, the last pages until the shift showed, then the poll read again.
    assert reads > 6 + 1


class _ExpiringStore(SQLiteStore):
    """A SQLite store whose lease expires once, just before the second commit (as if
    the worker had stalled longer than the lease)."""

    commits = 0

    async def commit(
        self, worker: str, key: StreamKey, rows: Sequence[Row], cursor: str, since: int, ttl_ms: int
    ) -> int:
        self.commits += 1
        if self.commits == 2:
            await self.release(worker, [key.account])
        return await super().commit(worker, key, rows, cursor, since, ttl_ms)


async def test_once_leases_again_after_its_lease_expired(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = _ExpiringStore(f"sqlite:///{path}", str(path))
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=900, repays=700, interest=1100)
        mirror = Mirror(store, {"a": USDT}, quota=10**7, batch_size=100)
        async with store, AccountPool({"a": creds}, base_url=fake.url) as pool:
            status = await mirror.run_once(pool)
            expected = await exchange_history(pool["a"], ["USDT"])
    assert status.done == ("a",) and status.skipped == {}
    assert await table_history(f"sqlite:///{path}", "a") == expected
