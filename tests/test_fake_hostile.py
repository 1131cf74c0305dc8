"""FakeKuCoin against hostile input: every refusal is a KuCoin code and changes nothing.

Over the wire (headers, query, JSON body) a refused request must be answered with the
exchange's code (400002 for a bad timestamp, 400100 for a bad parameter), never HTTP
500, and leave the ledger, the debt and the history exactly as they were. The admin and
ledger Python API must refuse bad arguments with ``TypeError``/``ValueError`` before
touching anything. Each corpus covers a class of input, not one instance of it.
"""

from __future__ import annotations

import random
import time
import zlib
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from kucoin_wire import b64hmac, call, kc_headers, send

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

BORROW = "/api/v3/margin/borrow"
REPAY = "/api/v3/margin/repay"
LEVERAGE = "/api/v3/position/update-user-leverage"
HISTORY = "/api/v3/margin/borrow?currency=USDT"
BORROW_BODY = b'{"currency":"USDT","size":1,"timeInForce":"IOC"}'


def now_text() -> str:
    return str(time.time_ns() // 1_000_000)


def fullwidth(text: str) -> str:
    """ASCII digits as their fullwidth forms: isdigit() and int() accept them."""
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


def state(fake: FakeKuCoin, api_key: str) -> tuple[object, ...]:
    """Everything a refused request or call could have corrupted, as one comparable value."""
    return (
        fake.ledger(api_key),
        fake.debt(api_key, "USDT"),
        fake.accrued_interest(api_key, "USDT"),
        tuple(fake.history_size(api_key, kind) for kind in ("borrow", "repay", "interest")),
        fake.liquidity("USDT"),
        fake.leverage(api_key),
        fake.pending_faults,
    )


@pytest.fixture
async def indebted(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> Credentials:
    """``creds`` owing 10 USDT of principal and some interest, so a repay has work to do."""
    status, _, payload = await call(http, fake, creds, "POST", BORROW, BORROW_BODY)
    assert (status, payload["code"]) == (200, "200000")
    status, _, payload = await call(
        http, fake, creds, "POST", BORROW, {"currency": "USDT", "size": 9, "timeInForce": "FOK"}
    )
    assert (status, payload["code"]) == (200, "200000")
    fake.accrue_interest(creds.api_key, hours=24)
    return creds


def assert_no_500(fake: FakeKuCoin) -> None:
    assert fake.stats.status_counts[500] == 0


# -- headers ----------------------------------------------------------------------------

BAD_TIMESTAMPS: list[tuple[str, Callable[[], str]]] = [
    ("superscript-two", lambda: "²"),
    ("superscript-digits", lambda: "¹²³"),
    ("arabic-indic-now", lambda: "".join(chr(0x0660 + int(c)) for c in now_text())),
    ("fullwidth-now", lambda: fullwidth(now_text())),
    ("5000-nines", lambda: "9" * 5000),
    ("now-zero-padded-to-5000", lambda: now_text().rjust(5000, "0")),
    ("25-digits", lambda: "1" * 25),
    ("negative-now", lambda: "-" + now_text()),
    ("plus-now", lambda: "+" + now_text()),
    ("now-dot-zero", lambda: now_text() + ".0"),
    ("exponent", lambda: "1.7e12"),
    ("underscore", lambda: now_text()[:4] + "_" + now_text()[4:]),
    ("hex", lambda: hex(int(now_text()))),
    ("seconds", lambda: now_text()[:-3]),
]


@pytest.mark.parametrize("make", [m for _, m in BAD_TIMESTAMPS], ids=[n for n, _ in BAD_TIMESTAMPS])
async def test_bad_timestamp_is_400002_and_applies_nothing(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    indebted: Credentials,
    make: Callable[[], str],
) -> None:
    before = state(fake, indebted.api_key)
    timestamp = make()
    headers = kc_headers(indebted, "POST", BORROW, BORROW_BODY)
    # Signed over the hostile timestamp itself, so only the timestamp can be at fault.
    headers["KC-API-TIMESTAMP"] = timestamp
    prehash = (timestamp + "POST" + BORROW).encode() + BORROW_BODY
    headers["KC-API-SIGN"] = b64hmac(indebted.api_secret, prehash)
    status, _, payload = await send(http, fake, "POST", BORROW, BORROW_BODY, headers)
    assert (status, payload["code"]) == (401, "400002")
    assert state(fake, indebted.api_key) == before
    assert_no_500(fake)


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("KC-API-KEY", "²" * 100, "400003"),
        ("KC-API-KEY", "k" * 5000, "400003"),
        ("KC-API-PASSPHRASE", "é" * 100, "400004"),
        ("KC-API-KEY-VERSION", "３", "400004"),
        ("KC-API-KEY-VERSION", "9" * 5000, "400004"),
        ("KC-API-SIGN", "ü" * 1000, "400005"),
    ],
    ids=["odd-key", "long-key", "odd-passphrase", "fullwidth-version", "long-version", "odd-sign"],
)
async def test_hostile_auth_headers_get_their_code(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    indebted: Credentials,
    header: str,
    value: str,
    code: str,
) -> None:
    before = state(fake, indebted.api_key)
    headers = kc_headers(indebted, "POST", BORROW, BORROW_BODY)
    headers[header] = value
    status, _, payload = await send(http, fake, "POST", BORROW, BORROW_BODY, headers)
    assert (status, payload["code"]) == (401, code)
    assert state(fake, indebted.api_key) == before
    assert_no_500(fake)


