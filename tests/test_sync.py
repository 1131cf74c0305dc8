"""margin_async.sync against FakeKuCoin over loopback, into SQLite and a real PostgreSQL.

The oracle is the exchange's history read with the SDK's own walks; the tables are read
back with sqlite3 / asyncpg directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from pg_cluster import PgCluster, shared_cluster
from sync_helpers import History, exchange_history, query, table_history

from margin_async import AccountPool, Credentials, MarginClient, ResponseEvent
from margin_async.sync import (
    AccountSpec,
    Holder,
    LeaseLostError,
    Mirror,
    StoreError,
    StreamKey,
    SyncConfigError,
    open_store,
)
from margin_async.sync._sqlite import SQLiteStore
from margin_async.testing import FakeKuCoin

RECORDS = 50_000


@pytest.fixture(scope="module")
def pg() -> PgCluster:
    return shared_cluster()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mirror.db'}"
    cluster: PgCluster = request.getfixturevalue("pg")
    return await cluster.create_database()


@contextlib.asynccontextmanager
async def fake_exchange(**options: int) -> AsyncIterator[FakeKuCoin]:
    # A quota no sync in these tests reaches (the headroom test sets its own).
    async with FakeKuCoin(rate_limit_quota=options.pop("quota", 10**7), **options) as fake:
        yield fake


def mirror_of(url: str, accounts: dict[str, AccountSpec], **options: object) -> Mirror:
    options.setdefault("quota", 10**7)
    return Mirror(open_store(url), accounts, **options)  # type: ignore[arg-type]


async def _stores(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """SQLite, and PostgreSQL unless this machine cannot run it (whose tests say why)."""
    urls = [f"sqlite:///{tmp_path / 'mirror.db'}"]
    try:
        cluster: PgCluster = request.getfixturevalue("pg")
    except pytest.skip.Exception:
        return urls
    return [*urls, await cluster.create_database()]


async def test_first_sync_equals_the_exchange_history(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # One exchange mirrored into both stores at once: seeded, served and read once.
    urls = await _stores(request, tmp_path)
    async with fake_exchange() as fake:
        creds = fake.add_account()
        fake.seed_history(
            creds.api_key, "USDT", borrows=RECORDS, repays=RECORDS, interest=RECORDS - 4
        )
        # Two pairs of identical charges: four rows, not two.
        at = fake.now_ms() - 5_000
        for _ in range(2):
            fake.append_interest(creds.api_key, "USDT", "0.25", "0.0001", at)
            fake.append_interest(creds.api_key, "USDT", "0.00000001", "0.0001", at + 1)
        mirrors = [
            mirror_of(url, {"alice": AccountSpec(currencies=["USDT"])}, batch_size=5000)
            for url in urls
        ]
        async with contextlib.AsyncExitStack() as stack:
            for mirror in mirrors:
                await stack.enter_async_context(mirror.store)
            pool = await stack.enter_async_context(AccountPool({"alice": creds}, base_url=fake.url))
            statuses = await asyncio.gather(*(mirror.run_once(pool) for mirror in mirrors))
            expected = await exchange_history(pool["alice"], ["USDT"])
            # A second run finds nothing new: one idle poll per history.
            again = await mirrors[0].run_once(pool)
    assert expected.counts == (RECORDS, RECORDS, RECORDS)
    for url, status in zip(urls, statuses, strict=True):
        stored = await table_history(url, "alice")
        assert stored.counts == expected.counts, url
        assert stored.borrows == expected.borrows, url
        assert stored.repays == expected.repays, url
        assert stored.interest == expected.interest, url
        assert stored.sums() == expected.sums(), url
        assert all(isinstance(total, Decimal) for total in stored.sums())
        assert status.records == 3 * RECORDS and status.replayed == 0
        assert status.done == ("alice",) and status.held == ()
        cursors = await query(url, "SELECT kind, records FROM sync_cursors ORDER BY kind")
        assert cursors == [("borrow", RECORDS), ("interest", RECORDS), ("repay", RECORDS)]
        leases = await query(url, "SELECT account, owner FROM sync_leases")
        assert leases == [("alice", None)]  # given back
    assert again.records == 3 * RECORDS  # counted per mirror: nothing added the second time
    print(f"first sync of {3 * RECORDS:,} records into {len(urls)} stores")


async def test_records_added_while_following_arrive_once(db_url: str) -> None:
    async with fake_exchange() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=1200, repays=800, interest=1500)
        fake.seed_history(
            creds.api_key, "BTC", borrows=50, repays=50, interest=50, symbol="BTC-USDT"
        )
        spec = AccountSpec(currencies=["USDT", "BTC"], isolated=["BTC-USDT"])
        mirror = mirror_of(db_url, {"bob": spec}, batch_size=300, lease_ttl=2.0)
        stop = asyncio.Event()
        async with (
            mirror.store,
            AccountPool({"bob": creds}, base_url=fake.url, on_response=mirror.observe) as pool,
        ):
            follow = asyncio.ensure_future(mirror.follow(pool, interval=0.05, stop=stop))
            try:
                expected = await _activity(fake, creds, pool["bob"])
                await _until(lambda: _caught_up(db_url, "bob", expected), follow)
            finally:
                stop.set()
                status = await follow
        stored = await table_history(db_url, "bob")
    assert stored == expected
    assert stored.sums() == expected.sums()
    assert status.replayed == 0
    assert status.records == sum(expected.counts)
    # Stopping gave the lease back and left the worker table.
    assert await query(db_url, "SELECT owner FROM sync_leases") == [(None,)]
    assert await query(db_url, "SELECT worker FROM sync_workers") == []


async def _activity(fake: FakeKuCoin, creds: Credentials, client: MarginClient) -> History:
    """Borrows, repays and interest charges while the mirror follows; the history after."""
    for round_ in range(20):
        # Real borrows and repays through the API, cross and isolated ...
        await client.borrow("USDT", Decimal("10.5"))
        await client.repay("USDT", Decimal("3.25"))
        if round_ % 5 == 0:
            await client.borrow("BTC", Decimal("0.01"), symbol="BTC-USDT", is_isolated=True)
        # ... interest charges, some identical, some posted a little late ...
        now = fake.now_ms()
        fake.append_interest(creds.api_key, "USDT", "0.001", "0.0002", now - 2_000)
        fake.append_interest(creds.api_key, "USDT", "0.001", "0.0002", now - 2_000)
        fake.accrue_interest(creds.api_key, hours=1)
        await asyncio.sleep(0.02)
    return await exchange_history(client, ["USDT", "BTC"], ["", "BTC-USDT"])


async def _caught_up(url: str, account: str, expected: object) -> bool:
    return await table_history(url, account) == expected


async def _until(condition: object, *watched: asyncio.Future[object]) -> None:
    """Wait until ``condition()`` holds (a deadline only against hanging forever)."""
    async with asyncio.timeout(30):
        while not await condition():  # type: ignore[operator]
            for future in watched:
                if future.done():
                    future.result()  # raise what stopped it
                    raise AssertionError("the mirror stopped early")
            await asyncio.sleep(0.05)


async def test_a_lost_lease_fences_the_old_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    key = StreamKey("carol", "borrow", "", "USDT")
    async with open_store(url) as store:
        await store.ensure_accounts(["carol"])
        assert await store.acquire("A", ["carol"], 1, 60_000) == ["carol"]
        assert await store.acquire("B", ["carol"], 1, 60_000) == []  # held
        row = ("carol", "o1", "", "USDT", "1", "1", "SUCCESS", 10**12)
        assert await store.commit("A", key, [row], '{"since":1,"seen":[]}', 1, 60_000) == 1
        # A replay of the same row is a no-op.
        assert await store.commit("A", key, [row], '{"since":1,"seen":[]}', 1, 60_000) == 0
        # A stalls past its lease; B takes the account over.
        await query(url, "UPDATE sync_leases SET expires_at = 0")
        assert await store.acquire("B", ["carol"], 1, 60_000) == ["carol"]
        other = (*row[:1], "o2", *row[2:])
        with pytest.raises(LeaseLostError, match="carol"):
            await store.commit("A", key, [other], '{"since":2,"seen":[]}', 2, 60_000)
        assert await store.renew("A", ["carol"], 60_000) == []
        assert await store.renew("B", ["carol"], 60_000) == ["carol"]
    # Nothing of A's second batch was written, cursor included.
    assert await query(url, "SELECT order_no FROM borrow_orders") == [("o1",)]
    assert await query(url, "SELECT since FROM sync_cursors") == [(1,)]
    assert await query(url, "SELECT owner, takeovers FROM sync_leases") == [("B", 1)]


async def test_headroom_leaves_the_reserve_of_every_window(tmp_path: Path) -> None:
    # A 200-weight quota per 0.5 s window; half of it is left to others.
    async with fake_exchange(quota=200, rate_limit_window_ms=500) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", interest=8_000)  # 16 pages of weight 20
        remaining: list[int] = []
        mirror = Mirror(
            open_store(f"sqlite:///{tmp_path / 'm.db'}"),
            {"dave": AccountSpec(currencies=["USDT"], kinds=["interest"])},
            quota=200,
            headroom=0.5,
            window=0.5,
        )

        def observe(event: ResponseEvent) -> None:
            if event.ratelimit_remaining is not None:
                remaining.append(event.ratelimit_remaining)
            mirror.observe(event)

        async with (
            mirror.store,
            AccountPool({"dave": creds}, base_url=fake.url, on_response=observe) as pool,
        ):
            status = await mirror.run_once(pool)
        assert fake.stats.rate_limited == 0
    assert status.records == 8_000
    assert len(remaining) >= 16  # one reply per page
    assert min(remaining) >= 100  # the reserve was never touched


async def test_identical_interest_charges_survive_a_restart(db_url: str) -> None:
    async with fake_exchange() as fake:
        creds = fake.add_account()
        at = fake.now_ms() - 10_000
        spec = {"erin": AccountSpec(kinds=["interest"])}  # every currency
        for step in range(3):
            # One more identical charge each time (posted late, inside the overlap).
            fake.append_interest(creds.api_key, "ETH", "0.5", "0.001", at)
            fake.append_interest(creds.api_key, "USDT", "1", "0.001", at + step)
            mirror = mirror_of(db_url, spec)
            async with (
                mirror.store,
                AccountPool({"erin": creds}, base_url=fake.url) as pool,
            ):
                status = await mirror.run_once(pool)
            assert status.records == 2 and status.replayed == 0
    rows = await query(
        db_url,
        "SELECT currency, occurrence FROM interest_records ORDER BY currency, occurrence",
    )
    assert rows == [("ETH", 0), ("ETH", 1), ("ETH", 2), ("USDT", 0), ("USDT", 0), ("USDT", 0)]


class _LateLanding(SQLiteStore):
    """After the first look at the leases, the dead worker's last transactions land (a
    lease renewal and a heartbeat it sent just before it died)."""

    landed = False

    async def holders(self, accounts: Sequence[str]) -> dict[str, Holder]:
        seen = await super().holders(accounts)
        if not self.landed:
            self.landed = True
            await self.renew("dead", ["a"], 600)
            await self.heartbeat("dead", 600)
        return seen


async def test_once_waits_for_a_dead_workers_lease_and_skips_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    async with fake_exchange() as fake:
        a, b = fake.add_account(), fake.add_account()
        for creds in (a, b):
            fake.seed_history(creds.api_key, "USDT", borrows=30)
        async with open_store(url) as store:
            await store.ensure_accounts(["a", "b"])
            # "dead" took a's lease and died; "live" holds b and keeps working.
            await store.heartbeat("dead", 600)
            assert await store.acquire("dead", ["a"], 1, 600) == ["a"]
            assert await store.acquire("live", ["b"], 1, 600) == ["b"]

            async def live() -> None:
                while True:
                    await store.heartbeat("live", 600)
                    await store.renew("live", ["b"], 600)
                    await asyncio.sleep(0.05)

            worker = asyncio.ensure_future(live())
            try:
                spec = AccountSpec(currencies=["USDT"], kinds=["borrow"])
                mirror = Mirror(_LateLanding(url, str(path)), {"a": spec, "b": spec}, lease_ttl=0.6)
                async with mirror.store, AccountPool({"a": a, "b": b}, base_url=fake.url) as pool:
                    status = await mirror.run_once(pool)
            finally:
                worker.cancel()
    # The dead worker's late renewal did not pass it for alive: its lease was waited out.
    assert status.done == ("a",)
    assert status.skipped == {"b": "live"}
    assert await query(url, "SELECT count(*) FROM borrow_orders") == [(30,)]
    assert await query(url, "SELECT owner, takeovers FROM sync_leases ORDER BY account") == [
        (None, 1),
        ("live", 0),
    ]


async def test_settings_are_checked_before_anything_runs(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(SyncConfigError, match="need currencies"):
        Mirror(store, {"x": AccountSpec()})
    with pytest.raises(SyncConfigError, match="headroom"):
        Mirror(store, {"x": AccountSpec(["USDT"])}, quota=20, headroom=0.5)
    with pytest.raises(SyncConfigError, match="kinds"):
        Mirror(store, {"x": AccountSpec(["USDT"])}, kinds=["lending"])  # type: ignore[list-item]
    with pytest.raises(SyncConfigError, match="no account"):
        Mirror(store, {})
    mirror = Mirror(store, {"x": AccountSpec(["USDT"])})
    with pytest.raises(SyncConfigError, match="no client for account"):
        await mirror.run_once({})
    for url, message in [
        ("mysql://u@h/db", "unsupported database URL"),
        ("sqlite://relative.db", "sqlite:///PATH"),
        ("", "a database URL is needed"),
    ]:
        with pytest.raises(SyncConfigError, match=message):
            open_store(url)
    with pytest.raises(SyncConfigError) as caught:
        open_store("mysql://user:hunter2@host/db")
    assert "hunter2" not in str(caught.value) and "user:***@host" in str(caught.value)
    with pytest.raises(StoreError, match="no such directory"):
        async with open_store(f"sqlite:///{tmp_path / 'missing' / 'm.db'}"):
            pass


async def test_a_newer_schema_is_refused(db_url: str) -> None:
    async with open_store(db_url):
        pass
    await query(db_url, "UPDATE sync_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer margin-async"):
        async with open_store(db_url):
            pass


async def test_postgres_connection_errors_hide_the_password(pg: PgCluster) -> None:
    url = pg.url("no_such_db").replace("mirror@", "mirror:s3cret-pw@")
    with pytest.raises(StoreError) as caught:
        async with open_store(url):
            pass
    assert "s3cret-pw" not in str(caught.value)
    assert "mirror:***@" in str(caught.value)


def test_follow_pages_are_read_through_the_public_client_only() -> None:
    # The mirror builds on MarginClient's public page calls: check they exist as used.
    for name in ("get_borrow_history", "get_repay_history", "get_interest_history"):
        assert callable(getattr(MarginClient, name))
    assert Credentials  # imported for the type of the fixtures above


_AWKWARD_ROWS = [
    # account, order_no, symbol, currency, size, actual_size, status, created_time
    ("carol", "o'1\"\\", "", "USDT", "0.00000001", "0", "SUCCESS", 10**12),
    ("carol", "o2 ünï 🚀", "BTC-USDT", None, "123456789012345678901234567890.123456789", "1",
     None, None),
    ("carol", "o3", "", "USDT", "1E+2", "-0.5", "SOMETHING_NEW", 999_999_999_999_999_999),
]  # fmt: skip


async def test_sqlite_stores_rows_exactly_as_given(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    key = StreamKey("carol", "borrow", "", "USDT")
    async with open_store(url) as store:
        await store.ensure_accounts(["carol"])
        await store.acquire("A", ["carol"], 1, 60_000)
        cursor = '{"since":1,"seen":[]}'
        assert await store.commit("A", key, _AWKWARD_ROWS, cursor, 1, 60_000) == 3
        assert await store.commit("A", key, _AWKWARD_ROWS[:1], cursor, 1, 60_000) == 0
    stored = await query(url, "SELECT * FROM borrow_orders ORDER BY order_no")
    assert stored == sorted(_AWKWARD_ROWS, key=lambda row: row[1])
    types = await query(url, "SELECT typeof(size), typeof(created_time) FROM borrow_orders")
    assert set(types) <= {("text", "integer"), ("text", "null")}
