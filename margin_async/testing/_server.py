"""FakeKuCoin: a real aiohttp.web server on loopback that behaves like KuCoin's margin API.

Wire behaviour (see ``DESIGN.md``, "Wire facts"):

* Signed routes check, in this order: the ``KC-API-KEY``, ``-SIGN``, ``-TIMESTAMP`` and
  ``-PASSPHRASE`` headers (``400001``), the timestamp within ±5000 ms of the fake's
  clock (``400002``), the key (``400003``), the signed passphrase and a key version of
  2 or 3 (``400004``; the two sign alike, and ccxt sends ``2`` for any key; without
  ``KC-API-KEY-VERSION`` version 1 rules apply, which no key of the fake passes), the
  signature over
  ``timestamp + METHOD + path ['?' + decoded query] + raw body`` (``400005``); all HTTP 401.
  Auth failures charge no weight and carry no rate-limit headers (a simplification).
* Parameter errors: ``400100`` with HTTP 400. Unknown path: ``404000`` with HTTP 404.
* Hostile input is refused with those codes, never a 500, and changes nothing: a
  timestamp that is not 1 to 20 ASCII digits is ``400002`` (``str.isdigit()`` would
  pass ``"²"`` and fullwidth digits); a size that is not above 0, or is ``1e20`` or
  more, or has over 18 decimal places or over 40 digits, JSON that cannot be converted
  (an exponent beyond ``Decimal``'s range, an integer of over 4300 digits), a body
  over 1 MiB and one whose ``Content-Encoding`` cannot be decoded are ``400100``.
* Rate limit: per account, a window of ``rate_limit_window_ms`` that starts at the
  account's first authenticated request; a request whose weight exceeds what remains is
  answered HTTP 429 ``429000`` and not processed. Every authenticated reply carries
  ``gw-ratelimit-limit``, ``gw-ratelimit-remaining`` and ``gw-ratelimit-reset`` (ms).
* Business refusals, answered with HTTP 200 and a non-``200000`` code, as KuCoin does:

  ========  ==============================================================================
  code      meaning
  ========  ==============================================================================
  130101    borrow cannot be filled: FOK short of the lendable amount, or IOC with nothing
            lendable (lendable = the currency's pool, see ``set_liquidity``, capped by the
            account's ``borrow_limit`` minus its principal in that position)
  130102    repay with nothing owed in that currency and margin mode
  130103    leverage above the maximum (``set_max_leverage``, default 10) or below the
            account's current debt leverage (``set_debt_leverage``, default 1)
  ========  ==============================================================================

Models (simple and deterministic, documented so tests can rely on them):

* A borrow draws on the currency's lending pool (``set_liquidity``; default 10**9) and a
  repay returns its principal to it. Refused borrows leave no record anywhere.
* A repay pays accrued interest first, then principal; ``size`` above what is owed is
  capped (``actualSize`` is what was paid).
* Interest accrues only when :meth:`FakeKuCoin.accrue_interest` is called; each accrual
  adds an interest record. :meth:`FakeKuCoin.append_interest` and
  :meth:`FakeKuCoin.seed_history` add history only (they change no debt).
* Leverage: a JSON string, > 1, at most two decimals (else ``400100``), then ``130103``
  as above. The fake only remembers the value (:meth:`FakeKuCoin.leverage`).
* History queries without ``isIsolated=true`` return cross records only (a ``symbol``
  sent without it is ignored, as the exchange acts on the cross account then);
  ``isIsolated=true`` requires ``symbol``. Cross records carry ``"symbol": null``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Literal

import attrs
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from margin_async._auth import Credentials
from margin_async.testing._auth import AuthFailure, KeyRecord, verify
from margin_async.testing._checks import (
    MAX_TIME_MS,
    amount_problem,
    check_code,
    check_decimal,
    check_int,
    check_seconds,
    check_symbol,
)
from margin_async.testing._faults import AFTER_KINDS, Fault, FaultPlan, gateway_page
from margin_async.testing._ledger import (
    MIN_START_TIME,
    Account,
    Exchange,
    HistoryKind,
    InterestCharge,
    LedgerEntry,
    Record,
    Refusal,
    bad_parameter,
    plain,
    time_range,
)

__all__ = ["FakeKuCoin", "FakeStats"]

_JSON: Final = "application/json"
_DAY_MS: Final = 86_400_000
_MIN_PAGE, _MAX_PAGE, _DEFAULT_PAGE = 10, 500, 50
_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_LEVERAGE_TEXT = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,2})?")
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")


@attrs.define
class FakeStats:
    """Counters of what the fake served since it started (or since :meth:`reset`).

    ``requests`` counts arrivals per ``"METHOD /path"``; ``status_counts`` replies per
    HTTP status (dropped connections are not replies); ``faults`` faults served per kind;
    ``rate_limited`` 429 replies (real and injected); ``connections_opened`` TCP
    connections accepted; ``open_connections`` those open now and
    ``max_concurrent_connections`` the most open at once; ``idle_drops`` requests
    dropped unanswered because their keep-alive connection had been idle too long (see
    ``idle_close_after``; they never reached the exchange, so ``requests`` omits them).
    """

    requests: Counter[str] = attrs.Factory(Counter)
    status_counts: Counter[int] = attrs.Factory(Counter)
    faults: Counter[str] = attrs.Factory(Counter)
    rate_limited: int = 0
    connections_opened: int = 0
    open_connections: int = 0
    max_concurrent_connections: int = 0
    idle_drops: int = 0

    def reset(self) -> None:
        """Zero every counter (``open_connections`` keeps counting live connections)."""
        self.requests.clear()
        self.status_counts.clear()
        self.faults.clear()
        self.rate_limited = 0
        self.connections_opened = 0
        self.max_concurrent_connections = self.open_connections
        self.idle_drops = 0


class _CountingServer(web.Server):
    """aiohttp's low-level server, counting TCP connections into :class:`FakeStats` and
    noting when each open connection last finished a request (for idle close)."""

    def __init__(self, handler: Any, stats: FakeStats, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._stats = stats
        #: Open connections that served a request: when the last one ended (monotonic ns).
        self.idle_since: dict[RequestHandler, int] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        stats = self._stats
        stats.connections_opened += 1
        stats.open_connections += 1
        stats.max_concurrent_connections = max(
            stats.max_concurrent_connections, stats.open_connections
        )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._stats.open_connections -= 1
        self.idle_since.pop(handler, None)


# -- request parsing ------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise bad_parameter("Request body is required")
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, ArithmeticError):
        # ArithmeticError: Decimal refuses an exponent beyond its range (1e999999999999999999);
        # ValueError covers an integer of more digits than int() converts.
        raise bad_parameter("Malformed JSON body") from None
    if not isinstance(value, dict):
        raise bad_parameter("Request body must be a JSON object")
    return value


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        raise bad_parameter(f"{name} is required")
    if not isinstance(value, str):
        raise bad_parameter(f"{name} must be a string")
    return value


def _amount(fields: Mapping[str, Any], name: str) -> Decimal:
    value = fields.get(name)
    if value is None:
        raise bad_parameter(f"{name} is required")
    if isinstance(value, bool):
        raise bad_parameter(f"{name} must be a number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        # The schema says number; a numeric string is accepted as the exchange does.
        amount = Decimal(value)
    else:
        raise bad_parameter(f"{name} must be a number")
    # Bounds before any use: 1e999999999 compares fine but cannot be formatted, and it
    # must not reach the ledger at all.
    problem = amount_problem(amount)
    if problem is not None:
        raise bad_parameter(f"{name} {problem}")
    if amount <= 0:
        raise bad_parameter(f"{name} must be greater than 0")
    return amount


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise bad_parameter(f"{name} must be a boolean")
    return value


def _margin_symbol(fields: Mapping[str, Any]) -> str:
    """The position's symbol: the isolated symbol, or ``""`` for cross."""
    isolated = _flag(fields, "isIsolated")
    symbol = fields.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        raise bad_parameter("symbol must be a string")
    if not isolated:
        return ""  # a symbol without isIsolated acts on the cross account
    if not symbol:
        raise bad_parameter("symbol is required for isolated margin")
    return symbol


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name, "")
    if value == "":
        return None
    if not _INTEGER_TEXT.fullmatch(value):
        raise bad_parameter(f"{name} must be an integer")
    return int(value)


