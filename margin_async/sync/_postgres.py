"""The PostgreSQL store, through asyncpg (the ``postgres`` extra), imported only here.

Amounts are ``NUMERIC`` (exact, ``Decimal`` both ways), times ``BIGINT`` epoch ms. A
batch is one ``INSERT ... SELECT FROM unnest(...)`` of typed arrays. Leases use the
server's clock and ``SELECT ... FOR UPDATE SKIP LOCKED``, so that workers on several
machines share the accounts with the database as the only coordinator.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from margin_async.sync._errors import LeaseLostError, StoreError, SyncConfigError
from margin_async.sync._rows import TABLES, Row, StreamKey, Table
from margin_async.sync._store import SCHEMA_VERSION, Holder, Store

__all__ = ["PostgresStore"]

_TYPES = {"text": "text", "decimal": "numeric", "ms": "bigint", "int": "integer"}
#: The server's clock, epoch ms.
_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
# Any constant: the advisory lock that serialises schema creation by concurrent workers.
_SCHEMA_LOCK = 0x6D61_7267_696E


class _Transaction(Protocol):
    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> Any: ...


class _Connection(Protocol):
    """What this module uses of an ``asyncpg.Connection``."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    def transaction(self) -> _Transaction: ...


class _Pool(Protocol):
    """What this module uses of an ``asyncpg.Pool``."""

    def acquire(self) -> contextlib.AbstractAsyncContextManager[_Connection]: ...
    async def close(self) -> None: ...


def _table_sql(table: Table) -> list[str]:
    columns = ", ".join(
        f"{name} {_TYPES[kind]}{'' if nullable else ' NOT NULL'}"
        for name, kind, nullable in table.columns
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
        f"PRIMARY KEY ({', '.join(table.key)}))",
        f"CREATE INDEX IF NOT EXISTS {table.name}_time ON {table.name} (account, created_time)",
    ]


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS sync_meta (key text PRIMARY KEY, value text NOT NULL)",
    *(sql for table in TABLES.values() for sql in _table_sql(table)),
    "CREATE TABLE IF NOT EXISTS sync_cursors (account text NOT NULL, kind text NOT NULL, "
    "symbol text NOT NULL, currencies text NOT NULL, cursor text NOT NULL, "
    "since bigint NOT NULL, records bigint NOT NULL DEFAULT 0, "
    "updated_at bigint NOT NULL, PRIMARY KEY (account, kind, symbol, currencies))",
    "CREATE TABLE IF NOT EXISTS sync_leases (account text PRIMARY KEY, owner text, "
    "expires_at bigint NOT NULL DEFAULT 0, acquired_at bigint, "
    "takeovers integer NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sync_workers (worker text PRIMARY KEY, "
    "expires_at bigint NOT NULL, started_at bigint NOT NULL, "
    "beats bigint NOT NULL DEFAULT 1)",
]


def _insert_sql(table: Table) -> str:
    # Amounts travel as text (exact, and cheaper to encode than Decimal) and are cast to
    # numeric by the server.
    columns = table.columns[1:]
    names = [f"c{i}" for i in range(len(columns))]
    arrays = ", ".join(
        f"${i}::{'text' if kind == 'decimal' else _TYPES[kind]}[]"
        for i, (_, kind, _) in enumerate(columns, start=2)
    )
    values = ", ".join(
        f"u.{name}::numeric" if kind == "decimal" else f"u.{name}"
        for name, (_, kind, _) in zip(names, columns, strict=True)
    )
    return (
        f"INSERT INTO {table.name} ({', '.join(table.names)}) "
        f"SELECT $1::text, {values} FROM unnest({arrays}) AS u({', '.join(names)}) "
        "ON CONFLICT DO NOTHING"
    )


