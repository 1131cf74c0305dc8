"""The exact request of every operation: method, path, query, body bytes, KC-API-* headers.

aioresponses normalises the URLs it records (sorted query), so the order of the signed
query is proven by recomputing KC-API-SIGN here over the expected string, and the URL
really sent is recorded from ``ClientSession._build_url``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from helpers import (
    BASE,
    BORROW_PATH,
    INTEREST_PATH,
    KEY,
    LEVERAGE_PATH,
    PASSPHRASE,
    REPAY_PATH,
    SECRET,
    SIGNED_PASSPHRASE,
    assert_signed,
    body_of,
    borrow_item,
    client,
    interest_item,
    ok,
    only_call,
    page,
    repay_item,
    url_re,
)

from margin_async import (
    BorrowOrder,
    BorrowResult,
    Credentials,
    InterestRecord,
    MarginClient,
    OrderStatus,
    RepayOrder,
    RepayResult,
    TimeInForce,
)


@pytest.fixture
def sent_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL handed to aiohttp, as the exact string (before aioresponses normalises it)."""
    urls: list[str] = []
    original = aiohttp.ClientSession._build_url

    def record(self: aiohttp.ClientSession, str_or_url: Any) -> Any:
        url = original(self, str_or_url)
        urls.append(str(url))
        return url

    monkeypatch.setattr(aiohttp.ClientSession, "_build_url", record)
    return urls