# -- JSON body ----------------------------------------------------------------------------

HOSTILE_SIZES: list[bytes] = [
    # absurd magnitudes, both ways
    b"1e999999999",
    b"1E+999999999",
    b"-1e999999999",
    b"1e-999999999",
    b"1e999999999999999999",
    b"1e-999999999999999999",
    b"1e20",
    b"100000000000000000000",
    b"1e309",
    b'"1E+999999999"',
    # huge digit counts
    b"1" + b"0" * 4999,
    b"0." + b"0" * 4999 + b"1",
    b"1." + b"0" * 5000,
    b'"1' + b"0" * 5000 + b'"',
    b'"0.' + b"0" * 5000 + b'1"',
    b"1.0000000000000000000000000000001",
    b"0.0000000000000000001",
    # zero in all its spellings
    b"0",
    b"-0",
    b"-0.0",
    b"0e5",
    b"-0e-5",
    b"0.000",
    b'"-0"',
    b'"0"',
    b'"0.00"',
    # NaN-ish and infinities
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'"NaN"',
    b'"nan"',
    b'"sNaN"',
    b'"Infinity"',
    b'"-Infinity"',
    b'"inf"',
    # digits that are not ASCII, and other non-numbers
    b'"\\u0661"',
    '"\uff11"'.encode(),
    b'"\\u00b2"',
    b'" 1"',
    b'"1 "',
    b'"+1"',
    b'"0x10"',
    b'"1_000"',
    b'"1,5"',
    b'"1.5.5"',
    b'""',
    b"-1",
    b"true",
    b"[1]",
    b'{"v":1}',
    b"[" * 100_000 + b"]" * 100_000,
]


def _size_id(size: bytes) -> str:
    return size[:24].decode(errors="replace") + (f"..({len(size)})" if len(size) > 24 else "")


@pytest.mark.parametrize("size", HOSTILE_SIZES, ids=[_size_id(s) for s in HOSTILE_SIZES])
@pytest.mark.parametrize("route", ["borrow", "repay"])
async def test_hostile_size_is_400100_and_changes_nothing(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    indebted: Credentials,
    route: str,
    size: bytes,
) -> None:
    before = state(fake, indebted.api_key)
    if route == "borrow":
        target, body = BORROW, b'{"currency":"USDT","timeInForce":"IOC","size":' + size + b"}"
    else:
        target, body = REPAY, b'{"currency":"USDT","size":' + size + b"}"
    status, _, payload = await call(http, fake, indebted, "POST", target, body)
    assert (status, payload["code"]) == (400, "400100"), payload
    assert state(fake, indebted.api_key) == before
    assert_no_500(fake)


@pytest.mark.parametrize(
    "leverage",
    [
        b'"' + b"9" * 5000 + b'"',
        b'"' + b"3" * 25 + b'"',
        b'"1e5"',
        b'"NaN"',
        b'"Infinity"',
        '"\uff13"'.encode(),
        b'"\\u0663"',
        b'"-3"',
        b'"3."',
        b'".5"',
        b'"3.5.5"',
        b'"3.50000"',
        b"1e999999999",
    ],
    ids=lambda v: _size_id(v),
)
async def test_hostile_leverage_is_400100_and_changes_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, indebted: Credentials, leverage: bytes
) -> None:
    before = state(fake, indebted.api_key)
    body = b'{"leverage":' + leverage + b"}"
    status, _, payload = await call(http, fake, indebted, "POST", LEVERAGE, body)
    assert (status, payload["code"]) == (400, "400100")
    assert state(fake, indebted.api_key) == before