def _ok(data: object) -> bytes:
    return json.dumps({"code": "200000", "data": data}, separators=(",", ":")).encode()


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "msg": message}, separators=(",", ":")).encode()


# -- route handlers (pure: exchange state in, response body out) -----------------------

_Handler = Callable[[Exchange, Account, Mapping[str, str], bytes], bytes]


def _borrow(exchange: Exchange, account: Account, _: Mapping[str, str], body: bytes) -> bytes:
    fields = _json_body(body)
    currency = _text(fields, "currency")
    size = _amount(fields, "size")
    time_in_force = fields.get("timeInForce")
    if time_in_force is None:
        raise bad_parameter("timeInForce is required")
    if time_in_force not in ("IOC", "FOK"):
        raise bad_parameter("timeInForce must be IOC or FOK")
    symbol = _margin_symbol(fields)
    is_hf = _flag(fields, "isHf")
    entry = exchange.borrow(account, currency, size, time_in_force, symbol, is_hf)
    return _ok({"orderNo": entry.order_no, "actualSize": plain(entry.actual_size)})


def _repay(exchange: Exchange, account: Account, _: Mapping[str, str], body: bytes) -> bytes:
    fields = _json_body(body)
    currency = _text(fields, "currency")
    size = _amount(fields, "size")
    symbol = _margin_symbol(fields)
    is_hf = _flag(fields, "isHf")
    entry = exchange.repay(account, currency, size, symbol, is_hf)
    return _ok(
        {
            "timestamp": entry.created_time,
            "orderNo": entry.order_no,
            "actualSize": plain(entry.actual_size),
        }
    )


