"""Helpers of the sync tests: stores to test against, the exchange's history as the
oracle (read with the SDK's own walks, not the mirror's code), and the tables read back
(with sqlite3 / asyncpg directly, not the mirror's code)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from margin_async import Credentials, MarginClient

#: ``margin-async sync ...`` (``python -m margin_async.cli sync``): the command, as a
#: subprocess.
SYNC = [sys.executable, "-m", "margin_async.cli", "sync"]


def clean_env(creds: Credentials | None = None, **extra: str) -> dict[str, str]:
    """The environment without real-exchange settings, plus ``creds`` as KUCOIN_API_*."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "MARGIN_ASYNC_", "PG"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    if creds is not None:
        env.update(
            KUCOIN_API_KEY=creds.api_key,
            KUCOIN_API_SECRET=creds.api_secret,
            KUCOIN_API_PASSPHRASE=creds.api_passphrase,
        )
    env.update(extra)
    return env


def run_sync(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end (blocking)."""
    return subprocess.run(
        [*SYNC, *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )


@attrs.frozen
class History:
    """One account's records, as the exchange (or the tables) has them.

    ``borrows`` / ``repays``: order_no -> the row's other fields; ``interest``: a
    multiset of (symbol, currency, created_time, interest_amount, day_ratio).
    """

    borrows: dict[str, tuple[Any, ...]]
    repays: dict[str, tuple[Any, ...]]
    interest: Counter[tuple[Any, ...]]

    def sums(self) -> tuple[Decimal, Decimal, Decimal]:
        return (
            sum((row[3] for row in self.borrows.values()), Decimal(0)),
            sum((row[3] + row[4] for row in self.repays.values()), Decimal(0)),
            sum((key[3] * n for key, n in self.interest.items()), Decimal(0)),
        )

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.borrows), len(self.repays), sum(self.interest.values())


async def exchange_history(
    client: MarginClient, currencies: list[str], symbols: Iterable[str] = ("",)
) -> History:
    """What the exchange holds, read with the SDK's walks."""
    borrows: dict[str, tuple[Any, ...]] = {}
    repays: dict[str, tuple[Any, ...]] = {}
    interest: Counter[tuple[Any, ...]] = Counter()
    for symbol in symbols:
        mode: dict[str, Any] = {"is_isolated": True, "symbol": symbol} if symbol else {}
        for b in await client.borrow_history(currencies, **mode).collect():
            borrows[b.order_no] = (
                b.symbol, b.currency, b.size, b.actual_size, b.status and b.status.value,
                b.created_time,
            )  # fmt: skip
        for r in await client.repay_history(currencies, **mode).collect():
            repays[r.order_no] = (
                r.symbol, r.currency, r.size, r.principal, r.interest,
                r.status and r.status.value, r.created_time,
            )  # fmt: skip
        for i in await client.interest_history(currencies, **mode).collect():
            interest[(symbol, i.currency, i.created_time, i.interest_amount, i.day_ratio)] += 1
    return History(borrows, repays, interest)


_BORROW = "order_no, symbol, currency, size, actual_size, status, created_time"
_REPAY = "order_no, symbol, currency, size, principal, interest, status, created_time"
_INTEREST = "symbol, currency, created_time, interest_amount, day_ratio, occurrence, record_key"
_TABLES = [(_BORROW, "borrow_orders"), (_REPAY, "repay_orders"), (_INTEREST, "interest_records")]


def _dec(value: Any) -> Any:
    return Decimal(value) if isinstance(value, str) else value


def _history(borrow_rows: list[Any], repay_rows: list[Any], interest_rows: list[Any]) -> History:
    borrows: dict[str, tuple[Any, ...]] = {}
    for row in borrow_rows:
        assert row[0] not in borrows, f"borrow {row[0]} twice"
        borrows[row[0]] = (row[1], row[2], _dec(row[3]), _dec(row[4]), row[5], row[6])
    repays: dict[str, tuple[Any, ...]] = {}
    for row in repay_rows:
        assert row[0] not in repays, f"repay {row[0]} twice"
        repays[row[0]] = (row[1], row[2], _dec(row[3]), _dec(row[4]), _dec(row[5]), row[6], row[7])
    interest: Counter[tuple[Any, ...]] = Counter()
    occurrences: dict[tuple[Any, ...], list[int]] = {}
    for row in interest_rows:
        key = (row[0], row[1], row[2], _dec(row[3]), _dec(row[4]))
        interest[key] += 1
        occurrences.setdefault(key, []).append(row[5])
        assert row[6] == f"{row[1]}|{row[2]}|{_dec(row[3])}|{_dec(row[4])}", row
    for key, seen in occurrences.items():
        # Identical charges are numbered 0, 1, ...: nothing missing, nothing twice.
        assert sorted(seen) == list(range(len(seen))), (key, seen)
    return History(borrows, repays, interest)


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


async def table_history(url: str, account: str) -> History:
    """What the tables hold for ``account``."""
    async with Db(url) as db:
        return await db.history(account)


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query (``?`` placeholders for SQLite, ``$n`` for PostgreSQL)."""
    if url.startswith("sqlite:"):

        def read() -> list[tuple[Any, ...]]:
            db = sqlite3.connect(sqlite_path(url))
            try:
                rows = [tuple(row) for row in db.execute(sql, args).fetchall()]
                db.commit()
                return rows
            finally:
                db.close()

        return await asyncio.to_thread(read)
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def write_accounts_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class Db:
    """One open connection for many small queries (a test polling a database)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None

    async def __aenter__(self) -> Db:
        if self.url.startswith("sqlite:"):
            self._sqlite = sqlite3.connect(
                sqlite_path(self.url), check_same_thread=False, isolation_level=None
            )
        else:
            import asyncpg

            self._pg = await asyncpg.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            await self._pg.close()

    async def history(self, account: str) -> History:
        """What the tables hold for ``account``."""
        mark = "?" if self._sqlite is not None else "$1"
        return _history(
            *[
                await self.query(f"SELECT {columns} FROM {table} WHERE account = {mark}", account)
                for columns, table in _TABLES
            ]
        )

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (``?`` placeholders for SQLite, ``$n`` for PostgreSQL)."""
        if self._sqlite is not None:
            db = self._sqlite
            return await asyncio.to_thread(lambda: [tuple(r) for r in db.execute(sql, args)])
        return [tuple(row) for row in await self._pg.fetch(sql, *args)]