def _affected(status: str) -> int:
    """The row count of a command status (``INSERT 0 12`` -> 12)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore(Store):
    """A PostgreSQL database (see the module docstring). Use :func:`open_store`."""

    def __init__(self, url: str, dsn: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._dsn = dsn
        self._pool_size = max(2, pool_size)
        self._pool: _Pool | None = None
        self._inserts = {kind: _insert_sql(table) for kind, table in TABLES.items()}

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[_Connection]:
        if self._pool is None:
            raise StoreError(f"the store {self.url} is not open")
        import asyncpg

        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StoreError(f"PostgreSQL ({self.url}): {exc}") from exc

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError:
            raise SyncConfigError(
                "db",
                "a postgresql:// store needs asyncpg: pip install 'margin-async[postgres]'",
            ) from None
        try:
            pool: _Pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._pool_size, command_timeout=120
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
            # asyncpg's messages name the host and user, never the password.
            raise StoreError(f"cannot connect to {self.url}: {exc}") from None
        self._pool = pool
        try:
            async with self._conn() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
                found = await conn.fetchval(
                    "SELECT value FROM sync_meta WHERE key = 'schema_version'"
                )
                if found is None:
                    await conn.execute(
                        "INSERT INTO sync_meta (key, value) VALUES ('schema_version', $1)",
                        str(SCHEMA_VERSION),
                    )
                elif int(found) > SCHEMA_VERSION:
                    raise StoreError(
                        f"the tables in {self.url} were written by a newer margin-async "
                        f"(schema {found}, this one knows {SCHEMA_VERSION}); upgrade margin-async"
                    )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- streams ------------------------------------------------------------------------

    async def load_cursor(self, key: StreamKey) -> str | None:
        async with self._conn() as conn:
            found = await conn.fetchval(
                "SELECT cursor FROM sync_cursors WHERE account = $1 AND kind = $2 "
                "AND symbol = $3 AND currencies = $4",
                key.account,
                key.kind,
                key.symbol,
                key.currencies,
            )
        return None if found is None else str(found)

    async def commit(
        self, worker: str, key: StreamKey, rows: Sequence[Row], cursor: str, since: int, ttl_ms: int
    ) -> int:
        columns: list[Sequence[Any]] = []
        if rows:
            columns.extend(list(zip(*rows, strict=True))[1:])
        async with self._conn() as conn, conn.transaction():
            held = await conn.fetchval(
                f"UPDATE sync_leases SET expires_at = greatest(expires_at, {_NOW} + $3) "
                f"WHERE account = $1 AND owner = $2 AND expires_at > {_NOW} RETURNING 1",
                key.account,
                worker,
                ttl_ms,
            )
            if held is None:
                raise LeaseLostError(key.account)
            inserted = 0
            if rows:
                inserted = _affected(
                    await conn.execute(self._inserts[key.kind], key.account, *columns)
                )
            await conn.execute(
                "INSERT INTO sync_cursors (account, kind, symbol, currencies, cursor, since, "
                f"records, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, {_NOW}) "
                "ON CONFLICT (account, kind, symbol, currencies) DO UPDATE SET "
                "cursor = excluded.cursor, since = excluded.since, "
                "records = sync_cursors.records + excluded.records, "
                "updated_at = excluded.updated_at",
                key.account,
                key.kind,
                key.symbol,
                key.currencies,
                cursor,
                since,
                inserted,
            )
        return inserted

    # -- leases -------------------------------------------------------------------------

    async def ensure_accounts(self, accounts: Sequence[str]) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO sync_leases (account) SELECT unnest($1::text[]) "
                "ON CONFLICT DO NOTHING",
                list(accounts),
            )

    async def heartbeat(self, worker: str, ttl_ms: int) -> int:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO sync_workers (worker, expires_at, started_at) "
                f"VALUES ($1, {_NOW} + $2, {_NOW}) "
                "ON CONFLICT (worker) DO UPDATE SET expires_at = excluded.expires_at, "
                "beats = sync_workers.beats + 1",
                worker,
                ttl_ms,
            )
            await conn.execute(f"DELETE FROM sync_workers WHERE expires_at < {_NOW} - 86400000")
            live = await conn.fetchval(
                f"SELECT count(*) FROM sync_workers WHERE expires_at > {_NOW}"
            )
        return int(live)

    async def leave(self, worker: str) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM sync_workers WHERE worker = $1", worker)

    async def acquire(
        self, worker: str, accounts: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        if limit <= 0 or not accounts:
            return []
        async with self._conn() as conn, conn.transaction():
            # Rows another worker is taking right now are skipped, not waited for.
            rows = await conn.fetch(
                "SELECT account FROM sync_leases WHERE account = ANY($1::text[]) "
                f"AND (owner IS NULL OR owner = $2 OR expires_at <= {_NOW}) "
                "ORDER BY expires_at, account LIMIT $3 FOR UPDATE SKIP LOCKED",
                list(accounts),
                worker,
                limit,
            )
            taken = [str(row[0]) for row in rows]
            if taken:
                await conn.execute(
                    "UPDATE sync_leases SET takeovers = takeovers + "
                    "(CASE WHEN owner IS NOT NULL AND owner <> $2 THEN 1 ELSE 0 END), "
                    f"owner = $2, expires_at = {_NOW} + $3, acquired_at = {_NOW} "
                    "WHERE account = ANY($1::text[])",
                    taken,
                    worker,
                    ttl_ms,
                )
        return taken

    async def renew(self, worker: str, accounts: Sequence[str], ttl_ms: int) -> list[str]:
        if not accounts:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"UPDATE sync_leases SET expires_at = {_NOW} + $3 "
                f"WHERE account = ANY($1::text[]) AND owner = $2 AND expires_at > {_NOW} "
                "RETURNING account",
                list(accounts),
                worker,
                ttl_ms,
            )
        return [str(row[0]) for row in rows]

    async def release(self, worker: str, accounts: Sequence[str]) -> None:
        if not accounts:
            return
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE sync_leases SET owner = NULL, expires_at = 0 "
                "WHERE account = ANY($1::text[]) AND owner = $2",
                list(accounts),
                worker,
            )

    async def holders(self, accounts: Sequence[str]) -> dict[str, Holder]:
        if not accounts:
            return {}
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT l.account, l.owner, l.expires_at, {_NOW}, w.beats "
                "FROM sync_leases AS l LEFT JOIN sync_workers AS w ON w.worker = l.owner "
                "WHERE l.account = ANY($1::text[])",
                list(accounts),
            )
        return {
            str(row[0]): Holder(
                None if row[1] is None else str(row[1]),
                int(row[2]),
                int(row[3]),
                None if row[4] is None else int(row[4]),
            )
            for row in rows
        }