def _leverage(exchange: Exchange, account: Account, _: Mapping[str, str], body: bytes) -> bytes:
    fields = _json_body(body)
    raw = fields.get("leverage")
    if raw is None or raw == "":
        raise bad_parameter("leverage is required")
    if not isinstance(raw, str):
        raise bad_parameter("leverage must be a string")
    if not _LEVERAGE_TEXT.fullmatch(raw) or Decimal(raw) <= 1:
        raise bad_parameter("leverage must be greater than 1 with at most two decimals")
    exchange.set_leverage(account, Decimal(raw), _margin_symbol(fields))
    return _ok(None)


def _history(kind: HistoryKind) -> _Handler:
    def handle(exchange: Exchange, account: Account, query: Mapping[str, str], _: bytes) -> bytes:
        raw_currency = query.get("currency", "")
        if not raw_currency:
            if kind != "interest":
                raise bad_parameter("currency is required")
            currencies: list[str] | None = None
        else:
            currencies = raw_currency.split(",")
            if not all(currencies):
                raise bad_parameter("currency must be a comma-separated list of codes")
        isolated = query.get("isIsolated", "false") or "false"
        if isolated not in ("true", "false"):
            raise bad_parameter("isIsolated must be true or false")
        symbol = ""
        if isolated == "true":
            symbol = query.get("symbol", "")
            if not symbol:
                raise bad_parameter("symbol is required for isolated margin")
        start = max(_query_int(query, "startTime") or 0, MIN_START_TIME)
        end = _query_int(query, "endTime")
        page = _query_int(query, "currentPage")
        page = 1 if page is None else page
        if page < 1:
            raise bad_parameter("currentPage must be at least 1")
        size = _query_int(query, "pageSize")
        size = _DEFAULT_PAGE if size is None else size
        if not _MIN_PAGE <= size <= _MAX_PAGE:
            raise bad_parameter("pageSize must be between 10 and 500")

        store = account.stores[kind]
        order_no = query.get("orderNo", "") if kind != "interest" else ""
        records: Sequence[Record]
        if order_no:
            found = store.find_order(order_no)
            records = (
                [found]
                if found is not None
                and found.symbol == symbol
                and (currencies is None or found.currency in currencies)
                else []
            )
        else:
            records = store.select(currencies, symbol)
        lo, hi = time_range(records, start, end)
        total = hi - lo
        # Newest first: page p holds ascending indices [top - size, top), reversed.
        top = hi - (page - 1) * size
        items = [store.render(rec) for rec in reversed(records[max(lo, top - size) : top])]
        if top <= lo:
            items = []
        head = (
            f'{{"code":"200000","data":{{"timestamp":{exchange.clock()},'
            f'"currentPage":{page},"pageSize":{size},"totalNum":{total},'
            f'"totalPage":{-(-total // size)},"items":['
        ).encode()
        return head + b",".join(items) + b"]}}"

    return handle


