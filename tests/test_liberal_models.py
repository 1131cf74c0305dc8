"""Liberal in what is accepted: optional fields never drop a record (DESIGN.md).

Required (a ProtocolError naming the wire field): order numbers, the amounts of a
record, ``orderNo``/``actualSize`` of a money reply, a page's ``items`` and counters.
Optional (``None``, the wire object kept in ``raw``, one warning per model, field and
kind of problem): everything else; ``symbol`` is ``""`` instead of ``None``.
Also: absurd magnitudes refused before conversion, and ``to_dict`` only for models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aioresponses import aioresponses
from helpers import (
    INTEREST_PATH,
    borrow_item,
    capture_logs,
    client,
    creds,
    interest_item,
    ok,
    page,
    repay_item,
    url_re,
)

from margin_async import (
    BorrowOrder,
    BorrowResult,
    Credentials,
    InterestRecord,
    MarginError,
    OrderStatus,
    Page,
    ProtocolError,
    RepayOrder,
    RepayResult,
    ValidationError,
    to_dict,
)
from margin_async import _convert as convert
from margin_async._convert import page_server_time, structure

#: A page of interest history as captured from the live API: no ``data.timestamp``.
LIVE_INTEREST_PAGE = {
    "currentPage": 1,
    "pageSize": 50,
    "totalNum": 2,
    "totalPage": 1,
    "items": [
        {
            "currency": "USDT",
            "dayRatio": "0.000183",
            "interestAmount": "0.00000912",
            "createdTime": 1729656000000,
        },
        {
            "currency": "USDT",
            "dayRatio": "0.000183",
            "interestAmount": "0.00000912",
            "createdTime": 1729652400000,
        },
    ],
}


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    """Each test sees the "logged once" warnings afresh."""
    convert._warned.clear()
    yield
    convert._warned.clear()


def _warnings(records: list[logging.LogRecord], text: str) -> list[str]:
    return [
        r.getMessage() for r in records if r.levelno == logging.WARNING and text in r.getMessage()
    ]


# -- pages ----------------------------------------------------------------------------


def test_live_page_without_timestamp_parses() -> None:
    with capture_logs(logging.WARNING) as records:
        result = structure(LIVE_INTEREST_PAGE, Page[InterestRecord])
        again = structure(LIVE_INTEREST_PAGE, Page[InterestRecord])
    assert result.timestamp is None
    assert [r.interest_amount for r in result.items] == [Decimal("0.00000912")] * 2
    assert all(r.raw is None for r in result.items)  # nothing wrong with the records
    assert result.raw == {k: v for k, v in LIVE_INTEREST_PAGE.items() if k != "items"}
    assert result == again
    assert len(_warnings(records, "timestamp")) == 1
    assert page_server_time(LIVE_INTEREST_PAGE) is None


async def test_live_page_streams_through_the_client(mock: aioresponses) -> None:
    mock.get(url_re(INTEREST_PATH), payload=ok(LIVE_INTEREST_PAGE))
    async with client() as c:
        records = await c.interest_history("USDT").collect()
    assert len(records) == 2


@pytest.mark.parametrize("timestamp", [None, "soon", {}, [], True, 1.5, Decimal("1.5")])
def test_page_timestamp_optional(timestamp: Any) -> None:
    data = page([borrow_item()], timestamp=timestamp)
    result = structure(data, Page[BorrowOrder])
    assert result.timestamp is None
    assert result.raw is not None and result.raw["timestamp"] is data["timestamp"]
    assert len(result.items) == 1


@pytest.mark.parametrize("field", ["currentPage", "pageSize", "totalNum", "totalPage", "items"])
@pytest.mark.parametrize("value", ["missing", None, "x", {}, [], True])
def test_page_counters_and_items_required(field: str, value: Any) -> None:
    data = page([borrow_item()])
    if value == "missing":
        del data[field]
    else:
        data[field] = value
    if field == "items" and value == []:
        return  # an empty page is a page
    with pytest.raises(ProtocolError, match=field):
        structure(data, Page[BorrowOrder])


def test_one_odd_record_does_not_drop_the_others() -> None:
    items = [borrow_item(orderNo=str(i)) for i in range(5)]
    items[2] = borrow_item(orderNo="2", status=None, createdTime="yesterday")
    result = structure(page(items), Page[BorrowOrder])
    assert [o.order_no for o in result.items] == ["0", "1", "2", "3", "4"]
    odd = result.items[2]
    assert odd.status is None and odd.created_time is None and odd.created_at is None
    assert odd.raw == items[2]
    assert all(o.raw is None for i, o in enumerate(result.items) if i != 2)
    assert result.raw is None


def test_required_field_of_an_item_is_named_with_its_index() -> None:
    items = [borrow_item(orderNo=str(i)) for i in range(3)]
    del items[1]["actualSize"]
    with pytest.raises(ProtocolError, match=r"items\[1\]\.actualSize"):
        structure(page(items), Page[BorrowOrder])


# -- records --------------------------------------------------------------------------

OPTIONAL = [
    (BorrowOrder, borrow_item, "currency", "currency"),
    (BorrowOrder, borrow_item, "status", "status"),
    (BorrowOrder, borrow_item, "createdTime", "created_time"),
    (RepayOrder, repay_item, "currency", "currency"),
    (RepayOrder, repay_item, "status", "status"),
    (RepayOrder, repay_item, "createdTime", "created_time"),
    (InterestRecord, interest_item, "currency", "currency"),
    (InterestRecord, interest_item, "dayRatio", "day_ratio"),
    (InterestRecord, interest_item, "createdTime", "created_time"),
]
REQUIRED = [
    (BorrowOrder, borrow_item, "orderNo"),
    (BorrowOrder, borrow_item, "size"),
    (BorrowOrder, borrow_item, "actualSize"),
    (RepayOrder, repay_item, "orderNo"),
    (RepayOrder, repay_item, "size"),
    (RepayOrder, repay_item, "principal"),
    (RepayOrder, repay_item, "interest"),
    (InterestRecord, interest_item, "interestAmount"),
]
ODD = ["missing", None, {}, [], True, 1.5, "not-a-number-or-status"]


@pytest.mark.parametrize(("model", "make", "wire", "name"), OPTIONAL)
@pytest.mark.parametrize("odd", ODD)
def test_optional_field_becomes_none(
    model: type, make: Any, wire: str, name: str, odd: Any
) -> None:
    item = make()
    if odd == "missing":
        del item[wire]
    else:
        item[wire] = odd
    if wire == "currency" and isinstance(odd, str):
        return  # any string is a currency code
    if wire == "status" and isinstance(odd, str):
        return  # an unknown status string is kept (OrderStatus._missing_)
    with capture_logs(logging.WARNING) as records:
        record = structure(item, model)
    assert getattr(record, name) is None
    assert record.raw == item
    assert isinstance(record, model)
    # The record is equal to one built without the field: raw is not part of equality.
    assert record == attrs.evolve(structure(make(), model), **{name: None})
    assert len(_warnings(records, f"{model.__name__}.{name}")) == 1


@pytest.mark.parametrize(("model", "make", "wire"), REQUIRED)
@pytest.mark.parametrize("odd", ODD)
def test_required_field_is_a_protocol_error_naming_it(
    model: type, make: Any, wire: str, odd: Any
) -> None:
    if wire == "orderNo" and odd == ODD[-1]:
        return  # any string is an order number
    item = make()
    if odd == "missing":
        del item[wire]
    else:
        item[wire] = odd
    with pytest.raises(ProtocolError, match=wire):
        structure(item, model)
    with pytest.raises(ProtocolError, match=rf"items\[0\]\.{wire}"):
        structure(page([item]), Page[model])  # type: ignore[valid-type]


def test_warned_once_per_model_field_and_kind() -> None:
    items = [borrow_item(orderNo=str(i), status=None) for i in range(50)]
    items += [borrow_item(orderNo=f"m{i}") for i in range(50)]
    for item in items[50:]:
        del item["status"]
    with capture_logs(logging.WARNING) as records:
        structure(page(items), Page[BorrowOrder])
        structure(page(items), Page[BorrowOrder])
        structure(page([repay_item(status=None)]), Page[RepayOrder])
    warned = _warnings(records, ".status")
    assert len(warned) == 3, warned  # BorrowOrder null, BorrowOrder missing, RepayOrder null
    assert sum("BorrowOrder.status" in w for w in warned) == 2


@pytest.mark.parametrize(
    ("wire", "kept", "odd"),
    [
        (None, "", False),
        ("", "", False),
        ("DEFAULT", "DEFAULT", False),
        ("BTC-USDT", "BTC-USDT", False),
        ("missing", "", True),
        ([], "", True),
        ({}, "", True),
        (True, "", True),
        (1.5, "", True),
    ],
)
def test_symbol_always_a_string(wire: Any, kept: str, odd: bool) -> None:
    for make, model in ((borrow_item, BorrowOrder), (repay_item, RepayOrder)):
        item = make(symbol=wire)
        if wire == "missing":
            del item["symbol"]
        record = structure(item, model)
        assert record.symbol == kept
        assert (record.raw is not None) is odd


def test_extra_fields_never_matter() -> None:
    item = borrow_item(extra={"a": [1]}, raw="not ours", items=[1])
    record = structure(item, BorrowOrder)
    assert record == structure(borrow_item(), BorrowOrder)
    assert record.raw is None


# -- money replies --------------------------------------------------------------------


def test_repay_reply_without_timestamp() -> None:
    data = {"orderNo": "1", "actualSize": "10"}
    result = structure(data, RepayResult)
    assert result == RepayResult("1", Decimal(10), None)
    assert result.time is None
    assert result.raw == data


@pytest.mark.parametrize("model", [BorrowResult, RepayResult])
@pytest.mark.parametrize("wire", ["orderNo", "actualSize"])
@pytest.mark.parametrize("odd", ODD)
def test_money_reply_required(model: type, wire: str, odd: Any) -> None:
    if wire == "orderNo" and odd == ODD[-1]:
        return  # any string is an order number
    data: dict[str, Any] = {"orderNo": "1", "actualSize": "10", "timestamp": 1729657580449}
    if odd == "missing":
        del data[wire]
    else:
        data[wire] = odd
    with pytest.raises(ProtocolError, match=wire):
        structure(data, model)


def test_status_kept_or_none() -> None:
    assert structure(borrow_item(status="SUCCESS"), BorrowOrder).status is OrderStatus.SUCCESS
    assert structure(borrow_item(status=7), BorrowOrder).status is None


# -- absurd magnitudes: refused before any conversion, cheaply -------------------------
# Each of these took many seconds (or forever) on the old code: a test that completes
# is the proof; nothing here measures time.

HUGE = [
    Decimal("1E+1000000"),  # JSON 1e1000000 with parse_float=Decimal
    Decimal("-1E+1000000"),
    Decimal("9.99E+999999999"),
    Decimal("1E+19"),
    10**19,
    -(10**19),
    10**4000,  # the most digits json.loads will make an int of
    "1" + "0" * 19,
    "9" * 4000,
    "0" * 100_000 + "1" * 30,
]


@pytest.mark.parametrize("huge", HUGE, ids=range(len(HUGE)))
@pytest.mark.parametrize("field", ["totalPage", "currentPage", "totalNum", "pageSize"])
def test_absurd_page_counter_refused(huge: Any, field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        structure({**page([borrow_item()]), field: huge}, Page[BorrowOrder])


@pytest.mark.parametrize("huge", HUGE, ids=range(len(HUGE)))
def test_absurd_time_becomes_none_with_a_warning(huge: Any) -> None:
    with capture_logs(logging.WARNING) as records:
        record = structure(borrow_item(createdTime=huge), BorrowOrder)
        result = structure({"orderNo": "1", "actualSize": "1", "timestamp": huge}, RepayResult)
        served = structure({**page([]), "timestamp": huge}, Page[BorrowOrder])
    assert record.created_time is None and record.raw is not None
    assert result.timestamp is None
    assert served.timestamp is None
    assert page_server_time({**page([]), "timestamp": huge}) is None
    assert _warnings(records, "created_time")
    assert all("range" in w for w in _warnings(records, "created_time"))


def test_json_wire_huge_numbers_end_as_protocol_error_or_none() -> None:
    body = json.dumps(page([borrow_item(createdTime="T")], total_page=1))
    data = json.loads(body.replace('"T"', "1e1000000"), parse_float=Decimal)
    assert structure(data, Page[BorrowOrder]).items[0].created_time is None
    data = json.loads(body.replace('"totalPage": 1', '"totalPage": 1e1000000'), parse_float=Decimal)
    with pytest.raises(ProtocolError, match="totalPage"):
        structure(data, Page[BorrowOrder])


def test_largest_accepted_integer() -> None:
    limit = 10**18
    for value in (limit, str(limit), Decimal(limit), Decimal("1E+18"), -limit):
        assert structure(borrow_item(createdTime=value), BorrowOrder).created_time == int(value)


@pytest.mark.parametrize(
    "text", ["1e999999999", "-1E+999999999", "1e-999999999", "9" * 100_000, "1E+999999"]
)
def test_absurd_amounts_stay_decimals_unexpanded(text: str) -> None:
    value = Decimal(text)
    for data, model in (
        (borrow_item(size=text, actualSize=value), BorrowOrder),
        (repay_item(size=text, principal=value, interest=text), RepayOrder),
        (interest_item(interestAmount=text, dayRatio=value), InterestRecord),
        ({"orderNo": "1", "actualSize": value}, BorrowResult),
    ):
        record = structure(data, model)
        assert record.raw is None
        hash(record)  # hashing an amount must not expand it either
        to_dict(record)
    assert structure(borrow_item(size=text), BorrowOrder).size.as_tuple() == value.as_tuple()
    assert to_dict(structure(borrow_item(size=text), BorrowOrder))["size"] == str(value)


# -- to_dict: models only --------------------------------------------------------------


def test_to_dict_refuses_credentials() -> None:
    secret_holder = creds()
    with pytest.raises(ValidationError) as info:
        to_dict(secret_holder)
    message = str(info.value)
    assert "Credentials" in message
    assert secret_holder.api_secret not in message
    assert secret_holder.api_passphrase not in message
    assert isinstance(info.value, MarginError)
    assert isinstance(secret_holder, Credentials)


@pytest.mark.parametrize("obj", [None, {"a": 1}, "text", 5, object(), OrderStatus.SUCCESS])
def test_to_dict_refuses_anything_but_a_model(obj: Any) -> None:
    with pytest.raises(ValidationError, match="to_dict"):
        to_dict(obj)


def test_to_dict_of_every_model() -> None:
    order = structure(borrow_item(status=None), BorrowOrder)
    assert to_dict(order)["status"] is None
    assert "raw" not in to_dict(order)
    assert to_dict(RepayResult("1", Decimal("1.0"), None)) == {
        "order_no": "1",
        "actual_size": "1.0",
        "timestamp": None,
    }
    assert to_dict(BorrowResult("1", Decimal(2)))["actual_size"] == "2"
    assert to_dict(structure(interest_item(), InterestRecord))["day_ratio"] == "0.000123"
    dumped = to_dict(structure(page([borrow_item()]), Page[BorrowOrder]))
    assert dumped["items"] == [to_dict(structure(borrow_item(), BorrowOrder))]
    assert dumped["timestamp"] == 1729657580449