async def test_oversized_body_is_400100_and_applies_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, indebted: Credentials
) -> None:
    before = state(fake, indebted.api_key)
    padding = "x" * (2 << 20)
    body = {"currency": "USDT", "size": 1, "timeInForce": "IOC", "pad": padding}
    status, _, payload = await call(http, fake, indebted, "POST", BORROW, body)
    assert (status, payload["code"]) == (400, "400100")
    assert state(fake, indebted.api_key) == before


def bomb(wbits: int, inflated: int = 48 << 20) -> bytes:
    """A small compressed body that inflates to ``inflated`` bytes (``wbits`` 31: gzip,
    15: deflate), compressed a chunk at a time so the test never holds it inflated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = b'{"currency":"USDT","size":1,"timeInForce":"IOC","pad":"'
    parts = [packer.compress(head)]
    chunk = b"0" * (1 << 20)
    parts += [packer.compress(chunk) for _ in range(inflated >> 20)]
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("gzip", lambda: bomb(31)),
        ("deflate", lambda: bomb(15)),
        ("gzip", lambda: b"\x1f\x8b\x08\x00" + b"\xff" * 64),
        ("deflate", lambda: b"\x78\x9c" + b"\xff" * 64),
    ],
    ids=["gzip-bomb", "deflate-bomb", "gzip-garbage", "deflate-garbage"],
)
async def test_hostile_content_encoding_is_400100_and_applies_nothing(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    indebted: Credentials,
    encoding: str,
    make: Callable[[], bytes],
) -> None:
    before = state(fake, indebted.api_key)
    body = make()
    headers = {**kc_headers(indebted, "POST", BORROW, body), "Content-Encoding": encoding}
    status, _, payload = await send(http, fake, "POST", BORROW, body, headers)
    assert (status, payload["code"]) == (400, "400100")
    assert state(fake, indebted.api_key) == before
    assert_no_500(fake)


# -- query ----------------------------------------------------------------------------------


async def get(
    http: aiohttp.ClientSession, fake: FakeKuCoin, creds: Credentials, query: str
) -> tuple[int, Any]:
    """GET borrow history with ``query`` signed decoded and sent percent-encoded."""
    signed = f"{BORROW}?{query}"
    wire = f"{BORROW}?{quote(query, safe='=&,')}"
    status, _, payload = await send(
        http, fake, "GET", wire, headers=kc_headers(creds, "GET", signed)
    )
    return status, payload


@pytest.mark.parametrize(
    "query",
    [
        "currency=USDT&currentPage=" + "9" * 5000,
        "currency=USDT&pageSize=" + "9" * 5000,
        "currency=USDT&startTime=" + "1" * 5000,
        "currency=USDT&endTime=" + "9" * 20,
        "currency=USDT&endTime=1.7e12",
        "currency=USDT&startTime=NaN",
        "currency=USDT&currentPage=²",
        "currency=USDT&currentPage=\u0661",
        "currency=USDT&pageSize=\uff15\uff10",
        "currency=USDT&currentPage=0",
        "currency=USDT&currentPage=-1",
        "currency=USDT&pageSize=-10",
        "currency=USDT&pageSize=10.0",
        "currency=USDT&isIsolated=TRUE",
        "currency=USDT&isIsolated=true",
        "currency=,",
        "currency=USDT,",
    ],
    ids=lambda query: query.removeprefix("currency=USDT&")[:24],
)
async def test_hostile_query_is_400100(
    fake: FakeKuCoin, http: aiohttp.ClientSession, indebted: Credentials, query: str
) -> None:
    before = state(fake, indebted.api_key)
    status, payload = await get(http, fake, indebted, query)
    assert (status, payload["code"]) == (400, "400100")
    assert state(fake, indebted.api_key) == before


@pytest.mark.parametrize(
    "query",
    [
        "currency=" + "U" * 5000,
        "currency=\u00b2\u0000\uffff",
        "currency=USDT&orderNo=" + "9" * 5000,
        "currency=USDT&currentPage=999999999999999999",
        "currency=USDT&startTime=-999999999999999999&endTime=999999999999999999",
    ],
    ids=["long-currency", "odd-currency", "long-orderNo", "far-page", "wide-window"],
)
async def test_odd_but_valid_query_is_answered(
    fake: FakeKuCoin, http: aiohttp.ClientSession, indebted: Credentials, query: str
) -> None:
    status, payload = await get(http, fake, indebted, query)
    assert (status, payload["code"]) == (200, "200000")


# -- admin and ledger Python API ------------------------------------------------------------

KEY = object()  # stands for the test account's API key in a case's arguments
_HUGE = "1e999999999"
BAD_AMOUNTS: list[Any] = [
    _HUGE,
    Decimal(_HUGE),
    "-" + _HUGE,
    "1e-999999999",
    "NaN",
    Decimal("sNaN"),
    "Infinity",
    "abc",
    "",
    " ",
    "1" * 5000,
    "0." + "0" * 5000 + "1",
    1.5,
    True,
    [1],
]
BAD_INTS: list[Any] = [1.5, float("nan"), True, "5", 10**5000, -(10**5000), None]


def _amount_cases(method: str, *before: Any, after: tuple[Any, ...] = ()) -> list[Any]:
    """One case per bad amount, passed as the argument after ``before``."""
    return [
        pytest.param(method, (*before, bad, *after), {}, id=f"{method}-{index}")
        for index, bad in enumerate(BAD_AMOUNTS)
    ]


ADMIN_CASES: list[Any] = [
    # seed_history: counts, times, currency, symbol
    *[
        pytest.param("seed_history", (KEY, "USDT"), {kind: bad}, id=f"seed-{kind}-{i}")
        for kind in ("borrows", "repays", "interest")
        for i, bad in enumerate([*BAD_INTS[:-1], -1, 10**15])
    ],
    *[
        pytest.param("seed_history", (KEY, "USDT", 1), {edge: bad}, id=f"seed-{edge}-{i}")
        for edge in ("start_time", "end_time")
        for i, bad in enumerate([*BAD_INTS[:-1], -1, 10**18])
    ],
    pytest.param("seed_history", (KEY, "USDT", 1), {"start_time": 9, "end_time": 5}, id="seed-rev"),
    *[
        pytest.param("seed_history", (KEY, bad, 1), {}, id=f"seed-currency-{i}")
        for i, bad in enumerate(["", "USDT,BTC", 7, None, b"USDT"])
    ],
    *[
        pytest.param("seed_history", (KEY, "USDT", 1), {"symbol": bad}, id=f"seed-symbol-{i}")
        for i, bad in enumerate([7, b"BTC-USDT", "A,B"])
    ],
    # append_interest
    *_amount_cases("append_interest", KEY, "USDT", after=("0.1",)),
    *[
        pytest.param("append_interest", (KEY, "USDT", "1", bad), {}, id=f"append-ratio-{i}")
        for i, bad in enumerate(BAD_AMOUNTS)
    ],
    pytest.param("append_interest", (KEY, "USDT", "-1", "0.1"), {}, id="append-negative"),
    *[
        pytest.param("append_interest", (KEY, "USDT", 1, 1, bad), {}, id=f"append-time-{i}")
        for i, bad in enumerate([*BAD_INTS[:-1], -5, 10**18])
    ],
    pytest.param("append_interest", (KEY, "", 1, 1), {}, id="append-empty-currency"),
    # accrue_interest and rates
    *[
        pytest.param("accrue_interest", (KEY,), {"hours": bad}, id=f"accrue-hours-{i}")
        for i, bad in enumerate([*BAD_AMOUNTS, -1])
    ],
    pytest.param("accrue_interest", (7,), {}, id="accrue-int-key"),
    *_amount_cases("set_interest_rate", "USDT"),
    pytest.param("set_interest_rate", ("USDT", "-0.1"), {}, id="rate-negative"),
    pytest.param("set_interest_rate", ("", "0.1"), {}, id="rate-empty-currency"),
    # liquidity, borrow limit, accounts, leverage
    *_amount_cases("set_liquidity", "USDT"),
    pytest.param("set_liquidity", ("USDT", -5), {}, id="liquidity-negative"),
    pytest.param("set_liquidity", ("", 5), {}, id="liquidity-empty-currency"),
    *[
        pytest.param("add_account", (), {"borrow_limit": bad}, id=f"borrow-limit-{i}")
        for i, bad in enumerate([*BAD_AMOUNTS, -1])
    ],
    *[
        pytest.param("add_account", (bad,), {}, id=f"key-version-{i}")
        for i, bad in enumerate([1, 4, True, 3.0, "3"])
    ],
    pytest.param("add_account", (), {"credentials": "k:s:p"}, id="credentials-str"),
    *_amount_cases("set_max_leverage"),
    pytest.param("set_max_leverage", (0,), {}, id="max-leverage-zero"),
    pytest.param("set_max_leverage", (5, 7), {}, id="max-leverage-int-symbol"),
    *_amount_cases("set_debt_leverage", KEY),
    pytest.param("set_debt_leverage", (KEY, -2), {}, id="debt-leverage-negative"),
    # clock, rate limit, latency, faults, idle close
    *[
        pytest.param("set_clock_skew", (bad,), {}, id=f"skew-{i}")
        for i, bad in enumerate([*BAD_INTS, 10**15, -(10**15)])
    ],
    *[
        pytest.param("set_rate_limit", (bad, 1000), {}, id=f"quota-{i}")
        for i, bad in enumerate([*BAD_INTS, -1])
    ],
    *[
        pytest.param("set_rate_limit", (10, bad), {}, id=f"window-{i}")
        for i, bad in enumerate([*BAD_INTS, 0, -1])
    ],
    *[
        pytest.param("set_latency", (bad,), {}, id=f"latency-{i}")
        for i, bad in enumerate([float("nan"), float("inf"), "1", None, True, -0.1])
    ],
    *[
        pytest.param("inject", ("5xx",), {"times": bad}, id=f"inject-times-{i}")
        for i, bad in enumerate([*BAD_INTS, 0])
    ],
    *[
        pytest.param("inject", ("5xx",), {"status": bad}, id=f"inject-status-{i}")
        for i, bad in enumerate([502.0, True, "502", 404, 600])
    ],
    *[
        pytest.param("inject", (kind,), {arg: bad}, id=f"inject-{arg}-{i}")
        for kind, arg in (("apply_then_stall", "stall"), ("latency", "latency"))
        for i, bad in enumerate([float("nan"), float("inf"), -1, "1", None])
    ],
    *[
        pytest.param("inject", ("rate_limit",), {"reset_ms": bad}, id=f"inject-reset-{i}")
        for i, bad in enumerate([*BAD_INTS, -1])
    ],
    *[
        pytest.param("inject", ("5xx",), {"route": bad}, id=f"inject-route-{i}")
        for i, bad in enumerate([5, "/api/v3/margin/borrow", "POST", "POST  /x", b"GET /x"])
    ],
    pytest.param("inject", (5,), {}, id="inject-int-kind"),
    pytest.param("inject", ("explode",), {}, id="inject-unknown-kind"),
    pytest.param("set_fault_rate", (float("nan"),), {}, id="fault-rate-nan"),
    pytest.param("set_fault_rate", ("0.5",), {}, id="fault-rate-str"),
    pytest.param("set_fault_rate", (0.5,), {"kinds": "5xx"}, id="fault-rate-str-kinds"),
    pytest.param("set_fault_rate", (0.5,), {"kinds": ()}, id="fault-rate-no-kinds"),
    pytest.param("set_fault_rate", (0.5,), {"seed": 1.5}, id="fault-rate-float-seed"),
    *[
        pytest.param("set_fault_rate", (0.5,), {"latency": bad}, id=f"fault-rate-latency-{i}")
        for i, bad in enumerate([float("nan"), float("inf"), -1])
    ],
    *[
        pytest.param("set_idle_close", (bad,), {}, id=f"idle-close-{i}")
        for i, bad in enumerate([0, -1, float("nan"), float("inf"), "1", True])
    ],
]


@pytest.mark.parametrize(("method", "args", "kwargs"), ADMIN_CASES)
async def test_admin_api_refuses_bad_arguments_and_changes_nothing(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    indebted: Credentials,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    fake.inject("5xx", route="GET /api/v1/timestamp")  # pending_faults is part of the state
    before = state(fake, indebted.api_key)
    args = tuple(indebted.api_key if arg is KEY else arg for arg in args)
    with pytest.raises((TypeError, ValueError)):
        getattr(fake, method)(*args, **kwargs)
    assert state(fake, indebted.api_key) == before
    # Clock, rate limit, latency and idle close are still what they were: a signed
    # request on the same keep-alive connection is answered with the default budget.
    fake.clear_faults()
    status, headers, payload = await call(http, fake, indebted, "GET", HISTORY)
    assert (status, payload["code"]) == (200, "200000")
    assert headers["gw-ratelimit-limit"] == "4000"
    assert 0 < int(headers["gw-ratelimit-reset"]) <= 30_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_limit_quota": 1.5},
        {"rate_limit_window_ms": float("nan")},
        {"rate_limit_window_ms": 10**5000},
        {"seed": "0"},
        {"seed": 1.5},
        {"port": -1},
        {"port": 70_000},
        {"idle_close_after": 0},
        {"idle_close_after": float("nan")},
    ],
    ids=lambda kw: next(iter(kw)),
)
def test_constructor_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        FakeKuCoin(**kwargs)


async def test_refused_seed_calls_leave_seeded_history_reproducible(
    http: aiohttp.ClientSession,
) -> None:
    # A refused seed_history must not advance the per-call random stream either: the
    # next valid call yields exactly what it yields on a fake that saw no refusal.
    pages = []
    end = time.time_ns() // 1_000_000 - 1000
    for refuse in (False, True):
        async with FakeKuCoin(seed=3) as fake:
            creds = fake.add_account()
            if refuse:
                for count in (1.5, -1, 10**15):
                    with pytest.raises((TypeError, ValueError)):
                        fake.seed_history(creds.api_key, "USDT", borrows=count)  # type: ignore[arg-type]
            fake.seed_history(
                creds.api_key, "USDT", borrows=30, start_time=end - 10**8, end_time=end
            )
            status, _, payload = await call(http, fake, creds, "GET", HISTORY + "&pageSize=50")
            assert status == 200
            pages.append(payload["data"]["items"])
    assert pages[0] == pages[1]
    assert len(pages[0]) == 30


async def test_absurd_fault_knobs_stay_available_for_client_tests(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    # An epoch as gw-ratelimit-reset is a hostile *reply* the SDK must survive, so the
    # fake keeps producing it on request.
    fake.inject("rate_limit", reset_ms=1_729_657_580_449)
    status, headers, _ = await call(http, fake, creds, "GET", HISTORY)
    assert (status, headers["gw-ratelimit-reset"]) == (429, "1729657580449")


FIELD_VALUES: dict[str, list[bytes]] = {
    "currency": [
        b'"USDT"',
        b'"BTC"',
        b'""',
        b"7",
        b"null",
        b'"\\u0000"',
        b'"' + b"U" * 2000 + b'"',
    ],
    "size": [b"1", b'"2.5"', b"0.1", *HOSTILE_SIZES[:20]],
    "timeInForce": [b'"IOC"', b'"FOK"', b'"ioc"', b"null", b"1"],
    "isIsolated": [b"true", b"false", b'"true"', b"null", b"1"],
    "symbol": [b'"BTC-USDT"', b'""', b"null", b"5", b'"' + b"S" * 2000 + b'"'],
    "isHf": [b"true", b"false", b'"false"'],
    "leverage": [b'"3"', b'"3.5"', b'"1"', b'"' + b"9" * 30 + b'"', b"3", b'"NaN"'],
}


async def test_random_bodies_never_500_and_refusals_change_nothing(
    fake: FakeKuCoin, http: aiohttp.ClientSession, indebted: Credentials
) -> None:
    # Many combinations at once, from a fixed seed: whatever the mix of fields, the
    # answer is a KuCoin code, and only a 200000 may change anything.
    rng = random.Random(10)
    outcomes: Counter[str] = Counter()
    for _ in range(300):
        target = rng.choice([BORROW, REPAY, LEVERAGE])
        names = [name for name in FIELD_VALUES if rng.random() < 0.7]
        body = (
            b"{"
            + b",".join(
                b'"%s":%s' % (name.encode(), rng.choice(FIELD_VALUES[name])) for name in names
            )
            + b"}"
        )
        before = state(fake, indebted.api_key)
        status, _, payload = await call(http, fake, indebted, "POST", target, body)
        code = payload["code"]
        outcomes[code] += 1
        assert status in (200, 400), body[:200]
        if code != "200000":
            assert state(fake, indebted.api_key) == before, body[:200]
    assert_no_500(fake)
    # The corpus reaches past validation too, so the invariant is not vacuous.
    assert outcomes["200000"] > 0 and outcomes["400100"] > 0
