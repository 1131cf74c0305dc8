"""Choosing a store by its URL: the one module that knows every store."""

from __future__ import annotations

from margin_async.sync._errors import SyncConfigError
from margin_async.sync._store import _EXAMPLES, Store, redact_url

__all__ = ["open_store"]


def open_store(url: str, *, pool_size: int = 4) -> Store:
    """The store at ``url`` (not connected yet: use ``async with`` or ``await .open()``).

    * ``sqlite:///PATH``: a file (relative path; ``sqlite:////abs/path`` for an absolute
      one), created if missing, in WAL mode; nothing to install.
    * ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` (or ``postgres://``): needs the
      ``postgres`` extra (asyncpg). The password may also come from ``PGPASSWORD`` or
      ``~/.pgpass``. ``pool_size`` caps its connections.
    """
    if not isinstance(url, str) or not url:
        raise SyncConfigError("db", f"a database URL is needed, e.g. {_EXAMPLES}")
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise SyncConfigError(
                "db", f"{url!r}: a SQLite URL is sqlite:///PATH, e.g. {_EXAMPLES}"
            )
        # Imported here: `import margin_async.sync` needs neither database module.
        from margin_async.sync._sqlite import SQLiteStore

        return SQLiteStore(url, url[len("sqlite:///") :])
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        # asyncpg is imported only when a PostgreSQL store is asked for.
        from margin_async.sync._postgres import PostgresStore

        dsn = "postgresql" + url[len(scheme) :]
        return PostgresStore(redact_url(url), dsn, pool_size=pool_size)
    raise SyncConfigError(
        "db", f"unsupported database URL {redact_url(url)!r}; use one of {_EXAMPLES}"
    )