@attrs.frozen
class _Route:
    weight: int
    handler: _Handler | None  # None: the public server-time route
    read: bool = False

    @property
    def signed(self) -> bool:
        return self.handler is not None


_ROUTES: Final[dict[str, _Route]] = {
    "POST /api/v3/margin/borrow": _Route(15, _borrow),
    "GET /api/v3/margin/borrow": _Route(15, _history("borrow"), read=True),
    "POST /api/v3/margin/repay": _Route(10, _repay),
    "GET /api/v3/margin/repay": _Route(15, _history("repay"), read=True),
    "GET /api/v3/margin/interest": _Route(20, _history("interest"), read=True),
    "POST /api/v3/position/update-user-leverage": _Route(8, _leverage),
    "GET /api/v1/timestamp": _Route(0, None),
}


#: Most records one :meth:`FakeKuCoin.seed_history` call may add per kind.
_MAX_SEED_RECORDS: Final = 10**8
#: Largest clock skew (ms, either way): about 300 years.
_MAX_SKEW_MS: Final = 10**13
_MAX_QUOTA: Final = 10**12
_MAX_WINDOW_MS: Final = 10**10


def _api_key(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"api_key must be a str, got {type(value).__name__}")
    return value


def _time(value: object, name: str) -> int:
    return check_int(value, name, 0, MAX_TIME_MS)


