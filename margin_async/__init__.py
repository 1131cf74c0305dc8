"""margin-async: an asyncio SDK for KuCoin's margin borrowing API.

>>> from margin_async import MarginClient, Credentials
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from margin_async._version import __version__

if TYPE_CHECKING:
    from margin_async._auth import Credentials
    from margin_async._client import MarginClient
    from margin_async._convert import to_dict
    from margin_async._errors import (
        ApiError,
        AuthenticationError,
        ClientClosedError,
        MarginError,
        OutcomeUnknownError,
        PoolError,
        ProtocolError,
        RateLimitError,
        TimestampError,
        TransportError,
        ValidationError,
    )
    from margin_async._events import ResponseEvent, WaitEvent
    from margin_async._follow import FollowCursor, Follower
    from margin_async._models import (
        BorrowOrder,
        BorrowResult,
        InterestRecord,
        OrderStatus,
        Page,
        RepayOrder,
        RepayResult,
        TimeInForce,
    )
    from margin_async._pagination import Paginator
    from margin_async._pool import AccountError, AccountPool, AccountRecord
    from margin_async._retry import RetryPolicy
    from margin_async._session import DEFAULT_BASE_URL
    from margin_async.types import Amount, CurrencyArg, TimeArg

__all__ = [
    "DEFAULT_BASE_URL",
    "AccountError",
    "AccountPool",
    "AccountRecord",
    "Amount",
    "ApiError",
    "AuthenticationError",
    "BorrowOrder",
    "BorrowResult",
    "ClientClosedError",
    "Credentials",
    "CurrencyArg",
    "FollowCursor",
    "Follower",
    "InterestRecord",
    "MarginClient",
    "MarginError",
    "OrderStatus",
    "OutcomeUnknownError",
    "Page",
    "Paginator",
    "PoolError",
    "ProtocolError",
    "RateLimitError",
    "RepayOrder",
    "RepayResult",
    "ResponseEvent",
    "RetryPolicy",
    "TimeArg",
    "TimeInForce",
    "TimestampError",
    "TransportError",
    "ValidationError",
    "WaitEvent",
    "__version__",
    "to_dict",
]

# Where each public name lives. They are imported on first use (PEP 562), not here:
# pytest loads margin_async.testing.pytest_plugin in every run of every environment where
# margin-async is installed, and importing any submodule runs this file first, so it
# must not import aiohttp. `from margin_async import MarginClient` works as before.
_HOMES: dict[str, str] = {
    "Credentials": "margin_async._auth",
    "MarginClient": "margin_async._client",
    "to_dict": "margin_async._convert",
    **dict.fromkeys(
        [
            "ApiError",
            "AuthenticationError",
            "ClientClosedError",
            "MarginError",
            "OutcomeUnknownError",
            "PoolError",
            "ProtocolError",
            "RateLimitError",
            "TimestampError",
            "TransportError",
            "ValidationError",
        ],
        "margin_async._errors",
    ),
    "ResponseEvent": "margin_async._events",
    "WaitEvent": "margin_async._events",
    "FollowCursor": "margin_async._follow",
    "Follower": "margin_async._follow",
    **dict.fromkeys(
        [
            "BorrowOrder",
            "BorrowResult",
            "InterestRecord",
            "OrderStatus",
            "Page",
            "RepayOrder",
            "RepayResult",
            "TimeInForce",
        ],
        "margin_async._models",
    ),
    "Paginator": "margin_async._pagination",
    "AccountError": "margin_async._pool",
    "AccountPool": "margin_async._pool",
    "AccountRecord": "margin_async._pool",
    "RetryPolicy": "margin_async._retry",
    "DEFAULT_BASE_URL": "margin_async._session",
    "Amount": "margin_async.types",
    "CurrencyArg": "margin_async.types",
    "TimeArg": "margin_async.types",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
