"""Bounds and argument checks of the fake exchange, for the wire and for its Python API.

Everything the fake is told, over HTTP or by a test calling its methods, passes through
here before any state changes: an absurd magnitude, a huge digit count, a NaN or a value
of the wrong type is refused up front (``Refusal`` on the wire, ``TypeError`` or
``ValueError`` in Python), never half-applied.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Final

__all__ = [
    "ARITHMETIC",
    "MAX_AMOUNT_DIGITS",
    "MAX_AMOUNT_EXPONENT",
    "MAX_DECIMAL_PLACES",
    "MAX_SECONDS",
    "MAX_TIME_MS",
    "amount_problem",
    "check_code",
    "check_decimal",
    "check_int",
    "check_seconds",
    "check_symbol",
]

#: Amounts have at most this many digits as written (``1.000`` counts four) ...
MAX_AMOUNT_DIGITS: Final = 40
#: ... are below ``10**MAX_AMOUNT_EXPONENT`` ...
MAX_AMOUNT_EXPONENT: Final = 20
#: ... and have at most this many decimal places once trailing zeros are dropped.
MAX_DECIMAL_PLACES: Final = 18
#: Times (epoch ms) are within ``0 .. MAX_TIME_MS``: what an 18-digit query can reach.
MAX_TIME_MS: Final = 10**18 - 1
#: Durations (latency, stall, idle close) are at most a day.
MAX_SECONDS: Final = 86_400.0

#: The ledger's arithmetic context: wide enough that sums and interest of amounts within
#: the bounds above are exact (the default 28 digits would round them silently).
ARITHMETIC: Final = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow])


def amount_problem(value: Decimal) -> str | None:
    """Why ``value`` is out of the fake's amount bounds, or ``None`` if it is within.

    Cheap for any ``Decimal``, however large its exponent: nothing is expanded.
    """
    if not value.is_finite():
        return "must be a finite number"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > MAX_AMOUNT_DIGITS:
        return f"must have at most {MAX_AMOUNT_DIGITS} digits"
    if value and value.adjusted() >= MAX_AMOUNT_EXPONENT:
        return f"must be below 1e{MAX_AMOUNT_EXPONENT}"
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if value and -(exponent + trailing) > MAX_DECIMAL_PLACES:
        return f"must have at most {MAX_DECIMAL_PLACES} decimal places"
    return None


def _shown(value: object) -> str:
    """``repr`` for a message, cut short (and never str() of an int beyond its limit)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_decimal(
    value: object, name: str, *, minimum: Decimal | int = 0, exclusive: bool = False
) -> Decimal:
    """``value`` (``Decimal``, ``int`` or numeric ``str``) as a ``Decimal`` within the
    amount bounds and ``>= minimum`` (``> minimum`` if ``exclusive``). Floats and bools
    are a ``TypeError`` (floats are not exact); anything else out of range a ``ValueError``.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(
            f"{name} must be a Decimal, int or str (floats are not exact), got {_shown(value)}"
        )
    if isinstance(value, int) and value.bit_length() > 128:
        raise ValueError(f"{name} must be below 1e{MAX_AMOUNT_EXPONENT}, got {_shown(value)}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, got {_shown(value)}") from None
    problem = amount_problem(result)
    if problem is not None:
        raise ValueError(f"{name} {problem}, got {_shown(value)}")
    if result < minimum or (exclusive and result == minimum):
        relation = ">" if exclusive else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {_shown(value)}")
    return result


def check_int(value: object, name: str, minimum: int, maximum: int) -> int:
    """``value`` as an ``int`` within ``minimum .. maximum`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {_shown(value)}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be within {minimum}..{maximum}, got {_shown(value)}")
    return value


def check_seconds(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a finite duration in seconds, ``>= 0`` (``> 0`` if ``positive``), at
    most :data:`MAX_SECONDS`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {_shown(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        relation = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {relation}, got {_shown(value)}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{name} must be at most {MAX_SECONDS:g} s, got {_shown(value)}")
    return seconds


def check_code(value: object, name: str) -> str:
    """A currency code: a non-empty ``str`` without ``,`` (a query could not name it)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {_shown(value)}")
    if not value or "," in value:
        raise ValueError(f"{name} must be a non-empty code without ',', got {_shown(value)}")
    return value


def check_symbol(value: object, name: str = "symbol") -> str:
    """An isolated-margin symbol, or ``""`` for cross margin (``None`` counts as ``""``)."""
    if value is None or value == "":
        return ""
    return check_code(value, name)
