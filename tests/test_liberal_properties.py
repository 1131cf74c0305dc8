"""Property test (hypothesis): no odd field drops a record, no missing identity passes.

Each model's example wire payload is mutated, field by field: the field deleted, set to
``null``, its type changed (string <-> number, object, list, bool, absurd magnitudes),
or unknown fields added. A required field that no longer reads is a ``ProtocolError``
whose message names it (in wire spelling); any other change still yields the record,
with the field ``None`` (``symbol``: ``""``), the wire object in ``raw`` and a warning.
The expected outcome is computed here from the rules of DESIGN.md, not from the SDK.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from helpers import borrow_item, capture_logs, interest_item, page, repay_item
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_async import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    OrderStatus,
    Page,
    ProtocolError,
    RepayOrder,
    RepayResult,
)
from margin_async import _convert as convert
from margin_async._convert import structure

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=150)

LIMIT = 10**18  # integers beyond this, in absolute value, are refused unconverted

#: model -> (example payload, {wire name: (python name, kind, required)})
FIELDS: dict[type, dict[str, tuple[str, str, bool]]] = {
    BorrowResult: {
        "orderNo": ("order_no", "str", True),
        "actualSize": ("actual_size", "decimal", True),
    },
    RepayResult: {
        "orderNo": ("order_no", "str", True),
        "actualSize": ("actual_size", "decimal", True),
        "timestamp": ("timestamp", "int", False),
    },
    BorrowOrder: {
        "orderNo": ("order_no", "str", True),
        "symbol": ("symbol", "symbol", False),
        "currency": ("currency", "str", False),
        "size": ("size", "decimal", True),
        "actualSize": ("actual_size", "decimal", True),
        "status": ("status", "status", False),
        "createdTime": ("created_time", "int", False),
    },
    RepayOrder: {
        "orderNo": ("order_no", "str", True),
        "symbol": ("symbol", "symbol", False),
        "currency": ("currency", "str", False),
        "size": ("size", "decimal", True),
        "principal": ("principal", "decimal", True),
        "interest": ("interest", "decimal", True),
        "status": ("status", "status", False),
        "createdTime": ("created_time", "int", False),
    },
    InterestRecord: {
        "currency": ("currency", "str", False),
        "dayRatio": ("day_ratio", "decimal", False),
        "interestAmount": ("interest_amount", "decimal", True),
        "createdTime": ("created_time", "int", False),
    },
}
PAGE_FIELDS = {
    "currentPage": ("current_page", "int", True),
    "pageSize": ("page_size", "int", True),
    "totalNum": ("total_num", "int", True),
    "totalPage": ("total_page", "int", True),
    "timestamp": ("timestamp", "int", False),
}
EXAMPLES: dict[type, dict[str, Any]] = {
    BorrowResult: {"orderNo": "148329430000000001", "actualSize": "10"},
    RepayResult: {
        "orderNo": "148329430000000002",
        "actualSize": "10.5",
        "timestamp": 1729657580449,
    },
    BorrowOrder: borrow_item(symbol="BTC-USDT"),
    RepayOrder: repay_item(),
    InterestRecord: interest_item(),
}

# -- what a value should become, from the rules alone ------------------------------------


class Bad(Exception):
    """The value does not read as the field's kind."""


def expected(kind: str, value: Any) -> Any:
    """What ``value`` on the wire becomes for a field of ``kind``, or raise Bad."""
    if kind == "symbol" and value is None:
        return ""  # the exchange's own cross margin: not a problem
    if kind in ("str", "symbol"):
        if isinstance(value, str):
            return value
        if type(value) is int:
            return str(value)
        raise Bad
    if kind == "status":
        if isinstance(value, str):
            return OrderStatus(value)
        raise Bad
    if kind == "decimal":
        if type(value) is int or isinstance(value, Decimal):
            number = Decimal(value)
        elif isinstance(value, str):
            try:
                number = Decimal(value)
            except InvalidOperation:
                raise Bad from None
        else:
            raise Bad
        if not number.is_finite():
            raise Bad
        return number
    assert kind == "int"
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value.lstrip("0")) > 19:
            raise Bad
        number = int(value)
    elif isinstance(value, Decimal) and value.is_finite():
        if value.is_zero():
            return 0
        if value.adjusted() > 18 or value != value.to_integral_value():
            raise Bad
        number = int(value)
    else:
        raise Bad
    if abs(number) > LIMIT:
        raise Bad
    return number


# -- mutations ------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, max_value=10**9),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=4,
)
ABSURD = [
    Decimal("1E+1000000"),
    Decimal("-1E+1000000"),
    Decimal("1E+999999999"),
    Decimal("1E-999999999"),
    Decimal("0E+1000000"),
    10**4000,
    "9" * 4000,
    "1e999999999",
    "NaN",
    "-Infinity",
]


def retyped(value: Any) -> st.SearchStrategy[Any]:
    """Another type for ``value``: string <-> number, object, list, bool, absurd."""
    if isinstance(value, str):
        try:
            as_number = Decimal(value)
        except InvalidOperation:
            swapped: st.SearchStrategy[Any] = st.integers() | st.decimals(allow_nan=False)
        else:
            swapped = st.sampled_from(
                [as_number, int(as_number)] if as_number % 1 == 0 else [as_number]
            )
    elif isinstance(value, int | Decimal):
        swapped = st.sampled_from([str(value), f"{value}x", ""])
    else:
        swapped = st.text(max_size=8)
    return st.one_of(
        swapped,
        st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        st.lists(json_values, max_size=3),
        st.booleans(),
        st.sampled_from(ABSURD),
    )


