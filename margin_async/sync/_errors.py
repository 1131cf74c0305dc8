"""The errors of :mod:`margin_async.sync`: all :class:`~margin_async.MarginError`."""

from __future__ import annotations

from margin_async import MarginError, ValidationError

__all__ = ["LeaseLostError", "StoreError", "SyncConfigError", "SyncError"]


class SyncError(MarginError):
    """The mirror could not do its work (its store, its leases or its settings)."""


class SyncConfigError(SyncError, ValidationError):
    """A setting of the mirror is wrong (``--db``, ``--accounts``, a flag); nothing ran.

    ``argument`` names the setting. Also a :class:`~margin_async.ValidationError`, so
    the command line exits with its usage status (2).
    """

    def __init__(self, argument: str, message: str) -> None:
        ValidationError.__init__(self, argument, message)


class StoreError(SyncError):
    """The database refused or failed (cannot connect, schema too new, disk full)."""


class LeaseLostError(SyncError):
    """This worker no longer holds the lease of ``account`` (it expired and another
    worker took it): the transaction was rolled back and the account is left to it."""

    def __init__(self, account: str) -> None:
        super().__init__(
            f"account {account!r}: the lease was lost (expired and taken over by another "
            "worker); nothing was written, the account is left to that worker"
        )
        self.account = account
