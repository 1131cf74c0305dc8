"""Every argument rule raises ValidationError (a ValueError) naming the argument, and a
rejected call sends nothing."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses
from helpers import PASSPHRASE, SECRET, client

from margin_async import (
    Credentials,
    MarginClient,
    MarginError,
    Paginator,
    RetryPolicy,
    TimeInForce,
    ValidationError,
)
from margin_async._endpoints import _params as p
from margin_async._endpoints.borrow import borrow_request
from margin_async._endpoints.leverage import leverage_request
from margin_async._endpoints.repay import repay_request

NOW_MS = 1729657580449
NAIVE = datetime(2024, 10, 23, 4, 26, 20)
AWARE = datetime(2024, 10, 23, 4, 26, 20, tzinfo=UTC)

Call = Callable[[MarginClient], Any]


async def _run(call: Call, c: MarginClient) -> Any:
    result = call(c)
    if inspect.isawaitable(result):
        return await result
    if isinstance(result, Paginator):
        return await result.collect()
    return result


def _case(argument: str, call: Call, id_: str) -> Any:
    return pytest.param(argument, call, id=id_)


BAD_SIZES: list[tuple[object, str]] = [
    (1.5, "float"),
    (10.0, "float-integral"),
    (True, "bool-true"),
    (False, "bool-false"),
    (Decimal("NaN"), "nan"),
    (Decimal("sNaN"), "snan"),
    (Decimal("Infinity"), "inf"),
    (Decimal("-Infinity"), "-inf"),
    ("NaN", "nan-str"),
    ("Infinity", "inf-str"),
    (0, "zero"),
    (Decimal("0"), "zero-decimal"),
    ("0.000", "zero-str"),
    (Decimal("-0"), "minus-zero"),
    (-1, "negative-int"),
    ("-0.5", "negative-str"),
    (Decimal("-10"), "negative-decimal"),
    ("abc", "not-a-number"),
    ("", "empty-str"),
    ("1e", "truncated-exponent"),
    ("1,5", "comma"),
    (None, "none"),
    ([1], "list"),
    (b"10", "bytes"),
]

BAD_CURRENCIES: list[tuple[object, str]] = [
    (None, "none"),
    ("", "empty"),
    ("   ", "blank"),
    ("US DT", "space"),
    ("BTC,ETH", "comma-in-one"),
    ("USDT!", "punctuation"),
    ("ÜSDT", "non-ascii"),
    ("ß", "sharp-s-uppercases-to-SS"),
    ("A" * 21, "too-long"),
    (5, "int"),
    (b"USDT", "bytes"),
]

CASES = []
for value, name in BAD_SIZES:
    CASES.append(
        _case("size", lambda c, v=value: c.borrow("USDT", v, "IOC"), f"borrow-size-{name}")
    )
    CASES.append(_case("size", lambda c, v=value: c.repay("USDT", v), f"repay-size-{name}"))
for value, name in BAD_CURRENCIES:
    CASES.append(
        _case("currency", lambda c, v=value: c.borrow(v, "1", "IOC"), f"borrow-currency-{name}")
    )
    CASES.append(_case("currency", lambda c, v=value: c.repay(v, "1"), f"repay-currency-{name}"))
    if value is not None:
        for method in ("get_borrow_history", "get_repay_history", "get_interest_history"):
            CASES.append(
                _case(
                    "currency",
                    lambda c, v=value, m=method: getattr(c, m)(v),
                    f"{method}-currency-{name}",
                )
            )
for value, name in [([], "empty-list"), (["BTC", ""], "list-with-empty"), (["BTC", 5], "list-int")]:
    CASES.append(
        _case("currency", lambda c, v=value: c.get_borrow_history(v), f"history-currency-{name}")
    )
    CASES.append(
        _case("currency", lambda c, v=value: c.interest_history(v), f"stream-currency-{name}")
    )
for method in ("get_borrow_history", "get_repay_history", "borrow_history", "repay_history"):
    CASES.append(
        _case("currency", lambda c, m=method: getattr(c, m)(None), f"{method}-currency-required")
    )
for value in ("GTC", "", "IOC ", "I-O-C", None, 1, TimeInForce):
    CASES.append(
        _case(
            "time_in_force",
            lambda c, v=value: c.borrow("USDT", "1", v),
            f"time_in_force-{value!r}",
        )
    )

# Isolated / cross pairing, for every operation that takes it.
MODE_OPS: dict[str, Callable[..., Any]] = {
    "borrow": lambda c, **kw: c.borrow("USDT", "1", "IOC", **kw),
    "repay": lambda c, **kw: c.repay("USDT", "1", **kw),
    "modify_leverage": lambda c, **kw: c.modify_leverage("3", **kw),
    "get_borrow_history": lambda c, **kw: c.get_borrow_history("USDT", **kw),
    "get_repay_history": lambda c, **kw: c.get_repay_history("USDT", **kw),
    "get_interest_history": lambda c, **kw: c.get_interest_history(**kw),
    "borrow_history": lambda c, **kw: c.borrow_history("USDT", **kw),
    "repay_history": lambda c, **kw: c.repay_history("USDT", **kw),
    "interest_history": lambda c, **kw: c.interest_history(**kw),
}
for op, fn in MODE_OPS.items():
    CASES.extend(
        [
            _case("symbol", lambda c, f=fn: f(c, is_isolated=True), f"{op}-isolated-no-symbol"),
            _case(
                "symbol",
                lambda c, f=fn: f(c, is_isolated=True, symbol=""),
                f"{op}-isolated-empty-symbol",
            ),
            _case("symbol", lambda c, f=fn: f(c, symbol="BTC-USDT"), f"{op}-symbol-without-flag"),
            _case(
                "symbol",
                lambda c, f=fn: f(c, symbol="BTC-USDT", is_isolated=False),
                f"{op}-symbol-cross",
            ),
            _case(
                "symbol",
                lambda c, f=fn: f(c, symbol="BTCUSDT", is_isolated=True),
                f"{op}-symbol-no-dash",
            ),
            _case(
                "symbol",
                lambda c, f=fn: f(c, symbol=5, is_isolated=True),
                f"{op}-symbol-int",
            ),
            _case(
                "symbol",
                lambda c, f=fn: f(c, symbol="BTC-ÜSDT", is_isolated=True),
                f"{op}-symbol-non-ascii",
            ),
            _case(
                "is_isolated",
                lambda c, f=fn: f(c, symbol="BTC-USDT", is_isolated="true"),
                f"{op}-is_isolated-str",
            ),
            _case(
                "is_isolated",
                lambda c, f=fn: f(c, symbol="BTC-USDT", is_isolated=1),
                f"{op}-is_isolated-int",
            ),
        ]
    )
for op in ("borrow", "repay"):
    for value in ("true", 1, None):
        CASES.append(
            _case(
                "is_hf", lambda c, f=MODE_OPS[op], v=value: f(c, is_hf=v), f"{op}-is_hf-{value!r}"
            )
        )

for value, name in [
    (1, "one"),
    ("1", "one-str"),
    ("1.00", "one-with-decimals"),
    ("0.5", "below-one"),
    (0, "zero"),
    (-3, "negative"),
    ("3.555", "three-decimals"),
    ("3.001", "three-decimals-small"),
    (Decimal("2.125"), "three-decimals-decimal"),
    ("3.0000000000000000000000000000001", "beyond-context-precision"),
    (3.5, "float"),
    (True, "bool"),
    ("x", "text"),
    (Decimal("NaN"), "nan"),
    (Decimal("Infinity"), "inf"),
    (None, "none"),
]:
    CASES.append(_case("leverage", lambda c, v=value: c.modify_leverage(v), f"leverage-{name}"))

HISTORY_OPS: dict[str, Callable[..., Any]] = {
    "get_borrow_history": lambda c, **kw: c.get_borrow_history("USDT", **kw),
    "get_repay_history": lambda c, **kw: c.get_repay_history("USDT", **kw),
    "get_interest_history": lambda c, **kw: c.get_interest_history(**kw),
}
STREAM_OPS: dict[str, Callable[..., Any]] = {
    "borrow_history": lambda c, **kw: c.borrow_history("USDT", **kw),
    "repay_history": lambda c, **kw: c.repay_history("USDT", **kw),
    "interest_history": lambda c, **kw: c.interest_history(**kw),
}
for op, fn in {**HISTORY_OPS, **STREAM_OPS}.items():
    for value in (9, 501, 0, -50, "50", 50.0, True, None, Decimal(50)):
        CASES.append(
            _case(
                "page_size", lambda c, f=fn, v=value: f(c, page_size=v), f"{op}-page_size-{value!r}"
            )
        )
    for which in ("start_time", "end_time"):
        for value, name in [
            (NAIVE, "naive"),
            (1729657580, "seconds"),
            (99_999_999_999, "just-below-ms-floor"),
            (-1, "negative"),
            ("1729657580449", "str"),
            (1729657580449.0, "float"),
            (True, "bool"),
            (Decimal(NOW_MS), "decimal"),
        ]:
            CASES.append(
                _case(
                    which, lambda c, f=fn, w=which, v=value: f(c, **{w: v}), f"{op}-{which}-{name}"
                )
            )
    CASES.append(
        _case(
            "start_time",
            lambda c, f=fn: f(c, start_time=NOW_MS + 1, end_time=NOW_MS),
            f"{op}-start-after-end",
        )
    )
    CASES.append(
        _case(
            "start_time",
            lambda c, f=fn: f(c, start_time=AWARE + timedelta(seconds=1), end_time=AWARE),
            f"{op}-start-after-end-datetime",
        )
    )
for op, fn in HISTORY_OPS.items():
    for value in (0, -1, "1", 1.0, True, None):
        CASES.append(
            _case(
                "current_page",
                lambda c, f=fn, v=value: f(c, current_page=v),
                f"{op}-current_page-{value!r}",
            )
        )
for op, fn in STREAM_OPS.items():
    for value in (0, -1, True, 1.5, "4", None):
        CASES.append(
            _case("prefetch", lambda c, f=fn, v=value: f(c, prefetch=v), f"{op}-prefetch-{value!r}")
        )
for op in ("get_borrow_history", "get_repay_history", "borrow_history", "repay_history"):
    for value in ("", "   ", 5):
        CASES.append(
            _case(
                "order_no",
                lambda c, o=op, v=value: getattr(c, o)("USDT", order_no=v),
                f"{op}-order_no-{value!r}",
            )
        )


@pytest.mark.parametrize(("argument", "call"), CASES)
async def test_rejected_before_sending(mock: aioresponses, argument: str, call: Call) -> None:
    async with client() as c:
        with pytest.raises(ValidationError) as info:
            await _run(call, c)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, MarginError)
    assert error.argument == argument
    assert str(error).startswith(f"{argument}: ")
    assert mock.requests == {}


# -- what is accepted (pure endpoint functions, no I/O) ------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("usdt", "USDT"),
        ("  btc ", "BTC"),
        ("1INCH", "1INCH"),
        ("A" * 20, "A" * 20),
    ],
)
def test_currency_normalised(given: str, sent: str) -> None:
    assert p.currency(given) == sent


def test_currency_list_deduplicated_in_order() -> None:
    assert p.currencies(["btc", "ETH", "BTC"]) == "BTC,ETH"
    assert p.currencies(("eth",)) == "ETH"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (Decimal("10"), Decimal("10")),
        ("0.5", Decimal("0.5")),
        (" 7 ", Decimal("7")),
        (3, Decimal("3")),
        (Decimal("1E+1"), Decimal("10")),
        ("0.00000001", Decimal("0.00000001")),
    ],
)
def test_amount_accepted(given: object, expected: Decimal) -> None:
    assert p.amount(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (TimeInForce.FOK, TimeInForce.FOK),
        ("IOC", TimeInForce.IOC),
        ("ioc", TimeInForce.IOC),
        ("Fok", TimeInForce.FOK),
    ],
)
def test_time_in_force_case_insensitive(given: object, expected: TimeInForce) -> None:
    assert p.time_in_force(given) is expected
    movement = borrow_request("USDT", "1", given)  # type: ignore[arg-type]
    assert f'"timeInForce":"{expected.value}"'.encode() in movement.request.body


@pytest.mark.parametrize(
    ("given", "sent"), [("1.01", "1.01"), ("3.50", "3.5"), (5, "5"), (Decimal("1E+1"), "10")]
)
def test_leverage_accepted(given: object, sent: str) -> None:
    request = leverage_request(given)  # type: ignore[arg-type]
    assert request.body == b'{"leverage":"' + sent.encode() + b'"}'


def test_times_accepted() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert p.epoch_ms(AWARE, "start_time") == NOW_MS - 449
    assert p.epoch_ms(AWARE.astimezone(plus2), "start_time") == NOW_MS - 449
    assert p.epoch_ms(10**11, "end_time") == 10**11
    f = p.HistoryFilter.build(
        "USDT",
        currency_required=True,
        is_isolated=False,
        symbol=None,
        order_no=None,
        start_time=NOW_MS,
        end_time=NOW_MS,
    )
    assert (f.start_time, f.end_time) == (NOW_MS, NOW_MS)


def test_datetime_with_milliseconds_is_exact() -> None:
    # 1729657580.449 * 1000 is not exact in binary floating point.
    for ms in [*range(NOW_MS - 2000, NOW_MS + 2000), 2162507390128]:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        assert p.epoch_ms(moment, "start_time") == ms


def test_page_bounds_accepted() -> None:
    assert p.page_size(10) == 10
    assert p.page_size(500) == 500
    assert p.page_number(1) == 1
    assert p.page_number(10**6) == 10**6


def test_repay_without_time_in_force() -> None:
    assert repay_request("usdt", "1").request.body == b'{"currency":"USDT","size":1}'


# -- settings objects ---------------------------------------------------------------


def _kwargs_id(value: object) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v!r}" for k, v in value.items())
    return str(value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": -1}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"attempts": 1.5}, "attempts"),
        ({"attempts": "3"}, "attempts"),
        ({"base_delay": -0.1}, "base_delay"),
        ({"base_delay": "1"}, "base_delay"),
        ({"base_delay": True}, "base_delay"),
        ({"base_delay": float("nan")}, "base_delay"),
        ({"base_delay": float("inf")}, "base_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"max_delay": None}, "max_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"jitter": "no"}, "jitter"),
    ],
    ids=_kwargs_id,
)
def test_retry_policy_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument


def test_retry_policy_accepted() -> None:
    policy = RetryPolicy(attempts=1, base_delay=0, max_delay=0, jitter=False)
    assert policy.attempts == 1


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"key_version": 1}, "key_version"),
        ({"key_version": 4}, "key_version"),
        ({"key_version": "3"}, "key_version"),
        ({"key_version": 3.0}, "key_version"),
        ({"key_version": True}, "key_version"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": None}, "api_key"),
        ({"api_key": "key\n"}, "api_key"),
        ({"api_key": "ke y"}, "api_key"),
        ({"api_key": "ключ"}, "api_key"),
        ({"api_secret": ""}, "api_secret"),
        ({"api_secret": 5}, "api_secret"),
        ({"api_passphrase": ""}, "api_passphrase"),
        ({"api_passphrase": b"x"}, "api_passphrase"),
    ],
    ids=_kwargs_id,
)
def test_credentials_arguments(kwargs: dict[str, Any], argument: str) -> None:
    fields: dict[str, Any] = {"api_key": "key", "api_secret": SECRET, "api_passphrase": PASSPHRASE}
    fields.update(kwargs)
    with pytest.raises(ValidationError) as info:
        Credentials(**fields)
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument
    assert SECRET not in str(info.value)
    assert PASSPHRASE not in str(info.value)


ENV = {
    "KUCOIN_API_KEY": "env-key",
    "KUCOIN_API_SECRET": SECRET,
    "KUCOIN_API_PASSPHRASE": PASSPHRASE,
}


def _set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name in (*ENV, "KUCOIN_API_KEY_VERSION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, ENV)
    c = Credentials.from_env()
    assert (c.api_key, c.api_secret, c.api_passphrase, c.key_version) == (
        "env-key",
        SECRET,
        PASSPHRASE,
        3,
    )
    _set_env(monkeypatch, {**ENV, "KUCOIN_API_KEY_VERSION": "2"})
    assert Credentials.from_env().key_version == 2


@pytest.mark.parametrize("missing", list(ENV))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_from_env_missing_variable_named(
    monkeypatch: pytest.MonkeyPatch, missing: str, how: str
) -> None:
    values = dict(ENV)
    if how == "unset":
        del values[missing]
    else:
        values[missing] = ""
    _set_env(monkeypatch, values)
    with pytest.raises(ValidationError) as info:
        Credentials.from_env()
    assert info.value.argument == missing
    assert missing in str(info.value)


@pytest.mark.parametrize(
    ("version", "argument"), [("x", "KUCOIN_API_KEY_VERSION"), ("4", "key_version")]
)
def test_from_env_bad_version(monkeypatch: pytest.MonkeyPatch, version: str, argument: str) -> None:
    _set_env(monkeypatch, {**ENV, "KUCOIN_API_KEY_VERSION": version})
    with pytest.raises(ValidationError) as info:
        Credentials.from_env()
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"base_url": "ftp://api.kucoin.com"}, "base_url"),
        ({"base_url": "api.kucoin.com"}, "base_url"),
    ],
)
def test_client_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValidationError) as info:
        client(**kwargs)
    assert info.value.argument == argument


def test_client_needs_credentials() -> None:
    with pytest.raises(ValidationError) as info:
        MarginClient(("key", SECRET, PASSPHRASE))  # type: ignore[arg-type]
    assert info.value.argument == "credentials"


@pytest.mark.parametrize("size", ["1E+999999999", "1E-999999999", 10**101])
def test_absurd_magnitudes_are_refused_before_formatting(size: object) -> None:
    # Formatting 1E+999999999 as plain digits would build a billion-character body.
    with pytest.raises(ValidationError, match="size"):
        borrow_request("USDT", size, "IOC")  # type: ignore[arg-type]