def _check_post(mock: aioresponses, path: str, body: bytes, sent_urls: list[str]) -> None:
    url, call = only_call(mock, "POST")
    assert str(url) == BASE + path
    assert sent_urls == [BASE + path]
    assert body_of(call) == body
    headers = call.kwargs["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["KC-API-KEY-VERSION"] == "3"
    assert call.kwargs["allow_redirects"] is False
    assert_signed(call, "POST", path, body)


def _check_get(mock: aioresponses, path: str, query: str, sent_urls: list[str]) -> None:
    url, call = only_call(mock, "GET")
    assert url.path == path
    assert sent_urls == [BASE + path + ("?" + query if query else "")]
    assert body_of(call) == b""
    headers = call.kwargs["headers"]
    assert "Content-Type" not in headers
    assert headers["KC-API-KEY-VERSION"] == "3"
    assert_signed(call, "GET", path + ("?" + query if query else ""))


# -- borrow ----------------------------------------------------------------------------

BORROW_CASES: list[tuple[str, Callable[[MarginClient], Any], bytes]] = [
    (
        "decimal-exponent-fok",
        lambda c: c.borrow("USDT", Decimal("1E+1"), time_in_force="FOK"),
        b'{"currency":"USDT","size":10,"timeInForce":"FOK"}',
    ),
    (
        "default-ioc-lowercase-currency",
        lambda c: c.borrow("usdt", "10"),
        b'{"currency":"USDT","size":10,"timeInForce":"IOC"}',
    ),
    (
        "enum-and-int",
        lambda c: c.borrow("ETH", 3, TimeInForce.IOC),
        b'{"currency":"ETH","size":3,"timeInForce":"IOC"}',
    ),
    (
        "trailing-zeros",
        lambda c: c.borrow("BTC", Decimal("0.50000"), "ioc"),
        b'{"currency":"BTC","size":0.5,"timeInForce":"IOC"}',
    ),
    (
        "tiny",
        lambda c: c.borrow("BTC", Decimal("1E-8"), "IOC"),
        b'{"currency":"BTC","size":0.00000001,"timeInForce":"IOC"}',
    ),
    (
        "isolated",
        lambda c: c.borrow("btc", "0.5", time_in_force="FOK", symbol="btc-usdt", is_isolated=True),
        b'{"currency":"BTC","size":0.5,"timeInForce":"FOK","symbol":"BTC-USDT","isIsolated":true}',
    ),
    (
        "is_hf",
        lambda c: c.borrow("USDT", "100", time_in_force="IOC", is_hf=True),
        b'{"currency":"USDT","size":100,"timeInForce":"IOC","isHf":true}',
    ),
    (
        "isolated-is_hf",
        lambda c: c.borrow("USDT", "1", "IOC", symbol="BTC-USDT", is_isolated=True, is_hf=True),
        b'{"currency":"USDT","size":1,"timeInForce":"IOC","symbol":"BTC-USDT",'
        b'"isIsolated":true,"isHf":true}',
    ),
    (
        "flags-false-not-sent",
        lambda c: c.borrow("USDT", "1", "IOC", is_isolated=False, is_hf=False),
        b'{"currency":"USDT","size":1,"timeInForce":"IOC"}',
    ),
]


@pytest.mark.parametrize(("call", "body"), [pytest.param(c, b, id=i) for i, c, b in BORROW_CASES])
async def test_borrow_request(
    mock: aioresponses, sent_urls: list[str], call: Callable[[MarginClient], Any], body: bytes
) -> None:
    mock.post(BASE + BORROW_PATH, payload=ok({"orderNo": "67890", "actualSize": "10"}))
    async with client() as c:
        result = await call(c)
    assert result == BorrowResult("67890", Decimal("10"))
    _check_post(mock, BORROW_PATH, body, sent_urls)


# -- repay -----------------------------------------------------------------------------

REPAY_CASES: list[tuple[str, Callable[[MarginClient], Any], bytes]] = [
    ("plain", lambda c: c.repay("USDT", Decimal("10")), b'{"currency":"USDT","size":10}'),
    ("exponent", lambda c: c.repay("USDT", Decimal("1E+1")), b'{"currency":"USDT","size":10}'),
    (
        "isolated",
        lambda c: c.repay("BTC", "0.1", symbol="BTC-USDT", is_isolated=True),
        b'{"currency":"BTC","size":0.1,"symbol":"BTC-USDT","isIsolated":true}',
    ),
    (
        "is_hf",
        lambda c: c.repay("USDT", 5, is_hf=True),
        b'{"currency":"USDT","size":5,"isHf":true}',
    ),
]


@pytest.mark.parametrize(("call", "body"), [pytest.param(c, b, id=i) for i, c, b in REPAY_CASES])
async def test_repay_request(
    mock: aioresponses, sent_urls: list[str], call: Callable[[MarginClient], Any], body: bytes
) -> None:
    reply = {"timestamp": 1729657580449, "orderNo": "12345", "actualSize": "10.5"}
    mock.post(BASE + REPAY_PATH, payload=ok(reply))
    async with client() as c:
        result = await call(c)
    assert result == RepayResult("12345", Decimal("10.5"), 1729657580449)
    _check_post(mock, REPAY_PATH, body, sent_urls)


# -- leverage --------------------------------------------------------------------------

LEVERAGE_CASES: list[tuple[str, Callable[[MarginClient], Any], bytes]] = [
    ("decimal", lambda c: c.modify_leverage(Decimal("3.5")), b'{"leverage":"3.5"}'),
    ("str-trailing-zero", lambda c: c.modify_leverage("3.50"), b'{"leverage":"3.5"}'),
    ("int", lambda c: c.modify_leverage(5), b'{"leverage":"5"}'),
    (
        "isolated",
        lambda c: c.modify_leverage("5", symbol="BTC-USDT", is_isolated=True),
        b'{"symbol":"BTC-USDT","isIsolated":true,"leverage":"5"}',
    ),
]


@pytest.mark.parametrize("data", [None, "", "success"], ids=["null", "empty", "text"])
@pytest.mark.parametrize(("call", "body"), [pytest.param(c, b, id=i) for i, c, b in LEVERAGE_CASES])
async def test_leverage_request(
    mock: aioresponses,
    sent_urls: list[str],
    call: Callable[[MarginClient], Any],
    body: bytes,
    data: Any,
) -> None:
    mock.post(BASE + LEVERAGE_PATH, payload=ok(data))
    async with client() as c:
        assert await call(c) is None
    _check_post(mock, LEVERAGE_PATH, body, sent_urls)


# -- history GETs ----------------------------------------------------------------------

HISTORY_CASES: list[tuple[str, Callable[[MarginClient], Any], str, str]] = [
    (
        "borrow-golden",
        lambda c: c.get_borrow_history("USDT", current_page=1, page_size=50),
        BORROW_PATH,
        "currency=USDT&currentPage=1&pageSize=50",
    ),
    (
        "borrow-defaults",
        lambda c: c.get_borrow_history("usdt"),
        BORROW_PATH,
        "currency=USDT&currentPage=1&pageSize=50",
    ),
    (
        "borrow-all-filters",
        lambda c: c.get_borrow_history(
            "BTC",
            is_isolated=True,
            symbol="btc-usdt",
            order_no="1234",
            start_time=1729000000000,
            end_time=1729657580449,
            current_page=3,
            page_size=10,
        ),
        BORROW_PATH,
        "currency=BTC&isIsolated=true&symbol=BTC-USDT&orderNo=1234"
        "&startTime=1729000000000&endTime=1729657580449&currentPage=3&pageSize=10",
    ),
    (
        "repay-comma-currencies",
        lambda c: c.get_repay_history(["BTC", "eth"], page_size=500),
        REPAY_PATH,
        "currency=BTC,ETH&currentPage=1&pageSize=500",
    ),
    (
        "repay-isolated",
        lambda c: c.get_repay_history("USDT", is_isolated=True, symbol="ETH-USDT"),
        REPAY_PATH,
        "currency=USDT&isIsolated=true&symbol=ETH-USDT&currentPage=1&pageSize=50",
    ),
    (
        "interest-golden-comma",
        lambda c: c.get_interest_history(["BTC", "ETH"], current_page=2, page_size=500),
        INTEREST_PATH,
        "currency=BTC,ETH&currentPage=2&pageSize=500",
    ),
    (
        "interest-no-currency",
        lambda c: c.get_interest_history(),
        INTEREST_PATH,
        "currentPage=1&pageSize=50",
    ),
    (
        "interest-times",
        lambda c: c.get_interest_history("USDT", start_time=1729000000000),
        INTEREST_PATH,
        "currency=USDT&startTime=1729000000000&currentPage=1&pageSize=50",
    ),
]


@pytest.mark.parametrize(
    ("call", "path", "query"), [pytest.param(c, p, q, id=i) for i, c, p, q in HISTORY_CASES]
)
async def test_history_request(
    mock: aioresponses,
    sent_urls: list[str],
    call: Callable[[MarginClient], Any],
    path: str,
    query: str,
) -> None:
    mock.get(url_re(path), payload=ok(page([])))
    async with client() as c:
        result = await call(c)
    assert result.items == ()
    _check_get(mock, path, query, sent_urls)


async def test_comma_stays_unencoded_on_the_wire(mock: aioresponses, sent_urls: list[str]) -> None:
    mock.get(url_re(INTEREST_PATH), payload=ok(page([])))
    async with client() as c:
        await c.get_interest_history(["BTC", "ETH"], current_page=2, page_size=500)
    (sent,) = sent_urls
    assert "currency=BTC,ETH&" in sent
    assert "%2C" not in sent.upper()


async def test_value_that_must_be_encoded_is_signed_decoded(
    mock: aioresponses, sent_urls: list[str]
) -> None:
    """A value with a space or non-ASCII is percent-encoded on the wire, signed decoded."""
    mock.get(url_re(BORROW_PATH), payload=ok(page([])))
    async with client() as c:
        await c.get_borrow_history("USDT", order_no="ab c/é")
    assert sent_urls == [
        BASE + BORROW_PATH + "?currency=USDT&orderNo=ab%20c%2F%C3%A9&currentPage=1&pageSize=50"
    ]
    _, call = only_call(mock, "GET")
    assert_signed(
        call, "GET", BORROW_PATH + "?currency=USDT&orderNo=ab c/é&currentPage=1&pageSize=50"
    )


async def test_key_version_2_header(mock: aioresponses) -> None:
    mock.get(url_re(BORROW_PATH), payload=ok(page([])))
    mock.post(BASE + BORROW_PATH, payload=ok({"orderNo": "1", "actualSize": "1"}))
    creds = Credentials(KEY, SECRET, PASSPHRASE, key_version=2)
    async with MarginClient(creds) as c:
        await c.get_borrow_history("USDT")
        await c.borrow("USDT", "1")
    for method in ("GET", "POST"):
        _, call = only_call(mock, method)
        assert call.kwargs["headers"]["KC-API-KEY-VERSION"] == "2"
        assert call.kwargs["headers"]["KC-API-PASSPHRASE"] == SIGNED_PASSPHRASE


async def test_history_replies_decoded(mock: aioresponses) -> None:
    mock.get(
        url_re(BORROW_PATH),
        payload=ok(page([borrow_item(symbol="BTC-USDT", status="PENDING")], total_page=1)),
    )
    mock.get(url_re(REPAY_PATH), payload=ok(page([repay_item()])))
    mock.get(url_re(INTEREST_PATH), payload=ok(page([interest_item()])))
    async with client() as c:
        borrows = await c.get_borrow_history("USDT")
        repays = await c.get_repay_history("USDT")
        interest = await c.get_interest_history()
    assert borrows.items == (
        BorrowOrder(
            "148329430000000001",
            "BTC-USDT",
            "USDT",
            Decimal("10"),
            Decimal("10"),
            OrderStatus.PENDING,
            1729657580449,
        ),
    )
    assert (borrows.current_page, borrows.page_size, borrows.total_num, borrows.total_page) == (
        1,
        50,
        1,
        1,
    )
    assert borrows.timestamp == 1729657580449
    assert repays.items == (
        RepayOrder(
            "148329430000000002",
            "",
            "USDT",
            Decimal("10.5"),
            Decimal("10"),
            Decimal("0.5"),
            OrderStatus.SUCCESS,
            1729657580449,
        ),
    )
    assert interest.items == (
        InterestRecord("USDT", Decimal("0.000123"), Decimal("0.00000001"), 1729657580449),
    )


async def test_json_numbers_in_replies_are_exact(mock: aioresponses) -> None:
    """A reply with amounts as JSON numbers (not strings) keeps every digit."""
    body = b'{"code":"200000","data":{"orderNo":"1","actualSize":12345678.123456789012345678}}'
    mock.post(BASE + BORROW_PATH, body=body)
    async with client() as c:
        result = await c.borrow("USDT", "1")
    assert result.actual_size == Decimal("12345678.123456789012345678")


async def test_history_stream_requests(mock: aioresponses, sent_urls: list[str]) -> None:
    """A stream sends the same filters as a single page, with page_size 500 and a pinned
    endTime."""
    mock.get(url_re(INTEREST_PATH), payload=ok(page([interest_item()], page_size=500)))
    async with client() as c:
        records = await c.interest_history(["BTC", "ETH"]).collect()
    assert len(records) == 1
    (sent,) = sent_urls
    assert sent.startswith(BASE + INTEREST_PATH + "?currency=BTC,ETH&endTime=")
    assert sent.endswith("&currentPage=1&pageSize=500")
    _, call = only_call(mock, "GET")
    query = sent.split("?", 1)[1]
    assert_signed(call, "GET", INTEREST_PATH + "?" + query)
