"""FakeKuCoin's history: paging, filters, ordering and scale, over loopback."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from kucoin_wire import call

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

BORROW = "/api/v3/margin/borrow"
REPAY = "/api/v3/margin/repay"
INTEREST = "/api/v3/margin/interest"
MIN_START = 1_680_278_400_000
START = 1_700_000_000_000  # 2023-11-14
END = START + 30 * 86_400_000
PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")


async def page(
    http: aiohttp.ClientSession,
    fake: FakeKuCoin,
    creds: Credentials,
    path: str,
    query: str,
) -> dict[str, Any]:
    status, _, payload = await call(http, fake, creds, "GET", f"{path}?{query}")
    assert status == 200, payload
    assert payload["code"] == "200000"
    data: dict[str, Any] = payload["data"]
    return data


async def walk(
    http: aiohttp.ClientSession,
    fake: FakeKuCoin,
    creds: Credentials,
    path: str,
    query: str,
    page_size: int = 500,
) -> list[dict[str, Any]]:
    """Every item, page by page, checking the paging fields on the way."""
    items: list[dict[str, Any]] = []
    first = await page(http, fake, creds, path, f"{query}&currentPage=1&pageSize={page_size}")
    total, pages = first["totalNum"], first["totalPage"]
    assert pages == -(-total // page_size)
    items.extend(first["items"])
    for number in range(2, pages + 1):
        data = await page(
            http, fake, creds, path, f"{query}&currentPage={number}&pageSize={page_size}"
        )
        assert (data["currentPage"], data["pageSize"]) == (number, page_size)
        assert (data["totalNum"], data["totalPage"]) == (total, pages)
        items.extend(data["items"])
    assert len(items) == total
    return items


def newest_first(items: list[dict[str, Any]]) -> bool:
    times = [item["createdTime"] for item in items]
    return times == sorted(times, reverse=True)


async def test_paging_across_many_records(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=12_345, start_time=START, end_time=END)
    items = await walk(http, fake, creds, BORROW, "currency=USDT")
    assert len(items) == 12_345
    assert len({item["orderNo"] for item in items}) == 12_345
    times = [item["createdTime"] for item in items]
    assert times == sorted(set(times), reverse=True)  # distinct and newest first
    assert times[-1] >= START and times[0] <= END
    for item in items[:100]:
        assert set(item) == {
            "orderNo", "symbol", "currency", "size", "actualSize", "status", "createdTime"
        }  # fmt: skip
        assert item["symbol"] is None and item["currency"] == "USDT"
        assert item["status"] == "SUCCESS"
        assert PLAIN.fullmatch(item["size"]) and item["size"] == item["actualSize"]

    last = await page(http, fake, creds, BORROW, "currency=USDT&currentPage=25&pageSize=500")
    assert len(last["items"]) == 12_345 - 24 * 500
    past = await page(http, fake, creds, BORROW, "currency=USDT&currentPage=26&pageSize=500")
    assert past["items"] == []
    assert (past["totalNum"], past["totalPage"], past["currentPage"]) == (12_345, 25, 26)
    assert abs(past["timestamp"] - fake.now_ms()) < 5000


async def test_defaults_are_page_one_of_fifty(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", repays=120)
    data = await page(http, fake, creds, REPAY, "currency=USDT")
    assert (data["currentPage"], data["pageSize"], data["totalNum"], data["totalPage"]) == (
        1, 50, 120, 3,
    )  # fmt: skip
    assert len(data["items"]) == 50
    for item in data["items"]:
        assert set(item) == {
            "orderNo", "symbol", "currency", "size", "principal", "interest", "status",
            "createdTime",
        }  # fmt: skip
        assert all(PLAIN.fullmatch(item[k]) for k in ("size", "principal", "interest"))
        assert Decimal(item["principal"]) + Decimal(item["interest"]) == Decimal(item["size"])


async def test_empty_history(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    data = await page(http, fake, creds, INTEREST, "currentPage=1&pageSize=10")
    assert (data["totalNum"], data["totalPage"], data["items"]) == (0, 0, [])


@pytest.mark.parametrize(
    "query",
    [
        "currency=USDT&pageSize=9",
        "currency=USDT&pageSize=501",
        "currency=USDT&pageSize=abc",
        "currency=USDT&currentPage=0",
        "currency=USDT&currentPage=-1",
        "currency=USDT&startTime=yesterday",
        "currency=USDT&endTime=1.5",
        "currency=USDT&isIsolated=yes",
        "currency=USDT&isIsolated=true",
        "currency=BTC,,ETH",
        "pageSize=50",
        "currency=",
    ],
)
@pytest.mark.parametrize("path", [BORROW, REPAY])
async def test_bad_history_query_is_400100(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, path: str, query: str
) -> None:
    status, _, payload = await call(http, fake, creds, "GET", f"{path}?{query}")
    assert (status, payload["code"]) == (400, "400100")


async def test_page_size_bounds_are_accepted(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "BTC", interest=600)
    small = await page(http, fake, creds, INTEREST, "pageSize=10")
    big = await page(http, fake, creds, INTEREST, "pageSize=500")
    assert (len(small["items"]), len(big["items"])) == (10, 500)
    assert small["items"] == big["items"][:10]


async def test_comma_separated_currencies(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    for currency, count in (("USDT", 1000), ("BTC", 700), ("ETH", 300)):
        fake.seed_history(creds.api_key, currency, borrows=count, start_time=START, end_time=END)
    items = await walk(http, fake, creds, BORROW, "currency=BTC,ETH", page_size=100)
    assert len(items) == 1000
    assert {item["currency"] for item in items} == {"BTC", "ETH"}
    assert newest_first(items)
    assert len({item["orderNo"] for item in items}) == 1000
    # Same answer whichever order the codes come in, and encoded on the wire.
    other = await walk(http, fake, creds, BORROW, "currency=ETH,BTC", page_size=100)
    assert other == items
    single = await walk(http, fake, creds, BORROW, "currency=ETH")
    assert single == [item for item in items if item["currency"] == "ETH"]
    # Interest history without currency spans every currency.
    fake.seed_history(creds.api_key, "USDT", interest=30)
    fake.seed_history(creds.api_key, "BTC", interest=20)
    everything = await walk(http, fake, creds, INTEREST, "isIsolated=false", page_size=10)
    assert len(everything) == 50
    assert newest_first(everything)


async def test_time_range_is_inclusive(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", interest=2000, start_time=START, end_time=END)
    items = await walk(http, fake, creds, INTEREST, "currency=USDT")
    newest, oldest = items[100]["createdTime"], items[1500]["createdTime"]
    window = await walk(
        http, fake, creds, INTEREST, f"currency=USDT&startTime={oldest}&endTime={newest}"
    )
    assert window == items[100:1501]
    just_one = await walk(
        http, fake, creds, INTEREST, f"currency=USDT&startTime={newest}&endTime={newest}"
    )
    assert just_one == [items[100]]
    after = await walk(http, fake, creds, INTEREST, f"currency=USDT&startTime={newest + 1}")
    assert after == items[:100]
    reversed_range = await page(
        http, fake, creds, INTEREST, f"currency=USDT&startTime={newest}&endTime={oldest}"
    )
    assert reversed_range["totalNum"] == 0


async def test_start_time_is_raised_to_the_api_minimum(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    # 100 slots of 1000 ms each, the 51st starting exactly at the minimum.
    fake.seed_history(
        creds.api_key,
        "USDT",
        borrows=100,
        start_time=MIN_START - 50_000,
        end_time=MIN_START + 49_999,
    )
    default = await page(http, fake, creds, BORROW, "currency=USDT")
    explicit = await page(http, fake, creds, BORROW, "currency=USDT&startTime=0")
    assert default["totalNum"] == explicit["totalNum"] == 50
    assert all(item["createdTime"] >= MIN_START for item in default["items"])


async def test_isolated_filters(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=40, interest=15)
    fake.seed_history(creds.api_key, "USDT", borrows=25, interest=5, symbol="BTC-USDT")
    fake.seed_history(creds.api_key, "USDT", borrows=10, symbol="ETH-USDT")
    cross = await page(http, fake, creds, BORROW, "currency=USDT&pageSize=100")
    assert cross["totalNum"] == 40
    # A symbol without isIsolated=true still means the cross account.
    also_cross = await page(http, fake, creds, BORROW, "currency=USDT&symbol=BTC-USDT")
    assert also_cross["totalNum"] == 40
    iso = await page(
        http, fake, creds, BORROW, "currency=USDT&isIsolated=true&symbol=BTC-USDT&pageSize=100"
    )
    assert iso["totalNum"] == 25
    assert {item["symbol"] for item in iso["items"]} == {"BTC-USDT"}
    iso_interest = await page(http, fake, creds, INTEREST, "isIsolated=true&symbol=BTC-USDT")
    assert iso_interest["totalNum"] == 5
    assert set(iso_interest["items"][0]) == {
        "currency",
        "dayRatio",
        "interestAmount",
        "createdTime",
    }
    cross_interest = await page(http, fake, creds, INTEREST, "currency=USDT")
    assert cross_interest["totalNum"] == 15


async def test_order_number_filter(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=300)
    fake.seed_history(creds.api_key, "BTC", borrows=10)
    target = (await page(http, fake, creds, BORROW, "currency=USDT&currentPage=3"))["items"][7]
    found = await page(http, fake, creds, BORROW, f"currency=USDT&orderNo={target['orderNo']}")
    assert (found["totalNum"], found["items"]) == (1, [target])
    multi = await page(http, fake, creds, BORROW, f"currency=BTC,USDT&orderNo={target['orderNo']}")
    assert multi["items"] == [target]
    wrong_currency = await page(
        http, fake, creds, BORROW, f"currency=BTC&orderNo={target['orderNo']}"
    )
    assert wrong_currency["totalNum"] == 0
    outside = await page(
        http,
        fake,
        creds,
        BORROW,
        f"currency=USDT&orderNo={target['orderNo']}&endTime={target['createdTime'] - 1}",
    )
    assert outside["totalNum"] == 0
    unknown = await page(http, fake, creds, BORROW, "currency=USDT&orderNo=nope")
    assert unknown["totalNum"] == 0
    # Repay order numbers are not borrow order numbers.
    assert (await page(http, fake, creds, REPAY, f"currency=USDT&orderNo={target['orderNo']}"))[
        "totalNum"
    ] == 0


async def test_appended_records_come_first_and_pinned_end_time_hides_them(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", interest=1000)
    pinned = fake.now_ms()
    before = await walk(http, fake, creds, INTEREST, f"currency=USDT&endTime={pinned}")
    await asyncio.sleep(0.002)
    charge = fake.append_interest(creds.api_key, "USDT", Decimal("0.5"), Decimal("0.0003"))
    assert charge.created_time > pinned
    first = await page(http, fake, creds, INTEREST, "currency=USDT&pageSize=10")
    assert first["items"][0] == {
        "currency": "USDT",
        "dayRatio": "0.0003",
        "interestAmount": "0.5",
        "createdTime": charge.created_time,
    }
    assert first["totalNum"] == 1001
    assert await walk(http, fake, creds, INTEREST, f"currency=USDT&endTime={pinned}") == before
    # Seeding again appends, and the order stays total.
    fake.seed_history(creds.api_key, "USDT", interest=500, start_time=START, end_time=END)
    assert fake.history_size(creds.api_key, "interest") == 1501
    everything = await walk(http, fake, creds, INTEREST, "currency=USDT")
    assert newest_first(everything)
    # An explicit old created_time lands in its place.
    fake.append_interest(creds.api_key, "USDT", 1, "0.0001", created_time=START + 1)
    everything = await walk(http, fake, creds, INTEREST, "currency=USDT")
    assert newest_first(everything) and len(everything) == 1502


async def test_seeded_history_is_reproducible(http: aiohttp.ClientSession) -> None:
    pages = []
    for _ in range(2):
        async with FakeKuCoin(seed=42) as fake:
            creds = fake.add_account()
            fake.seed_history(
                creds.api_key, "USDT", borrows=50, repays=50, start_time=START, end_time=END
            )
            data = await page(http, fake, creds, REPAY, "currency=USDT&pageSize=50")
            pages.append(data["items"])
    assert pages[0] == pages[1]
    async with FakeKuCoin(seed=43) as fake:
        creds = fake.add_account()
        fake.seed_history(
            creds.api_key, "USDT", borrows=50, repays=50, start_time=START, end_time=END
        )
        data = await page(http, fake, creds, REPAY, "currency=USDT&pageSize=50")
    assert data["items"] != pages[0]


async def test_dense_seeding_breaks_ties_by_order_number(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", borrows=100, start_time=START, end_time=START + 9)
    items = await walk(http, fake, creds, BORROW, "currency=USDT", page_size=10)
    keys = [(item["createdTime"], item["orderNo"]) for item in items]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == 100


async def test_a_million_records(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    fake.seed_history(creds.api_key, "USDT", interest=1_000_000, start_time=START, end_time=END)
    first = await page(http, fake, creds, INTEREST, "currency=USDT&pageSize=500")
    assert (first["totalNum"], first["totalPage"]) == (1_000_000, 2000)
    last = await page(http, fake, creds, INTEREST, "currency=USDT&pageSize=500&currentPage=2000")
    assert len(last["items"]) == 500
    assert newest_first(first["items"]) and newest_first(last["items"])
    assert first["items"][-1]["createdTime"] > last["items"][0]["createdTime"]
    past = await page(http, fake, creds, INTEREST, "currency=USDT&pageSize=500&currentPage=2001")
    assert past["items"] == []
    # A window in the middle: its first item is the newest record at or before endTime.
    middle = await page(http, fake, creds, INTEREST, "currency=USDT&pageSize=500&currentPage=1000")
    top = middle["items"][0]["createdTime"]
    window = await page(http, fake, creds, INTEREST, f"currency=USDT&pageSize=500&endTime={top}")
    assert window["items"] == middle["items"]
    assert window["totalNum"] == 1_000_000 - 999 * 500
