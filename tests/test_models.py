"""Models and the converter: liberal in what is accepted, exact, frozen."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aioresponses import aioresponses
from helpers import (
    BORROW_PATH,
    borrow_item,
    capture_logs,
    client,
    interest_item,
    ok,
    page,
    repay_item,
    url_re,
)

from margin_async import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    OrderStatus,
    Page,
    ProtocolError,
    RepayOrder,
    RepayResult,
    TimeInForce,
)
from margin_async import _convert as convert
from margin_async._convert import structure, to_dict, wire_name


def _borrow_order(**overrides: Any) -> BorrowOrder:
    return structure(borrow_item(**overrides), BorrowOrder)


@pytest.mark.parametrize(
    ("wire", "kept"),
    [
        (None, ""),
        ("", ""),
        ("DEFAULT", "DEFAULT"),
        ("BTC-USDT", "BTC-USDT"),
        ("btc-usdt", "btc-usdt"),
    ],
)
def test_symbol(wire: str | None, kept: str) -> None:
    assert _borrow_order(symbol=wire).symbol == kept
    assert structure(repay_item(symbol=wire), RepayOrder).symbol == kept


@pytest.mark.parametrize("text", ["0.00000001", "12345678.12345678", "1", "0.10", "1E+3", "-0"])
def test_amounts_exact(text: str) -> None:
    exact = Decimal(text).as_tuple()  # digits and exponent: nothing rounded or re-scaled
    order = _borrow_order(size=text, actualSize=text)
    assert order.size.as_tuple() == order.actual_size.as_tuple() == exact
    repay = structure(repay_item(size=text, principal=text, interest=text), RepayOrder)
    assert {repay.size.as_tuple(), repay.principal.as_tuple(), repay.interest.as_tuple()} == {exact}
    record = structure(interest_item(dayRatio=text, interestAmount=text), InterestRecord)
    assert record.day_ratio.as_tuple() == record.interest_amount.as_tuple() == exact


def test_amount_as_json_integer() -> None:
    assert _borrow_order(size=10, actualSize=0).size == Decimal(10)


def test_numeric_strings_for_ints_and_ints_for_strings() -> None:
    order = _borrow_order(createdTime="1729657580449", orderNo=148329430000000001)
    assert order.created_time == 1729657580449
    assert order.order_no == "148329430000000001"
    assert _borrow_order(createdTime=Decimal("1729657580449")).created_time == 1729657580449


def test_unknown_status_kept() -> None:
    data = page(
        [
            borrow_item(orderNo="a", status="SUCCESS"),
            borrow_item(orderNo="b", status="PARTIALLY_FILLED_MODELS_TEST"),
            borrow_item(orderNo="c", status="PARTIALLY_FILLED_MODELS_TEST"),
        ],
        total_page=1,
    )
    with capture_logs(logging.WARNING) as records:
        result = structure(data, Page[BorrowOrder])
    assert [o.order_no for o in result.items] == ["a", "b", "c"]
    known, unknown, _ = (o.status for o in result.items)
    assert known is OrderStatus.SUCCESS and known.known
    assert unknown.value == "PARTIALLY_FILLED_MODELS_TEST"
    assert unknown.known is False
    assert unknown == "PARTIALLY_FILLED_MODELS_TEST"
    assert isinstance(unknown, OrderStatus)
    assert to_dict(result.items[1])["status"] == "PARTIALLY_FILLED_MODELS_TEST"
    # Logged once, however many records carry it.
    warnings = [r for r in records if "PARTIALLY_FILLED_MODELS_TEST" in r.getMessage()]
    assert len(warnings) == 1


def test_known_statuses() -> None:
    for status in ("PENDING", "SUCCESS", "FAILED"):
        value = _borrow_order(status=status).status
        assert value is OrderStatus[status]
        assert value.known


def test_extra_fields_tolerated() -> None:
    item = borrow_item(newField="x", nested={"a": [1, 2]}, leverage=None)
    data = page([item], total_page=1)
    data["somethingNew"] = True
    result = structure(data, Page[BorrowOrder])
    assert len(result.items) == 1
    assert structure({"orderNo": "1", "actualSize": "2", "extra": 1}, BorrowResult) == (
        BorrowResult("1", Decimal("2"))
    )


def test_created_at_is_utc_aware() -> None:
    expected = datetime(2024, 10, 23, 4, 26, 20, 449000, tzinfo=UTC)
    for model in (
        _borrow_order(),
        structure(repay_item(), RepayOrder),
        structure(interest_item(), InterestRecord),
    ):
        assert model.created_at == expected
        assert model.created_at.tzinfo is not None
        assert model.created_at.utcoffset() == UTC.utcoffset(None)
    result = RepayResult("1", Decimal(1), 1729657580449)
    assert result.time == expected


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (BorrowResult("1", Decimal(1)), "order_no"),
        (RepayResult("1", Decimal(1), 1), "timestamp"),
        (BorrowOrder("1", "", "USDT", Decimal(1), Decimal(1), OrderStatus.SUCCESS, 1), "size"),
        (
            RepayOrder("1", "", "USDT", Decimal(1), Decimal(1), Decimal(0), OrderStatus.FAILED, 1),
            "interest",
        ),
        (InterestRecord("USDT", Decimal(1), Decimal(1), 1), "currency"),
        (Page((), 1, 10, 0, 0, 1), "items"),
    ],
)
def test_models_frozen(obj: Any, field: str) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(obj, field, None)
    # Slotted: no stray attributes either.
    with pytest.raises((AttributeError, TypeError)):
        obj.unexpected = 1


def test_wire_names() -> None:
    assert wire_name("created_time") == "createdTime"
    assert wire_name("interest_amount") == "interestAmount"
    assert wire_name("currency") == "currency"


def test_to_dict() -> None:
    assert to_dict(_borrow_order()) == {
        "order_no": "148329430000000001",
        "symbol": "",
        "currency": "USDT",
        "size": "10",
        "actual_size": "10",
        "status": "SUCCESS",
        "created_time": 1729657580449,
    }


def test_time_in_force_values() -> None:
    assert [t.value for t in TimeInForce] == ["IOC", "FOK"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"orderNo": "1"}, "actualSize"),
        ({"actualSize": "1"}, "orderNo"),
        ({"orderNo": "1", "actualSize": "x"}, "actualSize"),
        ({"orderNo": None, "actualSize": "1"}, "orderNo"),
    ],
)
def test_structure_errors_name_the_wire_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        structure(data, BorrowResult)


async def test_unknown_status_not_dropped_through_client(mock: aioresponses) -> None:
    items = [borrow_item(orderNo=str(i), status="STATUS_FROM_CLIENT_TEST") for i in range(3)]
    mock.get(url_re(BORROW_PATH), payload=ok(page(items, total_page=1)))
    async with client() as c:
        records = await c.borrow_history("USDT").collect()
    assert [r.order_no for r in records] == ["0", "1", "2"]
    assert all(not r.status.known for r in records)


# -- the generated hot path agrees with the cattrs converter -------------------------


def _variants(item: dict[str, object]) -> list[object]:
    """The item itself and, per field, it missing and with odd but plausible values."""
    odd: list[object] = [
        None,
        True,
        0,
        7,
        -1,
        "",
        "0",
        "12",
        "1.50",
        "1E+3",
        "NaN",
        "Infinity",
        "abc",
        Decimal("2.5"),
        Decimal("3"),
        [],
        {},
        "SUCCESS",
        "FROZEN",
        1729657580449,
        10**18,
        10**18 + 1,
        -(10**19),
        "1" + "0" * 18,
        "1" + "0" * 19,
        Decimal("1E+18"),
        Decimal("1E+19"),
        Decimal("1E+1000000"),
        Decimal("0E+1000000"),
        Decimal("1E+999999999"),
        "1e999999999",
    ]
    out: list[object] = [item, {**item, "extra": 1}, [], None, "x"]
    for key in item:
        out.append({k: v for k, v in item.items() if k != key})
        out.extend({**item, key: value} for value in odd)
    return out


@pytest.mark.parametrize(
    ("model", "item"),
    [
        (BorrowOrder, borrow_item()),
        (RepayOrder, repay_item()),
        (InterestRecord, interest_item()),
        (BorrowResult, {"orderNo": "1", "actualSize": "10"}),
        (RepayResult, {"orderNo": "1", "actualSize": "10", "timestamp": 1729657580449}),
    ],
)
def test_hot_structure_functions_agree_with_cattrs(model: type, item: dict[str, object]) -> None:
    hot = convert._HOT[model]
    for data in _variants(item):
        try:
            expected: object = convert._reference.structure(data, model)
        except Exception:
            expected = "error"
        try:
            got: object = hot(data)
        except Exception:
            got = "error"
        assert got == expected, data
        if expected != "error":
            assert type(got) is model
            assert hash(got) == hash(expected)


def test_hot_page_function_agrees_with_cattrs() -> None:
    page_type = Page[BorrowOrder]
    good = page([borrow_item(orderNo=str(i)) for i in range(3)])
    for data in [
        good,
        {**good, "items": "x"},
        {**good, "items": [None]},
        {**good, "totalPage": "2"},
    ]:
        try:
            expected: object = convert._reference.structure(data, page_type)
        except Exception:
            expected = "error"
        try:
            got: object = convert._HOT[page_type](data)
        except Exception:
            got = "error"
        assert got == expected, data


@pytest.mark.parametrize(
    ("model", "item"),
    [
        (BorrowOrder, borrow_item()),
        (RepayOrder, repay_item()),
        (InterestRecord, interest_item()),
        (BorrowResult, {"orderNo": "1", "actualSize": "10"}),
        (RepayResult, {"orderNo": "1", "actualSize": "10", "timestamp": 1729657580449}),
        (Page[BorrowOrder], page([borrow_item()])),
    ],
)
def test_tolerant_path_agrees_with_the_hot_path(model: Any, item: dict[str, object]) -> None:
    """Where the hot function succeeds, structure() gives the same record (raw None);
    where it fails, the record comes back with ``raw`` set, or a ProtocolError."""
    hot = convert._HOT[model]
    for data in _variants(item):
        try:
            fast: object = hot(data)
        except Exception:
            fast = None
        try:
            got: Any = structure(data, model)
        except ProtocolError:
            assert fast is None, data
            continue
        if fast is not None:
            assert got == fast and got.raw is None, data
        else:
            assert got.raw is not None, data


def test_generated_decoders_show_their_source() -> None:
    """Every hot function's source is in linecache: inspect and tracebacks read it."""
    import inspect
    import traceback

    for cls, function in convert._HOT.items():
        source = inspect.getsource(function)
        assert source.startswith(f"def {function.__name__}(o):"), cls
        assert "Decimal" in source or "int" in source
    bad = page([borrow_item(size="not a number")])
    try:
        convert._HOT[Page[BorrowOrder]](bad)
    except Exception as exc:  # Decimal's InvalidOperation
        frames = traceback.extract_tb(exc.__traceback__)
        shown = "".join(traceback.format_tb(exc.__traceback__))
    else:  # pragma: no cover
        pytest.fail("a bad amount went through the hot function")
    generated = [f for f in frames if f.filename.startswith("<margin_async generated")]
    assert generated and generated[-1].line == "r_f_size = Decimal(r_w_size)"
    assert "r_f_size = Decimal(r_w_size)" in shown


