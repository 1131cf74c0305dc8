"""margin-async: an asyncio SDK for KuCoin's margin borrowing API.

>>> from margin_async import MarginClient, Credentials
"""

from margin_async._version import __version__
from margin_async.auth import Credentials
from margin_async.client import MarginClient
from margin_async.convert import to_dict
from margin_async.errors import (
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
from margin_async.events import ResponseEvent
from margin_async.follow import FollowCursor, Follower
from margin_async.models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    OrderStatus,
    Page,
    RepayOrder,
    RepayResult,
    TimeInForce,
)
from margin_async.pagination import Paginator
from margin_async.pool import AccountError, AccountPool, AccountRecord
from margin_async.retry import RetryPolicy
from margin_async.session import DEFAULT_BASE_URL
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
    "__version__",
    "to_dict",
]
