"""Mirror KuCoin margin history into a database, exactly once (the library behind
``margin-async sync``, whose command lives with the CLI in :mod:`margin_async.cli`).

::

    from margin_async import AccountPool
    from margin_async.sync import AccountSpec, Mirror, open_store

    store = open_store("sqlite:///mirror.db")          # or "postgresql://user@host/db"
    mirror = Mirror(store, {"alice": AccountSpec(currencies=["USDT", "BTC"])})
    async with store, AccountPool({"alice": creds}, on_response=mirror.observe) as pool:
        await mirror.run_once(pool)                    # up to date, then return
        await mirror.follow(pool, interval=5.0, stop=stop_event)   # until stop is set

Tables: ``borrow_orders``, ``repay_orders``, ``interest_records`` (the account label
plus each record's fields; see :mod:`margin_async.sync._rows` for the keys),
``sync_cursors`` (each stream's :class:`~margin_async.FollowCursor`), ``sync_leases`` and
``sync_workers`` (which worker mirrors which account). Importing this package needs no
database driver; asyncpg is imported when a ``postgresql://`` store is opened.
"""

from margin_async.sync._accounts import (
    AccountEntry,
    load_accounts,
    parse_codes,
    parse_kinds,
    parse_symbols,
)
from margin_async.sync._budget import DEFAULT_HEADROOM, DEFAULT_QUOTA, WEIGHTS, Headroom
from margin_async.sync._errors import LeaseLostError, StoreError, SyncConfigError, SyncError
from margin_async.sync._mirror import AccountSpec, Mirror, SyncStatus
from margin_async.sync._open import open_store
from margin_async.sync._rows import KINDS, TABLES, Kind, StreamKey, Table
from margin_async.sync._store import Holder, Store

__all__ = [
    "DEFAULT_HEADROOM",
    "DEFAULT_QUOTA",
    "KINDS",
    "TABLES",
    "WEIGHTS",
    "AccountEntry",
    "AccountSpec",
    "Headroom",
    "Holder",
    "Kind",
    "LeaseLostError",
    "Mirror",
    "Store",
    "StoreError",
    "StreamKey",
    "SyncConfigError",
    "SyncError",
    "SyncStatus",
    "Table",
    "load_accounts",
    "open_store",
    "parse_codes",
    "parse_kinds",
    "parse_symbols",
]
