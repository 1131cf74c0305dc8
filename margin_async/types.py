"""Public type aliases of the arguments margin-async accepts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

__all__ = ["Amount", "CurrencyArg", "TimeArg"]

#: An amount as accepted from callers: ``Decimal``, decimal string or ``int`` (never float).
Amount: TypeAlias = Decimal | str | int
#: A time as accepted from callers: epoch milliseconds (``int``) or an aware ``datetime``.
TimeArg: TypeAlias = int | datetime
#: One currency code (``"USDT"``), or several (``["BTC", "ETH"]``, sent comma-separated).
CurrencyArg: TypeAlias = str | Sequence[str]
