"""How values are written for people and files: amounts in plain notation, times of a
table as UTC, ``None`` as nothing, booleans as ``true``/``false``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["cell", "plain", "text"]

# Fields whose values are epoch milliseconds; the table shows them as UTC times.
_TIME_FIELDS = frozenset({"created_time", "timestamp"})
# Beyond this exponent a number is shown as typed: 1e999999999 has a billion digits.
_MAX_PLAIN_EXPONENT = 100


def plain(typed: str) -> str:
    """A number typed by a person, in plain notation (``1e5`` -> ``100000``); anything
    that is not a number of sensible size is returned as it is."""
    try:
        value = Decimal(typed.strip())
    except InvalidOperation:
        return typed
    if not value.is_finite() or abs(value.adjusted()) > _MAX_PLAIN_EXPONENT:
        return typed
    return format(value, "f")


def text(value: Any) -> str:
    """A field's value as CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell(field: str, value: Any) -> str:
    """A field's value as a table shows it to people: times as UTC."""
    if field in _TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value // 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)  # past what a calendar can show (year 9999): the raw ms
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{value % 1000:03d}Z"
    return text(value)
