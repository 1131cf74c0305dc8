"""The fake exchange's state: accounts, positions, the ledger and the history store.

Nothing here does I/O; :mod:`margin_async.testing._server` turns HTTP requests into calls
on :class:`Exchange` and its answers (or :class:`Refusal`) back into replies.

History is kept per account and kind (``borrow``, ``repay``, ``interest``) in lists
sorted by ``created_time`` (ties by a global sequence number, which is also the order
of ``orderNo``), indexed per (currency, symbol) so that a page query is two bisects and
a slice, never a scan. Each record renders its JSON item once, on first use.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left, bisect_right, insort_right
from collections.abc import Callable, Sequence
from decimal import ROUND_UP, Decimal, localcontext
from operator import attrgetter
from typing import Final, Literal

import attrs

from margin_async.testing._auth import KeyRecord
from margin_async.testing._checks import ARITHMETIC

__all__ = [
    "DEFAULT_DAY_RATIO",
    "DEFAULT_LIQUIDITY",
    "DEFAULT_MAX_LEVERAGE",
    "MIN_START_TIME",
    "Account",
    "Exchange",
    "HistoryKind",
    "HistoryStore",
    "InterestCharge",
    "LedgerEntry",
    "Position",
    "Record",
    "Refusal",
    "plain",
]

#: The three history kinds the fake keeps.
HistoryKind = Literal["borrow", "repay", "interest"]
#: ``startTime`` below this (2023-04-01T00:00:00Z, epoch ms) is raised to it, as the API does.
MIN_START_TIME: Final = 1_680_278_400_000
#: What a borrow can draw from a currency's lending pool when none was set (currency units).
DEFAULT_LIQUIDITY: Final = Decimal(10**9)
#: Daily interest rate used by :meth:`Exchange.accrue_interest` when none was set.
DEFAULT_DAY_RATIO: Final = Decimal("0.0002")
#: Highest leverage accepted when none was set (cross and every isolated symbol).
DEFAULT_MAX_LEVERAGE: Final = Decimal(10)

_EIGHT_PLACES = Decimal("1E-8")
_CT = attrgetter("created_time")


def plain(value: Decimal) -> str:
    """Plain digits, no exponent, no trailing zeros (``1E+1`` -> ``10``, ``0.50`` -> ``0.5``)."""
    # The wide context: normalize() rounds to the context's precision.
    text = format(value.normalize(ARITHMETIC), "f")
    return "0" if text in ("-0", "0") else text


class Refusal(Exception):
    """A request the exchange refuses: the wire ``code``, ``msg`` and HTTP status."""

    def __init__(self, code: str, message: str, http_status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


def bad_parameter(message: str) -> Refusal:
    """A ``400100`` parameter error (HTTP 400)."""
    return Refusal("400100", message, 400)


@attrs.frozen
class LedgerEntry:
    """One borrow or repay the fake applied, in the order applied.

    Amounts are ``Decimal`` in currency units; ``symbol`` is ``""`` for cross margin;
    ``created_time`` is the server clock in epoch ms; ``time_in_force`` is ``None`` for
    repays. For a borrow, ``principal`` equals ``actual_size`` and ``interest`` is 0.
    """

    kind: Literal["borrow", "repay"]
    order_no: str
    currency: str
    symbol: str
    size: Decimal
    actual_size: Decimal
    principal: Decimal
    interest: Decimal
    created_time: int
    time_in_force: str | None
    is_hf: bool = False


@attrs.frozen
class InterestCharge:
    """One interest accrual: ``amount`` in currency units at ``day_ratio`` per day."""

    currency: str
    symbol: str
    day_ratio: Decimal
    amount: Decimal
    created_time: int


@attrs.define
class Position:
    """What an account owes in one currency and margin mode (currency units)."""

    principal: Decimal = Decimal(0)
    interest: Decimal = Decimal(0)


class Record:
    """One history record. ``values`` holds the rendered amounts of an applied record;
    seeded records derive theirs from ``r`` (random bits) when first rendered."""

    __slots__ = ("blob", "created_time", "currency", "r", "seq", "symbol", "values")

    def __init__(
        self,
        created_time: int,
        seq: int,
        currency: str,
        symbol: str,
        r: int = 0,
        values: tuple[str, ...] | None = None,
    ) -> None:
        self.created_time = created_time
        self.seq = seq
        self.currency = currency
        self.symbol = symbol
        self.r = r
        self.values = values
        self.blob: bytes | None = None


def _scaled(units: int, places: int) -> str:
    return plain(Decimal(units).scaleb(-places))


def _seeded_values(kind: HistoryKind, r: int) -> tuple[str, ...]:
    # Amounts are pure functions of the record's random bits, so seeding stays cheap and
    # the same seed always gives the same history.
    if kind == "interest":
        return _scaled(r % 900 + 100, 6), _scaled((r >> 16) % 10**9 + 1, 8)
    units = r % 10**9 + 1  # up to 100000 with four decimals
    if kind == "borrow":
        size = _scaled(units, 4)
        return size, size, "SUCCESS"
    interest = units * ((r >> 40) % 50) // 10_000
    return _scaled(units, 4), _scaled(units - interest, 4), _scaled(interest, 4), "SUCCESS"


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


class HistoryStore:
    """All records of one kind for one account, sorted and indexed for paging."""

    def __init__(self, kind: HistoryKind, order_no: Callable[[int], str]) -> None:
        self.kind: HistoryKind = kind
        self._order_no = order_no
        self._parts: dict[tuple[str, str], list[Record]] = {}
        self._by_symbol: dict[str, list[Record]] = {}
        self._merged: dict[tuple[tuple[str, ...], str], list[Record]] = {}
        self._by_order: dict[str, Record] | None = None
        self.count = 0

    def add(self, currency: str, symbol: str, records: list[Record]) -> None:
        """Add records of one currency and symbol, sorted by (created_time, seq), whose
        ``seq`` are all higher than any already stored."""
        if not records:
            return
        for target in (
            self._parts.setdefault((currency, symbol), []),
            self._by_symbol.setdefault(symbol, []),
        ):
            _merge(target, records)
        self._merged.clear()
        if self._by_order is not None:
            for record in records:
                self._by_order[self._order_no(record.seq)] = record
        self.count += len(records)

    def select(self, currencies: Sequence[str] | None, symbol: str) -> Sequence[Record]:
        """Records of the given currencies (``None``: all) and symbol, oldest first."""
        if currencies is None:
            return self._by_symbol.get(symbol, [])
        if len(currencies) == 1:
            return self._parts.get((currencies[0], symbol), [])
        key = (tuple(sorted(set(currencies))), symbol)
        merged = self._merged.get(key)
        if merged is None:
            merged = []
            for code in key[0]:
                merged.extend(self._parts.get((code, symbol), []))
            merged.sort(key=lambda rec: (rec.created_time, rec.seq))
            self._merged[key] = merged
        return merged

    def find_order(self, order_no: str) -> Record | None:
        """The borrow or repay record with this ``orderNo``, if any."""
        if self._by_order is None:
            self._by_order = {
                self._order_no(rec.seq): rec for part in self._parts.values() for rec in part
            }
        return self._by_order.get(order_no)

    def render(self, record: Record) -> bytes:
        """The record's JSON item as it appears in a history page (cached)."""
        blob = record.blob
        if blob is not None:
            return blob
        values = record.values or _seeded_values(self.kind, record.r)
        if self.kind == "interest":
            text = (
                f'{{"currency":{_json_str(record.currency)},"dayRatio":"{values[0]}",'
                f'"interestAmount":"{values[1]}","createdTime":{record.created_time}}}'
            )
        else:
            head = (
                f'{{"orderNo":"{self._order_no(record.seq)}",'
                f'"symbol":{_json_str(record.symbol) if record.symbol else "null"},'
                f'"currency":{_json_str(record.currency)},"size":"{values[0]}",'
            )
            if self.kind == "borrow":
                tail = f'"actualSize":"{values[1]}","status":"{values[2]}",'
            else:
                tail = f'"principal":"{values[1]}","interest":"{values[2]}","status":"{values[3]}",'
            text = f'{head}{tail}"createdTime":{record.created_time}}}'
        blob = text.encode("ascii")
        record.blob = blob
        return blob


