"""The reply decoder: the `fast` extra (msgspec) gives exactly what the standard library
gives, for any body; a number no Decimal can hold is a ProtocolError, not a crash."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_async import _envelope as envelope
from margin_async._envelope import decode, loads, loads_stdlib
from margin_async._errors import ProtocolError

pytest.importorskip("msgspec")


@pytest.fixture(autouse=True)
def _fast_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast extra's decoder, whatever another test left installed."""
    monkeypatch.setattr(envelope, "_fast_loads", envelope._fast_decoder())


def _exactly(value: Any) -> Any:
    """``value`` with every type spelled out (Decimal('1.0') vs Decimal('1.00') vs 1)."""
    if isinstance(value, dict):
        return ("dict", [(k, _exactly(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_exactly(v) for v in value])
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


def _outcome(decoder: Any, body: bytes) -> Any:
    try:
        return _exactly(decoder(body))
    except Exception as exc:
        return ("raised", type(exc))


def _same(body: bytes) -> None:
    assert envelope._fast_loads is not None
    assert _outcome(loads, body) == _outcome(loads_stdlib, body), body


def _number() -> st.SearchStrategy[str]:
    digits = st.integers(min_value=0, max_value=10**40).map(str)
    return st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),  # past 64 bits too
        st.builds(lambda i, f: f"{i}.{f}", digits, digits),
        st.builds(lambda i, e: f"{i}e{e}", digits, st.integers(-400, 400)),
        st.builds(lambda i, f, e: f"-{i}.{f}E+{e}", digits, digits, st.integers(0, 30)),
        st.sampled_from(["-0", "-0.0", "0E-10", "1e999999999", "NaN", "Infinity", "-Infinity"]),
    )


def _text(value: Any, ascii_only: bool) -> str:
    if isinstance(value, dict):
        inner = ",".join(f"{_text(k, ascii_only)}:{_text(v, ascii_only)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v, ascii_only) for v in value) + "]"
    if isinstance(value, tuple):  # a number, as its JSON text
        return str(value[0])
    return json.dumps(value, ensure_ascii=ascii_only)


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.text(st.characters(codec=None), max_size=12),  # lone surrogates included
    _number().map(lambda text: (text,)),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_values, st.booleans(), st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_fast_decoder_agrees_with_the_standard_library(
    value: Any, ascii_only: bool, encoding: str
) -> None:
    _same(_text(value, ascii_only).encode(encoding, "surrogatepass"))


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"200000","data":{"items":[{"size":"1.50","n":18446744073709551616}]}}',
        b'{"a":-9223372036854775809,"b":1' + b"0" * 40 + b'.5,"c":1E5,"d":-0.0}',
        b'{"a":' + b"1" * 4300 + b"}",
        b'{"a":' + b"1" * 4301 + b"}",  # int(): more than 4300 digits
        b'{"a":1e99999999999999999999}',  # no Decimal holds it
        b'{"a":1,"a":2,"b":[1,{"a":3}]}',
        b'{"a":"\\ud800"}',
        b'"\xed\xa0\x80"',
        b'{"a":"\x01"}',
        b'{"a":NaN,"b":-Infinity}',
        b"\xef\xbb\xbf{}",
        b'{"a":1} x',
        b"[" * 5000 + b"]" * 5000,
        b"",
        b"\xff",
        b" \t\r\n[1, 2.0 ]\n",
        b'{"\\u00e9":"\\/\\u0000"}',
    ],
)
def test_fast_decoder_agrees_on_odd_bodies(body: bytes) -> None:
    _same(body)


def test_without_the_extra_the_standard_library_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "_fast_loads", None)
    body = b'{"code":"200000","data":{"a":1.10}}'
    assert _outcome(loads, body) == _outcome(loads_stdlib, body)
    assert loads(body)["data"]["a"] == Decimal("1.10")


@pytest.mark.parametrize("fast", [True, False])
def test_a_number_no_decimal_holds_is_a_protocol_error(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to escape as decimal.InvalidOperation: not a MarginError."""
    if not fast:
        monkeypatch.setattr(envelope, "_fast_loads", None)
    body = b'{"code":"200000","data":1e99999999999999999999}'
    outcome = decode(200, body, {}, base_url="https://api.kucoin.com", redact=str)
    assert isinstance(outcome.error, ProtocolError)
    assert "not a JSON object" in str(outcome.error)
