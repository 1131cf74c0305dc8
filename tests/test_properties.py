"""Property tests (hypothesis): amount and leverage formatting, argument validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from margin_async import BorrowOrder, TimeInForce, ValidationError
from margin_async._endpoints import _params as p
from margin_async._endpoints.borrow import borrow_request
from margin_async._endpoints.leverage import leverage_request
from margin_async._endpoints.repay import repay_request

# Deterministic: the same examples on every run and machine, no example database.
SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=300)

PLAIN = re.compile(r"^\d+(\.\d*[1-9])?$")  # no exponent, no trailing zeros in the fraction
SIZE_IN_BODY = re.compile(rb'"size":([^,}]*)[,}]')

#: Positive finite Decimals with varied digit counts and exponents (incl. > 28 digits),
#: within the SDK's bounds (at most 100 decimal places, below 1E+100).
positive_decimals = st.one_of(
    st.builds(
        lambda digits, exponent: Decimal(digits).scaleb(exponent),
        st.integers(min_value=1, max_value=10**40),
        st.integers(min_value=-40, max_value=40),
    ),
    st.decimals(
        min_value=Decimal("1E-30"),
        max_value=Decimal("1E+30"),
        allow_nan=False,
        allow_infinity=False,
        places=40,
    ),
)


def _size_text(body: bytes) -> str:
    match = SIZE_IN_BODY.search(body)
    assert match, body
    return match.group(1).decode()


def _check_plain(text: str, value: Decimal) -> None:
    assert PLAIN.match(text), text
    assert Decimal(text) == value


@SETTINGS
@given(value=positive_decimals)
@example(value=Decimal("1E+1"))
@example(value=Decimal("1E-8"))
@example(value=Decimal("12345678901234567890123456789012"))
@example(value=Decimal("1.0000000000000000000000000000001"))
@example(value=Decimal("100.000"))
@example(value=Decimal("0.10"))
def test_decimal_size_is_plain_digits(value: Decimal) -> None:
    for request in (
        borrow_request("USDT", value, TimeInForce.IOC).request,
        repay_request("USDT", value).request,
    ):
        text = _size_text(request.body)
        _check_plain(text, value)
        # The body is valid JSON whose number is exactly the value.
        assert json.loads(request.body, parse_float=Decimal, parse_int=Decimal)["size"] == value


@SETTINGS
@given(value=st.integers(min_value=1, max_value=10**60))
def test_int_size(value: int) -> None:
    text = _size_text(borrow_request("USDT", value, "FOK").request.body)
    assert text == str(value)


@SETTINGS
@given(
    value=positive_decimals,
    style=st.sampled_from(["str", "E", "e", "f", "padded"]),
)
def test_numeric_string_size(value: Decimal, style: str) -> None:
    given_text = {
        "str": str(value),
        "E": f"{value:E}",
        "e": f"{value:e}",
        "f": f"{value:f}",
        "padded": f"  {value}\t",
    }[style]
    exact = Decimal(given_text.strip())
    text = _size_text(repay_request("USDT", given_text).request.body)
    _check_plain(text, exact)


@SETTINGS
@given(value=st.floats())
def test_float_size_always_refused(value: float) -> None:
    for build in (
        lambda: borrow_request("USDT", value, "IOC"),  # type: ignore[arg-type]
        lambda: repay_request("USDT", value),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as info:
            build()
        assert info.value.argument == "size"
    with pytest.raises(ValidationError) as info:
        leverage_request(value)  # type: ignore[arg-type]
    assert info.value.argument == "leverage"


@SETTINGS
@given(
    hundredths=st.integers(min_value=101, max_value=10**8),
    trailing=st.integers(min_value=0, max_value=6),
    as_str=st.booleans(),
)
def test_leverage_formatting(hundredths: int, trailing: int, as_str: bool) -> None:
    value = (Decimal(hundredths) / 100).quantize(Decimal(1).scaleb(-2 - trailing))
    body = leverage_request(str(value) if as_str else value).body
    match = re.fullmatch(rb'\{"leverage":"([^"]*)"\}', body)
    assert match, body
    text = match.group(1).decode()
    assert PLAIN.match(text), text
    assert Decimal(text) == value
    assert len(text.partition(".")[2]) <= 2


@SETTINGS
@given(
    whole=st.integers(min_value=1, max_value=10**6),
    extra=st.integers(min_value=1, max_value=10**30),
    places=st.integers(min_value=3, max_value=35),
)
def test_leverage_more_than_two_decimals_refused(whole: int, extra: int, places: int) -> None:
    fraction = Decimal(extra % 10**places or 1).scaleb(-places)
    value = Decimal(whole) + fraction
    if value == value.quantize(Decimal("0.01")):
        return  # the fraction happened to fit in two decimals
    with pytest.raises(ValidationError) as info:
        leverage_request(value)
    assert info.value.argument == "leverage"


@SETTINGS
@given(value=st.decimals(max_value=Decimal(1), allow_nan=False, allow_infinity=False))
def test_leverage_at_most_one_refused(value: Decimal) -> None:
    with pytest.raises(ValidationError) as info:
        leverage_request(value)
    assert info.value.argument == "leverage"


@SETTINGS
@given(text=st.text(max_size=30))
@example(text="ß")
@example(text="ﬀ")
@example(text="ı")
@example(text=" usdt ")
@example(text="1inch")
@example(text="BTC,ETH")
@example(text="\u00a0USDT")
def test_currency_text(text: str) -> None:
    try:
        code = p.currency(text)
    except ValidationError as error:
        assert error.argument == "currency"
        return
    assert re.fullmatch(r"[A-Z0-9]{1,20}", code)
    assert code == text.strip().upper()
    assert text.isascii()  # never a different code than the one typed
    movement = borrow_request(text, "1", "IOC")
    assert movement.request.body.startswith(b'{"currency":"' + code.encode() + b'"')


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.decimals(),
    st.fractions(),
    st.complex_numbers(),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(TimeInForce.IOC),
    st.just(int),
)


@SETTINGS
@given(value=ANYTHING)
@example(value=10)
@example(value=500)
@example(value=9)
@example(value=501)
def test_page_size_anything(value: Any) -> None:
    try:
        result = p.page_size(value)
    except ValidationError as error:
        assert error.argument == "page_size"
        return
    assert type(value) is int and 10 <= result <= 500 and result == value


@SETTINGS
@given(value=ANYTHING)
@example(value=1)
@example(value=0)
def test_current_page_anything(value: Any) -> None:
    try:
        result = p.page_number(value)
    except ValidationError as error:
        assert error.argument == "current_page"
        return
    assert type(value) is int and result == value >= 1


@SETTINGS
@given(value=ANYTHING)
def test_amount_anything(value: Any) -> None:
    try:
        result = p.amount(value)
    except ValidationError as error:
        assert error.argument == "size"
        return
    assert isinstance(value, Decimal | str | int) and not isinstance(value, bool)
    assert result.is_finite() and result > 0


@SETTINGS
@given(value=ANYTHING)
def test_time_anything(value: Any) -> None:
    try:
        result = p.epoch_ms(value, "start_time")
    except ValidationError as error:
        assert error.argument == "start_time"
        return
    assert type(value) is int and result == value >= 10**11


@SETTINGS
@given(value=ANYTHING, is_isolated=ANYTHING)
def test_margin_mode_anything(value: Any, is_isolated: Any) -> None:
    try:
        p.margin_mode(value, is_isolated)
    except ValidationError as error:
        assert error.argument in ("symbol", "is_isolated")


@SETTINGS
@given(
    moment=st.datetimes(min_value=datetime(1973, 3, 4), max_value=datetime(2200, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
@example(moment=datetime(2038, 7, 11, 10, 29, 50, 128000), offset_minutes=0)
def test_aware_datetime_to_exact_ms(moment: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    aware = moment.replace(tzinfo=UTC).astimezone(zone)
    expected = (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    assert p.epoch_ms(aware, "end_time") == expected
    with pytest.raises(ValidationError):
        p.epoch_ms(moment, "end_time")  # naive


@SETTINGS
@given(value=st.integers(min_value=0, max_value=10**11 - 1))
def test_seconds_looking_ints_refused(value: int) -> None:
    with pytest.raises(ValidationError, match="start_time"):
        p.epoch_ms(value, "start_time")


@SETTINGS
@given(order_no=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != ""))
def test_history_query_keeps_values_verbatim(order_no: str) -> None:
    """The signed query holds each value as given (the session encodes the wire copy)."""
    filters = p.HistoryFilter.build(
        ["btc", "eth"],
        currency_required=True,
        is_isolated=False,
        symbol=None,
        order_no=order_no,
        start_time=None,
        end_time=None,
    )
    request = p.HistorySpec("/x", 1, item=BorrowOrder).request(filters, 1, 10)
    assert request.query == (
        ("currency", "BTC,ETH"),
        ("orderNo", order_no.strip()),
        ("currentPage", "1"),
        ("pageSize", "10"),
    )
