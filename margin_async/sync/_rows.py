"""How records become rows: the tables, their columns and unique keys.

Every row carries the account's label and the record's fields, named as the models name
them. Amounts are exact: the store writes them as ``NUMERIC`` (PostgreSQL) or as the
exact decimal string in plain notation (SQLite ``TEXT``); times are integer epoch ms.

Keys (a replay of a record is a no-op):

* ``borrow_orders``, ``repay_orders``: ``(account, order_no)``.
* ``interest_records``: ``(account, symbol, record_key, occurrence)``. An interest record
  has no id: ``record_key`` is its content (``currency|created_time|interest_amount|
  day_ratio``, the identity :class:`~margin_async.FollowCursor` counts by) and
  ``occurrence`` numbers identical charges 0, 1, 2... so two identical charges stay two
  rows. ``symbol`` is the margin mode the stream read (``""`` cross, else the isolated
  symbol): interest records do not say it themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final, Literal

import attrs

from margin_async import BorrowOrder, InterestRecord, RepayOrder

__all__ = [
    "KINDS",
    "TABLES",
    "Kind",
    "RowsBuilder",
    "StreamKey",
    "Table",
    "interest_key",
    "plain",
    "rows_builder",
]

Kind = Literal["borrow", "repay", "interest"]
#: The three histories, in the order they are mirrored.
KINDS: Final[tuple[Kind, ...]] = ("borrow", "repay", "interest")

#: Column type names; each store maps them to its own SQL types.
ColumnType = Literal["text", "decimal", "ms", "int"]


@attrs.frozen
class Table:
    """One history table: its name, its columns (``account`` first) and primary key."""

    name: str
    columns: tuple[tuple[str, ColumnType, bool], ...]  # (name, type, nullable)
    key: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(name for name, _, _ in self.columns)


TABLES: Final[dict[Kind, Table]] = {
    "borrow": Table(
        "borrow_orders",
        (
            ("account", "text", False),
            ("order_no", "text", False),
            ("symbol", "text", False),
            ("currency", "text", True),
            ("size", "decimal", False),
            ("actual_size", "decimal", False),
            ("status", "text", True),
            ("created_time", "ms", True),
        ),
        ("account", "order_no"),
    ),
    "repay": Table(
        "repay_orders",
        (
            ("account", "text", False),
            ("order_no", "text", False),
            ("symbol", "text", False),
            ("currency", "text", True),
            ("size", "decimal", False),
            ("principal", "decimal", False),
            ("interest", "decimal", False),
            ("status", "text", True),
            ("created_time", "ms", True),
        ),
        ("account", "order_no"),
    ),
    "interest": Table(
        "interest_records",
        (
            ("account", "text", False),
            ("symbol", "text", False),
            ("record_key", "text", False),
            ("occurrence", "int", False),
            ("currency", "text", True),
            ("day_ratio", "decimal", True),
            ("interest_amount", "decimal", False),
            ("created_time", "ms", True),
        ),
        ("account", "symbol", "record_key", "occurrence"),
    ),
}


@attrs.frozen
class StreamKey:
    """One mirrored history of one account: its row in ``sync_cursors``.

    ``symbol`` is ``""`` for cross margin, else the isolated symbol; ``currencies`` the
    comma-joined, sorted currency filter (``""``: every currency, interest only).
    """

    account: str
    kind: Kind
    symbol: str
    currencies: str

    def __str__(self) -> str:
        mode = f"isolated {self.symbol}" if self.symbol else "cross"
        return f"{self.account}/{self.kind}/{mode}/{self.currencies or 'all currencies'}"


def plain(value: Decimal) -> str:
    """``value`` as an exact decimal string without exponent (``1E-8`` -> ``0.00000001``)."""
    text = str(value)  # several times faster than format(); plain unless an exponent shows
    return format(value, "f") if "E" in text else text


def interest_key(record: InterestRecord) -> str:
    """The identity of an interest record, as :class:`~margin_async.FollowCursor` keeps
    it: identical charges share it (and are told apart by ``occurrence``)."""
    return f"{record.currency}|{record.created_time}|{record.interest_amount}|{record.day_ratio}"


Row = tuple[Any, ...]

#: ``(records, counts) -> rows``: see :func:`rows_builder`.
RowsBuilder = Callable[[Sequence[Any], dict[str, int]], list[Row]]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def rows_builder(kind: Kind, account: str, symbol: str) -> RowsBuilder:
    """A function ``(records, counts) -> rows`` for the records of one stream, in order:
    the account first, then the table's columns in order, amounts as exact decimal text
    (:func:`plain`), the status as its wire string.

    ``counts`` (interest only, updated): how many identical records, per
    :func:`interest_key`, the stream has delivered so far; it numbers ``occurrence``.
    """
    # This runs once per record mirrored: comprehensions, and a status's ``_value_``
    # (its wire string; ``.value`` and hashing an enum member are Python-level calls).
    if kind == "interest":

        def interest(records: Sequence[InterestRecord], counts: dict[str, int]) -> list[Row]:
            rows: list[Row] = []
            for r in records:
                key = interest_key(r)
                occurrence = counts.get(key, 0)
                counts[key] = occurrence + 1
                rows.append(
                    (account, symbol, key, occurrence, r.currency, _text(r.day_ratio),
                     plain(r.interest_amount), r.created_time)
                )  # fmt: skip
            return rows

        return interest
    if kind == "borrow":

        def borrow(records: Sequence[BorrowOrder], counts: dict[str, int]) -> list[Row]:
            return [
                (account, r.order_no, r.symbol, r.currency, plain(r.size), plain(r.actual_size),
                 None if r.status is None else r.status._value_, r.created_time)
                for r in records
            ]  # fmt: skip

        return borrow

    def repay(records: Sequence[RepayOrder], counts: dict[str, int]) -> list[Row]:
        return [
            (account, r.order_no, r.symbol, r.currency, plain(r.size), plain(r.principal),
             plain(r.interest), None if r.status is None else r.status._value_, r.created_time)
            for r in records
        ]  # fmt: skip

    return repay