MISSING = object()


@st.composite
def mutated(draw: st.DrawFn, example: dict[str, Any]) -> dict[str, Any]:
    """``example`` with one to three of its fields changed, and maybe unknown fields."""
    data = dict(example)
    for wire in draw(st.lists(st.sampled_from(sorted(example)), min_size=1, max_size=3)):
        how = draw(st.sampled_from(["delete", "null", "retype", "retype"]))
        if how == "delete":
            data.pop(wire, None)
        elif how == "null":
            data[wire] = None
        else:
            data[wire] = draw(retyped(example[wire]))
    known = set(example) | {"items"}
    extra = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in known), json_values, max_size=3
        )
    )
    data.update(extra)
    return data


def check_record(
    model: type, fields: dict[str, tuple[str, str, bool]], data: dict[str, Any], record: Any
) -> bool:
    """Assert ``record`` is what ``data`` should give; return whether ``raw`` is expected."""
    odd = False
    for wire, (name, kind, required) in fields.items():
        value = data.get(wire, MISSING)
        try:
            if value is MISSING:
                raise Bad
            want = expected(kind, value)
        except Bad:
            assert not required, (wire, value)
            want = "" if kind == "symbol" else None
            odd = True
        got = getattr(record, name)
        assert got == want, (wire, value, got)
        if isinstance(want, Decimal):
            assert got.as_tuple() == want.as_tuple()  # exact: nothing rounded or rescaled
    return odd


def broken_required(fields: dict[str, tuple[str, str, bool]], data: dict[str, Any]) -> list[str]:
    broken = []
    for wire, (_, kind, required) in fields.items():
        if not required:
            continue
        value = data.get(wire, MISSING)
        try:
            if value is MISSING:
                raise Bad
            expected(kind, value)
        except Bad:
            broken.append(wire)
    return broken


def names(message: str, wires: list[str], prefix: str = "") -> bool:
    return any(re.search(rf"{re.escape(prefix)}\.{wire}\b", message) for wire in wires)


# -- the properties ---------------------------------------------------------------------


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.__name__)
@SETTINGS
@given(data=st.data())
def test_mutated_record(model: type, data: st.DataObject) -> None:
    convert._warned.clear()
    wire = data.draw(mutated(EXAMPLES[model]))
    fields = FIELDS[model]
    broken = broken_required(fields, wire)
    with capture_logs(logging.WARNING) as records:
        if broken:
            with pytest.raises(ProtocolError) as info:
                structure(wire, model)
            assert names(str(info.value), broken), (str(info.value), broken)
            return
        record = structure(wire, model)
    assert type(record) is model
    odd = check_record(model, fields, wire, record)
    assert (record.raw is wire) is odd
    if odd:
        assert any(f"{model.__name__}." in r.getMessage() for r in records)
    hash(record)


ITEM_MODELS = [BorrowOrder, RepayOrder, InterestRecord]


@pytest.mark.parametrize("item", ITEM_MODELS, ids=lambda m: m.__name__)
@SETTINGS
@given(data=st.data())
def test_mutated_page(item: type, data: st.DataObject) -> None:
    convert._warned.clear()
    example = page([EXAMPLES[item], EXAMPLES[item], EXAMPLES[item]], total_page=1)
    target = data.draw(st.sampled_from(["page", "item", "items"]))
    wire = dict(example)
    where = 0
    if target == "page":
        wire = data.draw(mutated({k: v for k, v in example.items() if k != "items"}))
        wire["items"] = example["items"]
    elif target == "item":
        where = data.draw(st.integers(min_value=0, max_value=2))
        wire["items"] = list(example["items"])
        wire["items"][where] = data.draw(mutated(EXAMPLES[item]))
    else:
        wire["items"] = data.draw(
            st.sampled_from([MISSING, None, "", "[]", 0, True])
            | st.dictionaries(st.text(max_size=4), json_values, max_size=2)
        )
        if wire["items"] is MISSING:
            del wire["items"]
    page_type = Page[item]  # type: ignore[valid-type]

    if target == "items":
        with pytest.raises(ProtocolError, match=r"\.items\b"):
            structure(wire, page_type)
        return
    broken_page = broken_required(PAGE_FIELDS, wire)
    broken_item = broken_required(FIELDS[item], wire["items"][where])
    if broken_page or broken_item:
        with pytest.raises(ProtocolError) as info:
            structure(wire, page_type)
        message = str(info.value)
        assert names(message, broken_page) or names(message, broken_item, f"items[{where}]")
        return
    result = structure(wire, page_type)
    assert len(result.items) == 3
    page_odd = check_record(Page, PAGE_FIELDS, wire, result)
    if page_odd:
        assert result.raw == {k: v for k, v in wire.items() if k != "items"}
    else:
        assert result.raw is None
    for index, record in enumerate(result.items):
        odd = check_record(item, FIELDS[item], wire["items"][index], record)
        assert (record.raw is wire["items"][index]) is odd
