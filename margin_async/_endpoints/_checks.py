"""Argument checks and wire formatting: pure functions, no I/O.

Each check takes a caller's value and returns the validated one, or raises
:class:`ValidationError` naming the argument. The endpoint modules declare which check
guards which parameter (see :mod:`margin_async._endpoints._params`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from margin_async._errors import ValidationError
from margin_async._models import TimeInForce

__all__ = [
    "amount",
    "currencies",
    "currency",
    "epoch_ms",
    "flag",
    "format_decimal",
    "json_body",
    "leverage",
    "margin_mode",
    "order_number",
    "page_number",
    "page_size",
    "required_currencies",
    "time_in_force",
]

_CURRENCY = re.compile(r"[A-Z0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")
_MIN_PAGE_SIZE, _MAX_PAGE_SIZE = 10, 500
_MAX_INTEGER_DIGITS, _MAX_DECIMALS = 100, 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def format_decimal(value: Decimal) -> str:
    """Plain digits, no exponent, no trailing zeros: ``1E+1`` -> ``10``, ``0.10`` -> ``0.1``.

    Exact for any number of digits (``normalize()`` would round to the context's 28).
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def json_body(fields: dict[str, object]) -> bytes:
    """Compact JSON; a ``Decimal`` is written as a plain JSON number (``10``, ``0.1``)."""
    parts = []
    for key, value in fields.items():
        encoded = format_decimal(value) if isinstance(value, Decimal) else json.dumps(value)
        parts.append(f"{json.dumps(key)}:{encoded}")
    return ("{" + ",".join(parts) + "}").encode()


def currency(value: object, *, name: str = "currency") -> str:
    """One currency code, upper-cased."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(name, f"must be a currency code such as 'USDT', got {value!r}")
    code = value.strip().upper()
    # ASCII first: "ß".upper() is "SS", which is not the code the caller typed.
    if not value.isascii() or not _CURRENCY.fullmatch(code):
        raise ValidationError(name, f"{value!r} is not a currency code (letters and digits)")
    return code


def currencies(value: object) -> str:
    """One code or a sequence of codes, as the wire's comma-separated list."""
    if isinstance(value, str):
        return currency(value)
    if isinstance(value, Sequence) and value:
        codes = [currency(item) for item in value]
        return ",".join(dict.fromkeys(codes))
    raise ValidationError(
        "currency", f"must be a currency code or a non-empty list of codes, got {value!r}"
    )


def amount(value: object, *, name: str = "size") -> Decimal:
    """A positive, finite amount; floats are refused because they are not exact."""
    if isinstance(value, float):
        raise ValidationError(
            name, f"floats are not exact; pass Decimal({str(value)!r}) or the string {str(value)!r}"
        )
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise ValidationError(name, f"must be a Decimal, str or int, got {type(value).__name__}")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValidationError(name, f"{value!r} is not a number") from None
    if not result.is_finite() or result <= 0:
        raise ValidationError(name, f"must be a positive amount, got {value!r}")
    # Bounds far beyond any real amount, checked before formatting: 1E+999999999 would
    # otherwise be written out as a billion digits.
    _, digits, exponent = result.as_tuple()
    assert isinstance(exponent, int)  # finite
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if result.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValidationError(name, f"{value!r} is too large to be an amount")
    if exponent + trailing_zeros < -_MAX_DECIMALS:
        raise ValidationError(name, f"{value!r} has more than {_MAX_DECIMALS} decimal places")
    return result


def time_in_force(value: object) -> TimeInForce:
    """``IOC`` or ``FOK``, as the enum or a string."""
    if isinstance(value, TimeInForce):
        return value
    if isinstance(value, str) and value.upper() in TimeInForce.__members__:
        return TimeInForce[value.upper()]
    raise ValidationError("time_in_force", f"must be 'IOC' or 'FOK', got {value!r}")


def margin_mode(symbol: object, is_isolated: object) -> str | None:
    """Validate the isolated/cross pair; return the upper-cased symbol (``None`` for cross)."""
    if not isinstance(is_isolated, bool):
        raise ValidationError("is_isolated", f"must be True or False, got {is_isolated!r}")
    if symbol is None or symbol == "":
        if is_isolated:
            raise ValidationError("symbol", "is required when is_isolated=True, e.g. 'BTC-USDT'")
        return None
    if not is_isolated:
        # Sent without isIsolated the exchange would act on the cross account instead.
        raise ValidationError("symbol", "is only used with is_isolated=True (isolated margin)")
    if (
        not isinstance(symbol, str)
        or not symbol.isascii()
        or not _SYMBOL.fullmatch(symbol.strip().upper())
    ):
        raise ValidationError("symbol", f"must look like 'BTC-USDT', got {symbol!r}")
    return symbol.strip().upper()


def flag(value: object, name: str) -> bool:
    """A strict boolean (``1`` or ``"yes"`` are refused)."""
    if not isinstance(value, bool):
        raise ValidationError(name, f"must be True or False, got {value!r}")
    return value


def epoch_ms(value: object, name: str) -> int:
    """Epoch milliseconds from an int or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(name, "must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
        # Exact integer arithmetic: value.timestamp() * 1000 is off by one ms for some times.
        return (value - _EPOCH) // _MILLISECOND
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValidationError(name, f"must be epoch milliseconds >= 0, got {value}")
        if value < 10**11:
            # 1973 in ms, but 5138 in seconds: almost certainly seconds by mistake.
            raise ValidationError(name, f"{value} looks like seconds; pass epoch milliseconds")
        return value
    raise ValidationError(name, f"must be epoch milliseconds (int) or a datetime, got {value!r}")


def page_number(value: object) -> int:
    """``current_page``: an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("current_page", f"must be an int >= 1, got {value!r}")
    return value


def page_size(value: object) -> int:
    """``page_size``: an int in 10..500."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("page_size", f"must be an int from 10 to 500, got {value!r}")
    if not _MIN_PAGE_SIZE <= value <= _MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"must be from 10 to 500, got {value}")
    return value


def order_number(value: object) -> str:
    """A non-empty order number."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("order_no", f"must be a non-empty string, got {value!r}")
    return value.strip()


def required_currencies(value: object) -> str:
    """``currency`` of borrow and repay history: one code or several, never absent."""
    if value is None:
        raise ValidationError("currency", "is required, e.g. 'USDT' or ['BTC', 'ETH']")
    return currencies(value)


def leverage(value: object) -> str:
    """A leverage multiplier: greater than 1, at most two decimals; the wire's string."""
    number = amount(value, name="leverage")
    if number <= 1:
        raise ValidationError("leverage", f"must be greater than 1, got {value!r}")
    text = format_decimal(number)
    if "." in text and len(text.split(".")[1]) > 2:
        raise ValidationError("leverage", f"allows at most two decimals, got {value!r}")
    return text
