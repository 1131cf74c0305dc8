"""FakeKuCoin's ledger: borrows, repays, interest and leverage, over loopback."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from kucoin_wire import call

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin, LedgerEntry

BORROW = "/api/v3/margin/borrow"
REPAY = "/api/v3/margin/repay"
LEVERAGE = "/api/v3/position/update-user-leverage"


def borrow_body(size: object, tif: str = "IOC", **extra: object) -> dict[str, Any]:
    return {"currency": "USDT", "size": size, "timeInForce": tif, **extra}


async def test_ioc_fills_what_is_available(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_liquidity("USDT", 5)
    status, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(10))
    assert status == 200
    assert payload["code"] == "200000"
    assert payload["data"]["actualSize"] == "5"
    order_no = payload["data"]["orderNo"]
    [entry] = fake.ledger(creds.api_key)
    assert entry == LedgerEntry(
        "borrow", order_no, "USDT", "", Decimal(10), Decimal(5), Decimal(5), Decimal(0),
        entry.created_time, "IOC",
    )  # fmt: skip
    assert fake.debt(creds.api_key, "USDT") == 5
    assert fake.liquidity("USDT") == 0
    _, _, history = await call(http, fake, creds, "GET", BORROW + "?currency=USDT")
    assert history["data"]["items"] == [
        {
            "orderNo": order_no,
            "symbol": None,
            "currency": "USDT",
            "size": "10",
            "actualSize": "5",
            "status": "SUCCESS",
            "createdTime": entry.created_time,
        }
    ]
    # Nothing left: an IOC borrow is refused and leaves no trace.
    status, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(1))
    assert (status, payload["code"]) == (200, "130101")
    assert len(fake.ledger(creds.api_key)) == 1


async def test_fok_is_all_or_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_liquidity("USDT", "7.5")
    status, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(10, "FOK"))
    assert (status, payload["code"]) == (200, "130101")
    assert "msg" in payload
    assert fake.ledger(creds.api_key) == []
    assert fake.debt(creds.api_key, "USDT") == 0
    _, _, history = await call(http, fake, creds, "GET", BORROW + "?currency=USDT")
    assert history["data"]["totalNum"] == 0
    status, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body("7.5", "FOK"))
    assert payload["data"]["actualSize"] == "7.5"
    fake.set_liquidity("USDT", None)
    assert fake.liquidity("USDT") == 10**9


async def test_borrow_limit_caps_principal(fake: FakeKuCoin, http: aiohttp.ClientSession) -> None:
    creds = fake.add_account(borrow_limit=Decimal(100))
    _, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(60))
    assert payload["data"]["actualSize"] == "60"
    _, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(60, "FOK"))
    assert payload["code"] == "130101"
    _, _, payload = await call(http, fake, creds, "POST", BORROW, borrow_body(60))
    assert payload["data"]["actualSize"] == "40"
    assert fake.debt(creds.api_key, "USDT") == 100


async def test_amounts_are_exact(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    for _ in range(3):
        body = b'{"currency":"USDT","size":0.1,"timeInForce":"IOC"}'
        status, _, _ = await call(http, fake, creds, "POST", BORROW, body)
        assert status == 200
    assert fake.debt(creds.api_key, "USDT") == Decimal("0.3")
    orders = {entry.order_no for entry in fake.ledger(creds.api_key)}
    assert len(orders) == 3


async def test_repay_pays_interest_first_and_never_more_than_owed(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    await call(http, fake, creds, "POST", BORROW, borrow_body(100))
    fake.set_interest_rate("USDT", "0.001")
    [charge] = fake.accrue_interest(creds.api_key, hours=24)
    assert charge.amount == Decimal("0.1")
    assert fake.accrued_interest(creds.api_key, "USDT") == Decimal("0.1")

    status, _, payload = await call(
        http, fake, creds, "POST", REPAY, {"currency": "USDT", "size": 50}
    )
    assert status == 200
    data = payload["data"]
    assert data["actualSize"] == "50"
    repay = fake.ledger(creds.api_key)[-1]
    assert (repay.kind, repay.interest, repay.principal) == (
        "repay",
        Decimal("0.1"),
        Decimal("49.9"),
    )
    assert (data["orderNo"], data["timestamp"]) == (repay.order_no, repay.created_time)
    assert fake.debt(creds.api_key, "USDT") == Decimal("50.1")
    assert fake.accrued_interest(creds.api_key, "USDT") == 0

    # Asking for more than is owed pays exactly what is owed.
    _, _, payload = await call(http, fake, creds, "POST", REPAY, {"currency": "USDT", "size": 1000})
    assert payload["data"]["actualSize"] == "50.1"
    last = fake.ledger(creds.api_key)[-1]
    assert (last.size, last.actual_size, last.principal) == (
        Decimal(1000),
        Decimal("50.1"),
        Decimal("50.1"),
    )
    assert fake.debt(creds.api_key, "USDT") == 0

    status, _, payload = await call(
        http, fake, creds, "POST", REPAY, {"currency": "USDT", "size": 1}
    )
    assert (status, payload["code"]) == (200, "130102")
    assert len(fake.ledger(creds.api_key)) == 3

    _, _, history = await call(http, fake, creds, "GET", REPAY + "?currency=USDT")
    items = history["data"]["items"]
    assert [(i["size"], i["principal"], i["interest"]) for i in items] == [
        ("1000", "50.1", "0"),
        ("50", "49.9", "0.1"),
    ]
    assert all(i["status"] == "SUCCESS" and i["symbol"] is None for i in items)
    _, _, interest = await call(http, fake, creds, "GET", "/api/v3/margin/interest")
    assert interest["data"]["items"] == [
        {
            "currency": "USDT",
            "dayRatio": "0.001",
            "interestAmount": "0.1",
            "createdTime": charge.created_time,
        }
    ]


async def test_repaid_principal_returns_to_the_pool(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.set_liquidity("USDT", 10)
    await call(http, fake, creds, "POST", BORROW, borrow_body(10))
    await call(http, fake, creds, "POST", REPAY, {"currency": "USDT", "size": 4})
    assert fake.liquidity("USDT") == 4


async def test_isolated_positions_are_separate(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    isolated = borrow_body(3, symbol="BTC-USDT", isIsolated=True)
    status, _, payload = await call(http, fake, creds, "POST", BORROW, isolated)
    assert payload["code"] == "200000", payload
    assert fake.debt(creds.api_key, "USDT", "BTC-USDT") == 3
    assert fake.debt(creds.api_key, "USDT") == 0
    # A symbol without isIsolated acts on the cross account.
    await call(http, fake, creds, "POST", BORROW, borrow_body(2, symbol="BTC-USDT"))
    assert fake.debt(creds.api_key, "USDT") == 2
    status, _, payload = await call(
        http, fake, creds, "POST", REPAY, {"currency": "USDT", "size": 5, "isIsolated": True}
    )
    assert (status, payload["code"]) == (400, "400100")
    _, _, cross = await call(http, fake, creds, "GET", BORROW + "?currency=USDT")
    assert [item["symbol"] for item in cross["data"]["items"]] == [None]
    target = BORROW + "?currency=USDT&isIsolated=true&symbol=BTC-USDT"
    _, _, iso = await call(http, fake, creds, "GET", target)
    assert [item["symbol"] for item in iso["data"]["items"]] == ["BTC-USDT"]
    assert [e.symbol for e in fake.ledger(creds.api_key)] == ["BTC-USDT", ""]


async def test_is_hf_is_recorded(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    await call(http, fake, creds, "POST", BORROW, borrow_body(1, isHf=True))
    assert fake.ledger(creds.api_key)[0].is_hf is True


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"USDT"',
        b'{"currency":"USDT","size":NaN,"timeInForce":"IOC"}',
        b'{"size":10,"timeInForce":"IOC"}',
        b'{"currency":"","size":10,"timeInForce":"IOC"}',
        b'{"currency":7,"size":10,"timeInForce":"IOC"}',
        b'{"currency":"USDT","timeInForce":"IOC"}',
        b'{"currency":"USDT","size":0,"timeInForce":"IOC"}',
        b'{"currency":"USDT","size":-1,"timeInForce":"IOC"}',
        b'{"currency":"USDT","size":true,"timeInForce":"IOC"}',
        b'{"currency":"USDT","size":"ten","timeInForce":"IOC"}',
        b'{"currency":"USDT","size":"1e3","timeInForce":"IOC"}',
        b'{"currency":"USDT","size":null,"timeInForce":"IOC"}',
        b'{"currency":"USDT","size":10}',
        b'{"currency":"USDT","size":10,"timeInForce":"ioc"}',
        b'{"currency":"USDT","size":10,"timeInForce":"GTC"}',
        b'{"currency":"USDT","size":10,"timeInForce":"IOC","isIsolated":"true","symbol":"B-U"}',
        b'{"currency":"USDT","size":10,"timeInForce":"IOC","isIsolated":true}',
        b'{"currency":"USDT","size":10,"timeInForce":"IOC","isIsolated":true,"symbol":""}',
        b'{"currency":"USDT","size":10,"timeInForce":"IOC","isHf":1}',
        b'{"currency":"USDT","size":10,"timeInForce":"IOC","symbol":5}',
    ],
)
async def test_bad_borrow_is_400100(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, body: bytes
) -> None:
    status, headers, payload = await call(http, fake, creds, "POST", BORROW, body)
    assert (status, payload["code"]) == (400, "400100")
    assert payload["msg"]
    assert "gw-ratelimit-remaining" in headers
    assert fake.ledger(creds.api_key) == []


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (b"10", "10"),
        (b"1E+1", "10"),
        (b"0.10", "0.1"),
        (b'"12.5"', "12.5"),
        (b"1e-8", "0.00000001"),
    ],
)
async def test_sizes_accepted(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, size: bytes, expected: str
) -> None:
    body = b'{"currency":"USDT","size":' + size + b',"timeInForce":"FOK","extra":1}'
    status, _, payload = await call(http, fake, creds, "POST", BORROW, body)
    assert (status, payload["data"]["actualSize"]) == (200, expected)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"currency":"USDT"}',
        b'{"size":1}',
        b'{"currency":"USDT","size":0}',
        b'{"currency":"USDT","size":1,"isHf":"false"}',
    ],
)
async def test_bad_repay_is_400100(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, body: bytes
) -> None:
    status, _, payload = await call(http, fake, creds, "POST", REPAY, body)
    assert (status, payload["code"]) == (400, "400100")


async def test_leverage(fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials) -> None:
    status, _, payload = await call(http, fake, creds, "POST", LEVERAGE, {"leverage": "3.5"})
    assert (status, payload) == (200, {"code": "200000", "data": None})
    assert fake.leverage(creds.api_key) == Decimal("3.5")
    body = {"leverage": "5", "symbol": "BTC-USDT", "isIsolated": True}
    _, _, payload = await call(http, fake, creds, "POST", LEVERAGE, body)
    assert payload["code"] == "200000"
    assert fake.leverage(creds.api_key, "BTC-USDT") == 5
    assert fake.leverage(creds.api_key) == Decimal("3.5")


@pytest.mark.parametrize(
    "body",
    [
        b'{"leverage":3.5}',
        b'{"leverage":"1"}',
        b'{"leverage":"0.5"}',
        b'{"leverage":"3.505"}',
        b'{"leverage":"abc"}',
        b'{"leverage":""}',
        b"{}",
        b'{"leverage":"3","isIsolated":true}',
    ],
)
async def test_bad_leverage_is_400100(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, body: bytes
) -> None:
    status, _, payload = await call(http, fake, creds, "POST", LEVERAGE, body)
    assert (status, payload["code"]) == (400, "400100")
    assert fake.leverage(creds.api_key) is None


async def test_leverage_bounds_are_business_refusals(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    status, _, payload = await call(http, fake, creds, "POST", LEVERAGE, {"leverage": "10.01"})
    assert (status, payload["code"]) == (200, "130103")
    fake.set_max_leverage(20)
    _, _, payload = await call(http, fake, creds, "POST", LEVERAGE, {"leverage": "10.01"})
    assert payload["code"] == "200000"
    fake.set_debt_leverage(creds.api_key, 4)
    _, _, payload = await call(http, fake, creds, "POST", LEVERAGE, {"leverage": "3.99"})
    assert payload["code"] == "130103"
    assert fake.leverage(creds.api_key) == Decimal("10.01")


async def test_accrue_interest_for_all_accounts(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    other = fake.add_account()
    await call(http, fake, creds, "POST", BORROW, borrow_body(1000))
    await call(http, fake, other, "POST", BORROW, borrow_body(10))
    charges = fake.accrue_interest()
    assert len(charges) == 2
    # Default rate 0.0002 per day, one hour, rounded up to 8 places.
    assert fake.accrued_interest(creds.api_key, "USDT") == Decimal("0.00833334")
    assert fake.accrued_interest(other.api_key, "USDT") == Decimal("0.00008334")
    assert fake.accrue_interest(fake.add_account().api_key) == []