class FakeKuCoin:
    """A fake KuCoin margin API served over HTTP on ``127.0.0.1`` (a free port by default).

    Use as ``async with FakeKuCoin() as fake:`` or ``await fake.start()`` /
    ``await fake.close()``. ``rate_limit_quota`` is the weight each account may spend per
    window of ``rate_limit_window_ms`` milliseconds; ``seed`` makes synthetic history and
    order numbers reproducible. All amounts are ``Decimal`` in currency units and all
    times epoch milliseconds on the fake's clock (real time plus the clock skew).

    ``idle_close_after`` (seconds, default ``None``: never) plays a gateway that closes
    idle keep-alive connections without the client noticing yet: a request arriving on
    a connection that has served a request and then sat idle (no request in progress)
    for longer than that is not processed (nothing applied) and its connection is
    aborted without a reply, as by a TCP reset. A request on a fresh connection, or on
    one idle for less, is served normally. ``stats.idle_drops`` counts such drops; see
    also :meth:`set_idle_close`.

    Every argument is checked before anything changes: a wrong type is a ``TypeError``
    and an out-of-range value (NaN, an absurd magnitude or digit count, a negative count
    or amount) a ``ValueError``. Amounts, on the wire and here, are below ``1e20`` with
    at most 18 decimal places and 40 digits; times are within ``0 .. 10**18 - 1``.
    """

    def __init__(
        self,
        *,
        rate_limit_quota: int = 4000,
        rate_limit_window_ms: int = 30_000,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_close_after: float | None = None,
    ) -> None:
        self.stats = FakeStats()
        self._host = host
        self._port = port
        self._skew_ms = 0
        self._latency = 0.0
        self._check_rate_limit(rate_limit_quota, rate_limit_window_ms)
        self._quota = rate_limit_quota
        self._window_ms = rate_limit_window_ms
        check_int(seed, "seed", -(2**63), 2**63 - 1)
        check_int(port, "port", 0, 65_535)
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        self._idle_close_ns: int | None = None
        self.set_idle_close(idle_close_after)
        self._exchange = Exchange(seed=seed, clock=self.now_ms)
        self._keys: dict[str, KeyRecord] = {}
        self._faults = FaultPlan()
        self._server: _CountingServer | None = None
        self._runner: web.ServerRunner | None = None
        self._closing: asyncio.Event | None = None
        self._url: str | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> FakeKuCoin:
        """Start serving; returns ``self``. ``RuntimeError`` if already started."""
        if self._runner is not None:
            raise RuntimeError("FakeKuCoin is already started")
        self._closing = asyncio.Event()
        server = _CountingServer(self._handle, self.stats, access_log=None)
        self._server = server
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        """Stop serving and close every connection (stalled replies end at once)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> FakeKuCoin:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (``RuntimeError`` before :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("FakeKuCoin is not started; use 'async with FakeKuCoin()'")
        return self._url

    # -- accounts and state -----------------------------------------------------------

    def add_account(
        self,
        key_version: int = 3,
        *,
        borrow_limit: Decimal | int | str | None = None,
        credentials: Credentials | None = None,
    ) -> Credentials:
        """Create an account and return its credentials (fresh random key, secret and
        passphrase unless ``credentials`` are given to register instead).

        ``borrow_limit`` caps the principal the account may owe per currency and margin
        mode (currency units); ``None`` means only the lending pool limits it.
        """
        limit = None if borrow_limit is None else check_decimal(borrow_limit, "borrow_limit")
        if credentials is None:
            if type(key_version) is not int or key_version not in (2, 3):
                raise ValueError(f"key_version must be 2 or 3, got {key_version!r}")
            credentials = Credentials(
                api_key=secrets.token_hex(12),
                api_secret=secrets.token_hex(16),
                api_passphrase=secrets.token_hex(8),
                key_version=key_version,
            )
        elif not isinstance(credentials, Credentials):
            raise TypeError(f"credentials must be Credentials, got {type(credentials).__name__}")
        if credentials.api_key in self._keys:
            raise ValueError(f"API key {credentials.api_key!r} is already registered")
        key = KeyRecord(
            credentials.api_key,
            credentials.api_secret,
            credentials.api_passphrase,
            credentials.key_version,
        )
        self._exchange.add_account(key, limit)
        self._keys[key.api_key] = key
        return credentials

    def seed_history(
        self,
        api_key: str,
        currency: str,
        borrows: int = 0,
        repays: int = 0,
        interest: int = 0,
        *,
        symbol: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> None:
        """Append synthetic SUCCESS records (history only; debt and ledger are untouched).

        ``borrows``, ``repays`` and ``interest`` are record counts for ``currency``;
        ``symbol`` makes them isolated-margin records of that symbol (default cross).
        They are spread over ``[start_time, end_time]`` in epoch ms (default: the 90 days
        ending one second before now on the fake's clock), with distinct times within one
        call when the range allows, and are reproducible from the fake's ``seed``.
        Records older than 1680278400000 exist but no query can reach them.
        """
        account = self._exchange.account(_api_key(api_key))
        code = check_code(currency, "currency")
        position = check_symbol(symbol)
        counts: dict[HistoryKind, int] = {
            "borrow": check_int(borrows, "borrows", 0, _MAX_SEED_RECORDS),
            "repay": check_int(repays, "repays", 0, _MAX_SEED_RECORDS),
            "interest": check_int(interest, "interest", 0, _MAX_SEED_RECORDS),
        }
        end = max(self.now_ms() - 1000, 0) if end_time is None else _time(end_time, "end_time")
        start = max(end - 90 * _DAY_MS, 0)
        if start_time is not None:
            start = _time(start_time, "start_time")
        if start > end:
            raise ValueError(f"start_time {start} is after end_time {end}")
        self._exchange.seed_history(account, code, counts, position, start, end)

    def append_interest(
        self,
        api_key: str,
        currency: str,
        amount: Decimal | int | str,
        day_ratio: Decimal | int | str,
        created_time: int | None = None,
        *,
        symbol: str | None = None,
    ) -> InterestCharge:
        """Add one interest history record (now, or at ``created_time`` epoch ms); it
        changes no debt. For tests of streams that follow new records."""
        account = self._exchange.account(_api_key(api_key))
        return self._exchange.add_interest(
            account,
            check_code(currency, "currency"),
            check_symbol(symbol),
            check_decimal(amount, "amount"),
            check_decimal(day_ratio, "day_ratio"),
            None if created_time is None else _time(created_time, "created_time"),
        )

    def accrue_interest(
        self, api_key: str | None = None, *, hours: Decimal | int | str = 1
    ) -> list[InterestCharge]:
        """Charge ``hours`` of interest on every open position of one account (or all):
        ``principal * day_ratio * hours / 24``, rounded up to 8 decimals. Each charge is
        owed (repaid before principal) and appears in interest history."""
        duration = check_decimal(hours, "hours")
        accounts = (
            list(self._exchange.accounts.values())
            if api_key is None
            else [self._exchange.account(_api_key(api_key))]
        )
        charges: list[InterestCharge] = []
        for account in accounts:
            charges.extend(self._exchange.accrue_interest(account, duration))
        return charges

    def set_interest_rate(self, currency: str, day_ratio: Decimal | int | str) -> None:
        """Daily interest rate of ``currency`` for :meth:`accrue_interest` (default 0.0002)."""
        ratio = check_decimal(day_ratio, "day_ratio")
        self._exchange.day_ratio[check_code(currency, "currency")] = ratio

    def ledger(self, api_key: str) -> list[LedgerEntry]:
        """Every borrow and repay applied for this account through the API, in order."""
        return list(self._exchange.account(api_key).entries)

    def debt(self, api_key: str, currency: str, symbol: str = "") -> Decimal:
        """Outstanding principal in ``currency`` (``symbol`` ``""`` = cross margin)."""
        position = self._exchange.account(api_key).positions.get((currency, symbol))
        return Decimal(0) if position is None else position.principal

    def accrued_interest(self, api_key: str, currency: str, symbol: str = "") -> Decimal:
        """Interest accrued and not yet repaid in ``currency`` (``""`` = cross margin)."""
        position = self._exchange.account(api_key).positions.get((currency, symbol))
        return Decimal(0) if position is None else position.interest

    def set_liquidity(self, currency: str, amount: Decimal | int | str | None) -> None:
        """What borrows of ``currency`` can still draw in all (currency units); borrows
        consume it and repaid principal refills it. ``None`` restores the default 10**9."""
        code = check_code(currency, "currency")
        if amount is None:
            self._exchange.liquidity.pop(code, None)
        else:
            self._exchange.liquidity[code] = check_decimal(amount, "amount")

    def liquidity(self, currency: str) -> Decimal:
        """What borrows of ``currency`` can still draw (currency units)."""
        return self._exchange.pool(currency)

    def set_max_leverage(self, value: Decimal | int | str, symbol: str = "") -> None:
        """Highest leverage accepted for cross (``symbol=""``, also the default for every
        isolated symbol) or for one isolated ``symbol``. Default 10."""
        leverage = check_decimal(value, "value", minimum=1)
        self._exchange.max_leverage[check_symbol(symbol)] = leverage

    def set_debt_leverage(self, api_key: str, value: Decimal | int | str, symbol: str = "") -> None:
        """The account's current debt leverage: a lower requested leverage is refused
        with ``130103``. Default 1 (no floor)."""
        account = self._exchange.account(_api_key(api_key))
        leverage = check_decimal(value, "value", minimum=1)
        account.debt_leverage[check_symbol(symbol)] = leverage

    def leverage(self, api_key: str, symbol: str = "") -> Decimal | None:
        """The last leverage the account set (``None`` if never set)."""
        return self._exchange.account(api_key).leverage.get(symbol)

    def history_size(self, api_key: str, kind: HistoryKind) -> int:
        """How many ``"borrow"``, ``"repay"`` or ``"interest"`` records the account has."""
        return self._exchange.account(api_key).stores[kind].count

    # -- clock, limits and faults -----------------------------------------------------

    def now_ms(self) -> int:
        """The fake's clock: real time plus the skew, in epoch milliseconds."""
        return time.time_ns() // 1_000_000 + self._skew_ms

    def set_clock_skew(self, ms: int) -> None:
        """Run the fake's clock ``ms`` milliseconds ahead of real time (negative: behind).
        It drives the timestamp check, ``/api/v1/timestamp`` and created times."""
        self._skew_ms = check_int(ms, "ms", -_MAX_SKEW_MS, _MAX_SKEW_MS)

    def set_rate_limit(self, quota: int, window_ms: int) -> None:
        """Weight per account per window of ``window_ms`` milliseconds. Every account's
        window restarts at its next request."""
        self._check_rate_limit(quota, window_ms)
        self._quota = quota
        self._window_ms = window_ms
        for account in self._exchange.accounts.values():
            account.window_start = None
            account.window_used = 0

    @staticmethod
    def _check_rate_limit(quota: int, window_ms: int) -> None:
        check_int(quota, "quota", 0, _MAX_QUOTA)
        check_int(window_ms, "window_ms", 1, _MAX_WINDOW_MS)

    def set_idle_close(self, seconds: float | None) -> None:
        """Drop requests on keep-alive connections idle for more than ``seconds`` (``None``:
        never), as a gateway that closed them would; see the class docstring. It applies
        at once, to connections already idle too."""
        if seconds is None:
            self._idle_close_ns = None
        else:
            self._idle_close_ns = int(check_seconds(seconds, "seconds", positive=True) * 1e9)

    def set_latency(self, seconds: float) -> None:
        """Delay every request by ``seconds`` before it is processed and answered."""
        self._latency = check_seconds(seconds, "seconds")

    def inject(
        self,
        kind: str,
        *,
        route: str | None = None,
        times: int = 1,
        status: int = 502,
        stall: float = 30.0,
        latency: float = 0.05,
        reset_ms: int = 100,
    ) -> None:
        """Script ``times`` faults for the next requests matching ``route``.

        ``route`` is ``"METHOD /path"`` (e.g. ``"POST /api/v3/margin/borrow"``) or ``None``
        for any signed API route; faults are consumed in FIFO order. Kinds:
        ``"5xx"`` (HTML page with ``status``, nothing applied), ``"rate_limit"`` (429
        ``429000`` with ``gw-ratelimit-reset: reset_ms``, nothing applied, no weight),
        ``"drop_before"`` (connection closed unanswered, nothing applied),
        ``"apply_then_5xx"``, ``"apply_then_drop"`` (processed fully, then an HTML page or
        a dropped connection), ``"apply_then_stall"`` (processed, then no reply for
        ``stall`` seconds or until the fake closes, then dropped) and ``"latency"``
        (``latency`` seconds added, then answered normally).
        """
        self._faults.inject(
            kind,
            route=route,
            times=times,
            status=status,
            stall=stall,
            latency=latency,
            reset_ms=reset_ms,
        )

    def set_fault_rate(
        self,
        p: float,
        kinds: Iterable[str] = ("5xx", "drop_before", "rate_limit", "latency"),
        *,
        seed: int = 0,
        latency: float = 0.05,
    ) -> None:
        """Give each history request (reads only) probability ``p`` of a fault drawn
        uniformly from ``kinds`` (``"5xx"`` picks 502, 503 or 504; ``"latency"`` adds
        ``latency`` seconds). ``p=0`` switches random faults off."""
        self._faults.set_rate(p, kinds, seed=seed, latency=latency)

    def clear_faults(self) -> None:
        """Forget scripted faults not yet served and switch random faults off."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Scripted faults not yet served."""
        return self._faults.pending

    # -- HTTP -------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol
        if self._idle_too_long(connection):
            # The gateway closed this connection while it was idle; the client had not
            # noticed yet, so its request meets a reset and never reaches the exchange.
            self.stats.idle_drops += 1
            return self._drop(request)
        try:
            response = await self._respond(request)
        finally:
            if self._server is not None and connection.transport is not None:
                self._server.idle_since[connection] = time.monotonic_ns()
        if response is None:
            return self._drop(request)
        self.stats.status_counts[response.status] += 1
        return response

    def _idle_too_long(self, connection: RequestHandler) -> bool:
        limit = self._idle_close_ns
        if limit is None or self._server is None:
            return False
        since = self._server.idle_since.get(connection)
        return since is not None and time.monotonic_ns() - since > limit

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        # Abort rather than close: no reply bytes may leave, so the client sees a
        # disconnection. aiohttp then fails to write the placeholder and moves on.
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; ``True`` if the fake started closing meanwhile."""
        assert self._closing is not None
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse | None:
        route_name = f"{request.method} {request.path}"
        self.stats.requests[route_name] += 1
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # A parameter error like any other, rather than aiohttp's plain-text 413.
            return self._json(400, _error_body("400100", "Request body is too large"))
        except RequestPayloadError:
            # A body aiohttp could not decode: corrupt gzip/deflate, or one inflating
            # past aiohttp's own cap. Nothing was read, so nothing can be applied.
            return self._json(400, _error_body("400100", "Malformed request body"))
        route = _ROUTES.get(route_name)
        if route is None:
            return self._json(404, _error_body("404000", "Not Found"))
        fault = self._faults.take(route_name, signed=route.signed, read=route.read)
        if fault is not None:
            self.stats.faults[fault.kind] += 1
        if self._latency > 0 and await self._pause(self._latency):
            return None
        if fault is not None:
            early = await self._before(fault, request)
            if early is not False:
                return early
        if route.handler is None:
            return self._json(200, b'{"code":"200000","data":%d}' % self.now_ms())
        response = self._signed(request, route.handler, route.weight, body)
        if fault is not None and fault.kind in AFTER_KINDS:
            if fault.kind == "apply_then_5xx":
                return self._page(fault.status)
            if fault.kind == "apply_then_stall":
                await self._pause(fault.stall)
            return None
        return response

    async def _before(
        self, fault: Fault, request: web.BaseRequest
    ) -> web.StreamResponse | Literal[False] | None:
        """Serve a fault that strikes before processing; ``False`` to go on processing."""
        if fault.kind == "latency":
            return None if await self._pause(fault.latency) else False
        if fault.kind == "5xx":
            return self._page(fault.status)
        if fault.kind == "drop_before":
            return None
        if fault.kind == "rate_limit":
            self.stats.rate_limited += 1
            headers = {}
            if request.headers.get("KC-API-KEY", "") in self._keys:
                headers = self._limit_headers(0, fault.reset_ms)
            return self._json(429, _error_body("429000", "Too Many Requests"), headers)
        return False

    def _signed(
        self, request: web.BaseRequest, handler: _Handler, weight: int, body: bytes
    ) -> web.Response:
        url = request.rel_url
        checked = verify(
            request.headers,
            method=request.method,
            path=request.path,
            query=url.query_string,
            body=body,
            now_ms=self.now_ms(),
            keys=self._keys,
            trailing_question_mark=request.raw_path.endswith("?"),
        )
        if isinstance(checked, AuthFailure):
            return self._json(checked.http_status, _error_body(checked.code, checked.message))
        account = self._exchange.accounts[checked.api_key]
        allowed, headers = self._charge(account, weight)
        if not allowed:
            self.stats.rate_limited += 1
            return self._json(429, _error_body("429000", "Too Many Requests"), headers)
        try:
            return self._json(200, handler(self._exchange, account, url.query, body), headers)
        except Refusal as refusal:
            return self._json(
                refusal.http_status, _error_body(refusal.code, refusal.message), headers
            )

    def _charge(self, account: Account, weight: int) -> tuple[bool, dict[str, str]]:
        """Spend ``weight`` from the account's window; the reply's rate-limit headers."""
        # Integer nanoseconds: with float milliseconds, start + window - now could round
        # to just above the window and ceil() made the reset read 30001 for 30000.
        now = time.monotonic_ns()
        window_ns = self._window_ms * 1_000_000
        if account.window_start is None or now >= account.window_start + window_ns:
            account.window_start = now
            account.window_used = 0
        reset = -(-(account.window_start + window_ns - now) // 1_000_000)  # ceil, in ms
        remaining = self._quota - account.window_used
        if weight > remaining:
            return False, self._limit_headers(0, reset)
        account.window_used += weight
        return True, self._limit_headers(remaining - weight, reset)

    def _limit_headers(self, remaining: int, reset_ms: int) -> dict[str, str]:
        return {
            "gw-ratelimit-limit": str(self._quota),
            "gw-ratelimit-remaining": str(remaining),
            "gw-ratelimit-reset": str(max(reset_ms, 0)),
        }

    @staticmethod
    def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(body=body, status=status, headers=headers, content_type=_JSON)

    @staticmethod
    def _page(status: int) -> web.Response:
        return web.Response(body=gateway_page(status), status=status, content_type="text/html")
