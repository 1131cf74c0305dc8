"""Shared helpers of the unit tests: credentials, wire payloads, aioresponses plumbing."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from kucoin_wire import b64hmac

from margin_async import Credentials, MarginClient, RetryPolicy

BASE = "https://api.kucoin.com"
KEY = "5c2db93503aa674c74a31742"
SECRET = "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3"
PASSPHRASE = "my-passphrase"
#: base64(HMAC_SHA256(SECRET, PASSPHRASE)), from DESIGN.md.
SIGNED_PASSPHRASE = "sVNmif2caUE5SCRJCgYlwsc6lQaT8d/P6TZ8yPqSYoU="
SUCCESS = "200000"

#: The golden signing vectors of DESIGN.md, signed with SECRET at GOLDEN_TIMESTAMP:
#: (method, path with unencoded query, body, expected KC-API-SIGN).
GOLDEN_TIMESTAMP = 1729657580449
GOLDEN_VECTORS = [
    (
        "GET",
        "/api/v3/margin/borrow?currency=USDT&currentPage=1&pageSize=50",
        b"",
        "odfZJGKHWkdQlR2vYkW0BXsDSzPiYj3d4APwoZvGmgI=",
    ),
    (
        "GET",
        "/api/v3/margin/interest?currency=BTC,ETH&currentPage=2&pageSize=500",
        b"",
        "lFQunhwBHGOIoQbNu05sjvFk8/Aq0FtLwLHPQFMubkg=",
    ),
    (
        "POST",
        "/api/v3/margin/borrow",
        b'{"currency":"USDT","size":10,"timeInForce":"FOK"}',
        "euKk7TzhRTonobrt/WeUugi9e/H659/QyO96vtC1Pjg=",
    ),
    (
        "POST",
        "/api/v3/position/update-user-leverage",
        b'{"leverage":"3.5"}',
        "9WSWrI0M+L2M4DzeruVLjvQWsZu+UFsP8eazgAR6ixs=",
    ),
]
GOLDEN_IDS = ["borrow-history", "interest-comma", "borrow-post", "leverage-post"]

BORROW_PATH = "/api/v3/margin/borrow"
REPAY_PATH = "/api/v3/margin/repay"
INTEREST_PATH = "/api/v3/margin/interest"
LEVERAGE_PATH = "/api/v3/position/update-user-leverage"
TIME_PATH = "/api/v1/timestamp"

#: Retry settings that never sleep, for tests that go through resends.
FAST = RetryPolicy(attempts=2, base_delay=0, max_delay=0)
ONCE = RetryPolicy(attempts=1)


def creds(key_version: int = 3) -> Credentials:
    return Credentials(KEY, SECRET, PASSPHRASE, key_version=key_version)


def client(retry: RetryPolicy | None = FAST, **kwargs: Any) -> MarginClient:
    return MarginClient(creds(), retry=retry, **kwargs)


def url_re(path: str) -> re.Pattern[str]:
    """Matches ``BASE + path`` with any query (aioresponses normalises the query)."""
    return re.compile(re.escape(BASE + path) + r"(\?.*)?$")


def ok(data: Any) -> dict[str, Any]:
    return {"code": SUCCESS, "data": data}


def page(
    items: list[dict[str, Any]],
    *,
    current_page: int = 1,
    page_size: int = 50,
    total_num: int | None = None,
    total_page: int = 1,
    timestamp: int = 1729657580449,
) -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "currentPage": current_page,
        "pageSize": page_size,
        "totalNum": len(items) if total_num is None else total_num,
        "totalPage": total_page,
        "items": items,
    }


def borrow_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "orderNo": "148329430000000001",
        "symbol": None,
        "currency": "USDT",
        "size": "10",
        "actualSize": "10",
        "status": "SUCCESS",
        "createdTime": 1729657580449,
    }
    item.update(overrides)
    return item


def repay_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "orderNo": "148329430000000002",
        "symbol": None,
        "currency": "USDT",
        "size": "10.5",
        "principal": "10",
        "interest": "0.5",
        "status": "SUCCESS",
        "createdTime": 1729657580449,
    }
    item.update(overrides)
    return item


def interest_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "currency": "USDT",
        "dayRatio": "0.000123",
        "interestAmount": "0.00000001",
        "createdTime": 1729657580449,
    }
    item.update(overrides)
    return item


def calls(m: aioresponses, method: str | None = None) -> list[tuple[str, Any, Any]]:
    """Every recorded call as (method, normalised URL, RequestCall)."""
    out = []
    for (verb, url), recorded in m.requests.items():
        if method is None or verb == method:
            out.extend((verb, url, call) for call in recorded)
    return out


def only_call(m: aioresponses, method: str) -> tuple[Any, Any]:
    """The single call of ``method``: (normalised URL, RequestCall)."""
    found = calls(m, method)
    assert len(found) == 1, found
    _, url, call = found[0]
    return url, call


def body_of(call: Any) -> bytes:
    data = call.kwargs.get("data")
    return b"" if data is None else bytes(data)


def assert_signed(call: Any, method: str, path_with_query: str, body: bytes = b"") -> None:
    """The KC-API-SIGN sent signs exactly ``timestamp + method + path_with_query + body``."""
    headers = call.kwargs["headers"]
    timestamp = headers["KC-API-TIMESTAMP"]
    assert timestamp.isdigit()
    prehash = (timestamp + method + path_with_query).encode() + body
    assert headers["KC-API-SIGN"] == b64hmac(SECRET, prehash), path_with_query
    assert headers["KC-API-KEY"] == KEY
    assert headers["KC-API-PASSPHRASE"] == SIGNED_PASSPHRASE


def connector_error() -> aiohttp.ClientConnectorError:
    """A connect failure: the request never left the machine."""
    key = ConnectionKey("api.kucoin.com", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(socket.EAI_NONAME, "Name not known"))


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """Records of the "margin_async" logger, caught on the logger itself (so a test that
    turned propagation off elsewhere cannot hide them)."""
    logger = logging.getLogger("margin_async")
    handler = _Records()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