def _merge(target: list[Record], records: list[Record]) -> None:
    if not target or target[-1].created_time <= records[0].created_time:
        target.extend(records)
    elif len(records) == 1:
        insort_right(target, records[0], key=_CT)
    else:
        # Stable sort on time alone keeps ties in seq order: the new seqs are the highest.
        target.extend(records)
        target.sort(key=_CT)


def time_range(records: Sequence[Record], start: int, end: int | None) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of records with ``start <= created_time <= end``."""
    lo = bisect_left(records, start, key=_CT)
    hi = len(records) if end is None else bisect_right(records, end, key=_CT)
    return lo, max(lo, hi)


class Account:
    """One API key's account: positions, applied ledger, history and rate window."""

    def __init__(
        self,
        key: KeyRecord,
        number: int,
        borrow_limit: Decimal | None,
        order_no: Callable[[int], str],
    ) -> None:
        self.key = key
        self.number = number
        self.borrow_limit = borrow_limit
        self.positions: dict[tuple[str, str], Position] = {}
        self.entries: list[LedgerEntry] = []
        self.stores: dict[HistoryKind, HistoryStore] = {
            kind: HistoryStore(kind, order_no) for kind in ("borrow", "repay", "interest")
        }
        self.leverage: dict[str, Decimal] = {}
        self.debt_leverage: dict[str, Decimal] = {}
        self.seed_calls = 0
        self._last_time: dict[HistoryKind, int] = {}
        #: Start of the current rate-limit window (monotonic ns) and weight used in it.
        self.window_start: int | None = None
        self.window_used = 0

    def position(self, currency: str, symbol: str) -> Position:
        """The position for (currency, symbol), created empty on first use."""
        return self.positions.setdefault((currency, symbol), Position())

    def stamp(self, kind: HistoryKind, now_ms: int) -> int:
        """A created time for a new applied record: ``now_ms``, but strictly after the
        previous one of the same kind so that history order is total."""
        stamp = max(now_ms, self._last_time.get(kind, 0) + 1)
        self._last_time[kind] = stamp
        return stamp


