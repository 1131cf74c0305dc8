"""The SQLite store: stdlib :mod:`sqlite3` on one worker thread, WAL mode.

One connection, used only by its own thread, so the event loop never waits on the disk;
calls are queued to that thread in order. Write transactions are ``BEGIN IMMEDIATE``, so
that several processes on one machine (each a worker) take turns instead of failing.
Amounts are stored as ``TEXT`` holding the exact decimal string (``0.00000001``, never
``1E-8``); times as ``INTEGER`` epoch ms. Lease times are this machine's clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from margin_async.sync._errors import LeaseLostError, StoreError
from margin_async.sync._rows import TABLES, Row, StreamKey, Table
from margin_async.sync._store import SCHEMA_VERSION, Holder, Store

__all__ = ["SQLiteStore"]

R = TypeVar("R")

_TYPES = {"text": "TEXT", "decimal": "TEXT", "ms": "INTEGER", "int": "INTEGER"}
# How long a write waits for another process's transaction before failing, ms.
_BUSY_MS = 60_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _table_sql(table: Table) -> list[str]:
    columns = ", ".join(
        f"{name} {_TYPES[kind]}{'' if nullable else ' NOT NULL'}"
        for name, kind, nullable in table.columns
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
        f"PRIMARY KEY ({', '.join(table.key)})) WITHOUT ROWID",
        f"CREATE INDEX IF NOT EXISTS {table.name}_time ON {table.name} (account, created_time)",
    ]


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    *(sql for table in TABLES.values() for sql in _table_sql(table)),
    "CREATE TABLE IF NOT EXISTS sync_cursors (account TEXT NOT NULL, kind TEXT NOT NULL, "
    "symbol TEXT NOT NULL, currencies TEXT NOT NULL, cursor TEXT NOT NULL, "
    "since INTEGER NOT NULL, records INTEGER NOT NULL DEFAULT 0, "
    "updated_at INTEGER NOT NULL, PRIMARY KEY (account, kind, symbol, currencies))",
    "CREATE TABLE IF NOT EXISTS sync_leases (account TEXT PRIMARY KEY, owner TEXT, "
    "expires_at INTEGER NOT NULL DEFAULT 0, acquired_at INTEGER, "
    "takeovers INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sync_workers (worker TEXT PRIMARY KEY, "
    "expires_at INTEGER NOT NULL, started_at INTEGER NOT NULL, "
    "beats INTEGER NOT NULL DEFAULT 1)",
]


class SQLiteStore(Store):
    """A SQLite file (see the module docstring). Use :func:`open_store`."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._inserts = {
            kind: f"INSERT INTO {table.name} ({', '.join(table.names)}) "
            f"VALUES ({', '.join('?' * len(table.names))}) ON CONFLICT DO NOTHING"
            for kind, table in TABLES.items()
        }

    # -- the thread ---------------------------------------------------------------------

    async def _run(self, call: Callable[..., R], *args: Any) -> R:
        if self._executor is None:
            raise StoreError(f"the store {self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite ({self._path}): {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _write(self, body: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``body`` in a write transaction (``BEGIN IMMEDIATE``), on the thread."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = body(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="margin-sync-sqlite")
        try:
            await self._run(self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        parent = Path(self._path).parent
        if not parent.is_dir():
            raise sqlite3.OperationalError(f"no such directory: {parent}")
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT).
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._conn = db
        db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        # WAL + NORMAL: a commit survives the process being killed; a power loss may undo
        # the last commits, rows and cursor together, which a later run reads again.
        db.execute("PRAGMA synchronous = NORMAL")

        def schema(db: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM sync_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO sync_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"the tables were written by a newer margin-async (schema {row[0]}, this "
                    f"one knows {SCHEMA_VERSION}); upgrade margin-async"
                )

        self._write(schema)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        try:
            await asyncio.get_running_loop().run_in_executor(executor, shut)
        finally:
            executor.shutdown(wait=False)

    # -- streams ------------------------------------------------------------------------

    async def load_cursor(self, key: StreamKey) -> str | None:
        def load() -> str | None:
            row = self._db.execute(
                "SELECT cursor FROM sync_cursors WHERE account = ? AND kind = ? AND symbol = ? "
                "AND currencies = ?",
                (key.account, key.kind, key.symbol, key.currencies),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(load)

    async def commit(
        self, worker: str, key: StreamKey, rows: Sequence[Row], cursor: str, since: int, ttl_ms: int
    ) -> int:
        insert = self._inserts[key.kind]

        def body(db: sqlite3.Connection) -> int:
            now = _now_ms()
            held = db.execute(
                "UPDATE sync_leases SET expires_at = max(expires_at, ?) "
                "WHERE account = ? AND owner = ? AND expires_at > ?",
                (now + ttl_ms, key.account, worker, now),
            ).rowcount
            if held != 1:
                raise LeaseLostError(key.account)
            before = db.total_changes
            if rows:
                db.executemany(insert, rows)
            inserted = db.total_changes - before
            db.execute(
                "INSERT INTO sync_cursors (account, kind, symbol, currencies, cursor, since, "
                "records, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account, kind, symbol, currencies) DO UPDATE SET "
                "cursor = excluded.cursor, since = excluded.since, "
                "records = records + excluded.records, updated_at = excluded.updated_at",
                (key.account, key.kind, key.symbol, key.currencies, cursor, since, inserted, now),
            )
            return inserted

        return await self._run(self._write, body)

    # -- leases -------------------------------------------------------------------------

    async def ensure_accounts(self, accounts: Sequence[str]) -> None:
        def body(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO sync_leases (account) VALUES (?) ON CONFLICT DO NOTHING",
                [(account,) for account in accounts],
            )

        await self._run(self._write, body)

    async def heartbeat(self, worker: str, ttl_ms: int) -> int:
        def body(db: sqlite3.Connection) -> int:
            now = _now_ms()
            db.execute(
                "INSERT INTO sync_workers (worker, expires_at, started_at) VALUES (?, ?, ?) "
                "ON CONFLICT (worker) DO UPDATE SET expires_at = excluded.expires_at, "
                "beats = sync_workers.beats + 1",
                (worker, now + ttl_ms, now),
            )
            db.execute("DELETE FROM sync_workers WHERE expires_at < ?", (now - 86_400_000,))
            row = db.execute(
                "SELECT count(*) FROM sync_workers WHERE expires_at > ?", (now,)
            ).fetchone()
            return int(row[0])

        return await self._run(self._write, body)

    async def leave(self, worker: str) -> None:
        def body(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM sync_workers WHERE worker = ?", (worker,))

        await self._run(self._write, body)

    async def acquire(
        self, worker: str, accounts: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        if limit <= 0 or not accounts:
            return []

        def body(db: sqlite3.Connection) -> list[str]:
            now = _now_ms()
            marks = ", ".join("?" * len(accounts))
            free = [
                str(row[0])
                for row in db.execute(
                    f"SELECT account FROM sync_leases WHERE account IN ({marks}) "
                    "AND (owner IS NULL OR owner = ? OR expires_at <= ?) "
                    "ORDER BY expires_at, account LIMIT ?",
                    (*accounts, worker, now, limit),
                )
            ]
            for account in free:
                db.execute(
                    "UPDATE sync_leases SET takeovers = takeovers + "
                    "(CASE WHEN owner IS NOT NULL AND owner <> ? THEN 1 ELSE 0 END), "
                    "owner = ?, expires_at = ?, acquired_at = ? WHERE account = ?",
                    (worker, worker, now + ttl_ms, now, account),
                )
            return free

        return await self._run(self._write, body)

    async def renew(self, worker: str, accounts: Sequence[str], ttl_ms: int) -> list[str]:
        if not accounts:
            return []

        def body(db: sqlite3.Connection) -> list[str]:
            now = _now_ms()
            kept = []
            for account in accounts:
                if db.execute(
                    "UPDATE sync_leases SET expires_at = ? "
                    "WHERE account = ? AND owner = ? AND expires_at > ?",
                    (now + ttl_ms, account, worker, now),
                ).rowcount:
                    kept.append(account)
            return kept

        return await self._run(self._write, body)

    async def release(self, worker: str, accounts: Sequence[str]) -> None:
        if not accounts:
            return

        def body(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE sync_leases SET owner = NULL, expires_at = 0 "
                "WHERE account = ? AND owner = ?",
                [(account, worker) for account in accounts],
            )

        await self._run(self._write, body)

    async def holders(self, accounts: Sequence[str]) -> dict[str, Holder]:
        if not accounts:
            return {}

        def read() -> dict[str, Holder]:
            now = _now_ms()
            marks = ", ".join("?" * len(accounts))
            return {
                str(account): Holder(owner, int(expires), now, beats)
                for account, owner, expires, beats in self._db.execute(
                    "SELECT l.account, l.owner, l.expires_at, w.beats FROM sync_leases AS l "
                    "LEFT JOIN sync_workers AS w ON w.worker = l.owner "
                    f"WHERE l.account IN ({marks})",
                    tuple(accounts),
                )
            }

        return await self._run(read)