def test_hot_records_are_exactly_the_model() -> None:
    """Built through a slot-compatible builder, they are the model itself, raw unset."""
    got = structure(page([borrow_item(orderNo="1"), borrow_item(orderNo="2")]), Page[BorrowOrder])
    assert type(got) is Page
    assert [type(item) for item in got.items] == [BorrowOrder, BorrowOrder]
    assert got.raw is None and got.items[0].raw is None
    assert got.items[0] == BorrowOrder(
        "1", "", "USDT", Decimal("10"), Decimal("10"), OrderStatus.SUCCESS, 1729657580449
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        got.items[0].size = Decimal(1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("size", "actual"), [("10", "10"), ("10", "10.0"), ("1E+1", "10"), ("10", 10), (10, "10")]
)
def test_amounts_of_one_record_are_read_each_exactly(size: object, actual: object) -> None:
    """An amount with the same wire text as an earlier one shares its Decimal; any other
    is read from its own text (10 and 10.0 are equal, not the same)."""
    order = _borrow_order(size=size, actualSize=actual)
    assert str(order.size) == str(Decimal(size))  # type: ignore[arg-type]
    assert str(order.actual_size) == str(Decimal(actual))  # type: ignore[arg-type]
    repay = structure(repay_item(size=size, principal=actual, interest=size), RepayOrder)
    assert str(repay.principal) == str(Decimal(actual))  # type: ignore[arg-type]
    assert str(repay.interest) == str(Decimal(size))  # type: ignore[arg-type]