class Exchange:
    """Accounts, lending pools and rates of one fake exchange (no I/O).

    ``clock`` returns the server time in epoch ms (already skewed).
    """

    def __init__(self, *, seed: int, clock: Callable[[], int]) -> None:
        self.seed = seed
        self.clock = clock
        self.accounts: dict[str, Account] = {}
        self.liquidity: dict[str, Decimal] = {}
        self.day_ratio: dict[str, Decimal] = {}
        self.max_leverage: dict[str, Decimal] = {}
        self._seq = 0
        # An ObjectId-looking prefix: 24 hex digits whose order is the sequence's order.
        self._prefix = f"{(0x6500_0000 + seed) & 0xFFFF_FFFF:08x}"

    def order_no(self, seq: int) -> str:
        """The ``orderNo`` of the record with this sequence number."""
        return f"{self._prefix}{seq:016x}"

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_account(self, key: KeyRecord, borrow_limit: Decimal | None) -> Account:
        """Register an API key; its account starts with no debt and no history."""
        account = Account(key, len(self.accounts), borrow_limit, self.order_no)
        self.accounts[key.api_key] = account
        return account

    def account(self, api_key: str) -> Account:
        """The account of an API key (``KeyError`` with a readable message if unknown)."""
        try:
            return self.accounts[api_key]
        except KeyError:
            raise KeyError(f"no account with API key {api_key!r} on this FakeKuCoin") from None

    # -- money ------------------------------------------------------------------------

    def pool(self, currency: str) -> Decimal:
        """What the lending pool of ``currency`` can still lend (currency units)."""
        return self.liquidity.get(currency, DEFAULT_LIQUIDITY)

    def borrow(
        self,
        account: Account,
        currency: str,
        size: Decimal,
        time_in_force: str,
        symbol: str,
        is_hf: bool,
    ) -> LedgerEntry:
        """Apply a borrow: IOC fills what is available, FOK all or nothing.

        Raises :class:`Refusal` ``130101`` when nothing (IOC) or not all (FOK) can be lent.
        Everything that can fail is computed before the first change.
        """
        with localcontext(ARITHMETIC):
            held = account.positions.get((currency, symbol))
            principal = Decimal(0) if held is None else held.principal
            available = self.pool(currency)
            if account.borrow_limit is not None:
                available = min(available, account.borrow_limit - principal)
            filled = min(size, max(available, Decimal(0)))
            if filled <= 0 or (time_in_force == "FOK" and filled < size):
                raise Refusal(
                    "130101",
                    f"Insufficient lendable {currency}: requested {plain(size)}, "
                    f"available {plain(max(available, Decimal(0)))}",
                )
            values = (plain(size), plain(filled), "SUCCESS")
            pool = self.pool(currency) - filled
            position = account.position(currency, symbol)
            position.principal += filled
        self.liquidity[currency] = pool
        now = account.stamp("borrow", self.clock())
        seq = self._next_seq()
        entry = LedgerEntry(
            "borrow", self.order_no(seq), currency, symbol, size, filled, filled,
            Decimal(0), now, time_in_force, is_hf,
        )  # fmt: skip
        account.entries.append(entry)
        account.stores["borrow"].add(
            currency, symbol, [Record(now, seq, currency, symbol, values=values)]
        )
        return entry

    def repay(
        self, account: Account, currency: str, size: Decimal, symbol: str, is_hf: bool
    ) -> LedgerEntry:
        """Apply a repay: accrued interest first, then principal, never more than owed.

        Raises :class:`Refusal` ``130102`` when nothing is owed. Everything that can fail
        is computed before the first change.
        """
        with localcontext(ARITHMETIC):
            position = account.positions.get((currency, symbol))
            owed = Decimal(0) if position is None else position.principal + position.interest
            if position is None or owed <= 0:
                raise Refusal("130102", f"No outstanding {currency} liability to repay")
            paid = min(size, owed)
            interest = min(paid, position.interest)
            principal = paid - interest
            values = (plain(size), plain(principal), plain(interest), "SUCCESS")
            # Repaid principal returns to the lending pool.
            pool = self.pool(currency) + principal
            position.interest -= interest
            position.principal -= principal
        self.liquidity[currency] = pool
        now = account.stamp("repay", self.clock())
        seq = self._next_seq()
        entry = LedgerEntry(
            "repay", self.order_no(seq), currency, symbol, size, paid, principal, interest,
            now, None, is_hf,
        )  # fmt: skip
        account.entries.append(entry)
        account.stores["repay"].add(
            currency, symbol, [Record(now, seq, currency, symbol, values=values)]
        )
        return entry

    def set_leverage(self, account: Account, leverage: Decimal, symbol: str) -> None:
        """Apply a leverage change already checked for format (> 1, two decimals).

        Raises :class:`Refusal` ``130103`` above the maximum or below the account's
        current debt leverage.
        """
        maximum = self.max_leverage.get(symbol, self.max_leverage.get("", DEFAULT_MAX_LEVERAGE))
        if leverage > maximum:
            raise Refusal("130103", f"Leverage exceeds the maximum of {plain(maximum)}")
        floor = account.debt_leverage.get(symbol, Decimal(1))
        if leverage < floor:
            raise Refusal(
                "130103", f"Leverage cannot be below the current debt leverage {plain(floor)}"
            )
        account.leverage[symbol] = leverage

    def accrue_interest(self, account: Account, hours: Decimal) -> list[InterestCharge]:
        """Charge ``hours`` of interest on every open position of ``account``.

        Every charge is computed before any is applied, so a failure changes nothing.
        """
        due: list[tuple[str, str, Position, Decimal, Decimal]] = []
        with localcontext(ARITHMETIC):
            for (currency, symbol), position in account.positions.items():
                if position.principal <= 0:
                    continue
                ratio = self.day_ratio.get(currency, DEFAULT_DAY_RATIO)
                amount = (position.principal * ratio * hours / 24).quantize(
                    _EIGHT_PLACES, rounding=ROUND_UP
                )
                due.append((currency, symbol, position, ratio, amount))
            charges = []
            for currency, symbol, position, ratio, amount in due:
                position.interest += amount
                charges.append(self.add_interest(account, currency, symbol, amount, ratio, None))
        return charges

    def add_interest(
        self,
        account: Account,
        currency: str,
        symbol: str,
        amount: Decimal,
        day_ratio: Decimal,
        created_time: int | None,
    ) -> InterestCharge:
        """Add one interest history record (does not change what is owed)."""
        now = account.stamp("interest", self.clock()) if created_time is None else created_time
        values = (plain(day_ratio), plain(amount))
        record = Record(now, self._next_seq(), currency, symbol, values=values)
        account.stores["interest"].add(currency, symbol, [record])
        return InterestCharge(currency, symbol, day_ratio, amount, now)

    # -- synthetic history ------------------------------------------------------------

    def seed_history(
        self,
        account: Account,
        currency: str,
        counts: dict[HistoryKind, int],
        symbol: str,
        start_time: int,
        end_time: int,
    ) -> None:
        """Add synthetic records spread over ``[start_time, end_time]`` (epoch ms).

        Times within one call are distinct whenever the range has room; the records are
        history only (they do not change positions or the ledger).
        """
        account.seed_calls += 1
        for kind, count in counts.items():
            if count <= 0:
                continue
            rng = random.Random(f"{self.seed}:{account.number}:{account.seed_calls}:{kind}")
            first_seq = self._seq + 1
            self._seq += count
            account.stores[kind].add(
                currency,
                symbol,
                _synthetic(rng, count, first_seq, currency, symbol, start_time, end_time),
            )


def _synthetic(
    rng: random.Random,
    count: int,
    first_seq: int,
    currency: str,
    symbol: str,
    start: int,
    end: int,
) -> list[Record]:
    span = end - start + 1
    rand = rng.random
    bits = rng.getrandbits
    if span >= count:
        # One record per slot of equal width, at a random point in it: distinct and sorted.
        width = span // count
        return [
            Record(
                start + i * width + int(rand() * width), first_seq + i, currency, symbol, bits(64)
            )
            for i in range(count)
        ]
    return [
        Record(start + i * span // count, first_seq + i, currency, symbol, bits(64))
        for i in range(count)
    ]
