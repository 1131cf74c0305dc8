"""Stores: where the mirror writes, chosen by URL (``sqlite:///PATH``, ``postgresql://``).

A store does four things, each in one short transaction: create its tables, load a
stream's cursor, *commit* a batch (the rows, the stream's cursor after them and the
renewal of the account's lease, all or nothing), and manage leases (which worker mirrors
which account). Times of leases are the database's clock where it has one (PostgreSQL),
so the workers' clocks need not agree.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import attrs

from margin_async.sync._rows import Row, StreamKey

__all__ = ["SCHEMA_VERSION", "Holder", "Store", "redact_url"]

#: Version of the tables this release writes; a database written by a newer release is
#: refused rather than misread.
SCHEMA_VERSION = 1


@attrs.frozen
class Holder:
    """Who holds an account's lease (``owner`` ``None``: nobody) and until when (epoch
    ms on the database's clock); ``now`` is that clock when it was read; ``beats`` how
    many heartbeats the owner has sent (``None``: it never sent one, e.g. ``--once``).
    """

    owner: str | None
    expires_at: int
    now: int
    beats: int | None = None

    @property
    def live(self) -> bool:
        """Whether the lease is held and not expired."""
        return self.owner is not None and self.expires_at > self.now


class Store(abc.ABC):
    """A database the mirror writes to. Use ``async with open_store(url) as store``.

    ``url`` is the URL given, with any password replaced by ``***``.
    """

    url: str

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the tables if they do not exist (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect (idempotent)."""

    @abc.abstractmethod
    async def load_cursor(self, key: StreamKey) -> str | None:
        """The stored cursor of a stream (``FollowCursor.dumps()`` text), if any."""

    @abc.abstractmethod
    async def commit(
        self, worker: str, key: StreamKey, rows: Sequence[Row], cursor: str, since: int, ttl_ms: int
    ) -> int:
        """In one transaction: check that ``worker`` holds the lease of ``key.account``
        (and renew it for ``ttl_ms``), insert ``rows`` (tuples in the table's column
        order, amounts as exact decimal text; a row already there is left alone) and
        store ``cursor``. Returns how many rows were new.

        Raises :class:`~margin_async.sync.LeaseLostError` (nothing written) when the
        lease is not this worker's any more.
        """

    @abc.abstractmethod
    async def ensure_accounts(self, accounts: Sequence[str]) -> None:
        """Create the lease rows of ``accounts`` (free) if they do not exist."""

    @abc.abstractmethod
    async def heartbeat(self, worker: str, ttl_ms: int) -> int:
        """Say ``worker`` is alive for ``ttl_ms`` (counting its beats); return how many
        workers are alive."""

    @abc.abstractmethod
    async def leave(self, worker: str) -> None:
        """Forget ``worker`` (it stops)."""

    @abc.abstractmethod
    async def acquire(
        self, worker: str, accounts: Sequence[str], limit: int, ttl_ms: int
    ) -> list[str]:
        """Lease up to ``limit`` of ``accounts`` that are free or whose lease expired
        (a dead worker's); skip those another transaction is taking right now."""

    @abc.abstractmethod
    async def renew(self, worker: str, accounts: Sequence[str], ttl_ms: int) -> list[str]:
        """Extend the leases ``worker`` still holds among ``accounts``; return them."""

    @abc.abstractmethod
    async def release(self, worker: str, accounts: Sequence[str]) -> None:
        """Give up ``worker``'s leases of ``accounts``."""

    @abc.abstractmethod
    async def holders(self, accounts: Sequence[str]) -> dict[str, Holder]:
        """The lease of each of ``accounts`` (only those with a lease row)."""


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_EXAMPLES = (
    "sqlite:///mirror.db (relative), sqlite:////var/lib/mirror.db, postgresql://USER@HOST/DB"
)
