"""2. Parsing: records per second turning one 500-record page (bytes) into objects.

No network: every contender starts from the same reply body (:mod:`benchmarks.payload`),
rounds alternate between contenders, and each round is timed in CPU time.

* ``json.loads`` alone: the floor (dicts of strings, nothing typed);
* margin-async: what a client runs on a reply body, ``envelope.loads`` (``json`` with
  ``parse_float=Decimal``) + ``convert.structure(data, Page[BorrowOrder])``: frozen attrs
  models, ``Decimal`` amounts, ``OrderStatus``; and the same with the ``fast`` extra
  (msgspec decodes), when it is installed;
* KuCoin's official SDK: what its transport does with a reply, ``RestResponse.from_json``
  then ``GetBorrowHistoryResp.from_dict`` (pydantic; amounts stay strings);
* ccxt: ``json.loads`` then ``kucoin.parse_margin_loan`` over each item. ccxt has no
  parser for borrow-history records; ``parse_margin_loan`` (for a borrow's reply:
  orderNo, currency, actualSize) is its closest ``parse_*``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import FAST_JSON, Mode, Report, Target, fmt, median, optional_import
from benchmarks.payload import borrow_page
from margin_async._convert import structure
from margin_async._envelope import loads_stdlib
from margin_async._models import BorrowOrder, Page

__all__ = ["run"]

_RECORDS = 500
_FLOOR = "json.loads alone (floor)"
_OURS = "margin-async"
_FAST = "margin-async + fast extra (msgspec)"
_OFFICIAL = "official SDK (pydantic)"
_CCXT = "ccxt (parse_margin_loan per item)"
_WITHIN_FLOOR = 2.0


def _contenders(body: bytes) -> dict[str, Callable[[], object] | str]:
    def floor() -> object:
        return json.loads(body)

    def margin_async() -> object:
        return structure(loads_stdlib(body)["data"], Page[BorrowOrder])

    contenders: dict[str, Callable[[], object] | str] = {
        _FLOOR: floor,
        _OURS: margin_async,
    }
    if FAST_JSON is None:
        contenders[_FAST] = "not installed"
    else:
        fast_loads = FAST_JSON

        def margin_async_fast() -> object:
            return structure(fast_loads(body)["data"], Page[BorrowOrder])

        contenders[_FAST] = margin_async_fast
    if optional_import("kucoin_universal_sdk") is None:
        contenders[_OFFICIAL] = "not installed"
    else:
        from kucoin_universal_sdk.generate.margin.debit.model_get_borrow_history_resp import (  # type: ignore[import-untyped]
            GetBorrowHistoryResp,
        )
        from kucoin_universal_sdk.model.common import RestResponse  # type: ignore[import-untyped]

        def official() -> object:
            envelope = RestResponse.from_json(body.decode("utf-8"))
            return GetBorrowHistoryResp.from_dict(envelope.data)

        contenders[_OFFICIAL] = official
    ccxt = optional_import("ccxt")
    if ccxt is None:
        contenders[_CCXT] = "not installed"
    else:
        exchange: Any = ccxt.kucoin()

        def ccxt_parse() -> object:
            data = json.loads(body)["data"]
            return [exchange.parse_margin_loan(item) for item in data["items"]]

        contenders[_CCXT] = ccxt_parse
    return contenders


def _rate(parse: Callable[[], object], iterations: int) -> float:
    # CPU time of this process: no I/O here, and on a shared machine wall time also
    # counts the other processes the scheduler ran meanwhile.
    started = time.process_time()
    for _ in range(iterations):
        parse()
    return _RECORDS * iterations / (time.process_time() - started)


def run(mode: Mode) -> Report:
    iterations = mode.pick(3, 40, 100)
    rounds = mode.pick(1, 5, 9)
    body = borrow_page(_RECORDS)
    contenders = _contenders(body)
    runnable = {name: c for name, c in contenders.items() if callable(c)}
    for parse in runnable.values():  # warm up, and check each produces 500 records
        result: Any = parse()
        if isinstance(result, dict):
            result = result["data"]["items"]
        elif not isinstance(result, list):
            result = result.items
        assert len(result) == _RECORDS
    rates: dict[str, list[float]] = {name: [] for name in runnable}
    for _ in range(rounds):
        for name, parse in runnable.items():
            rates[name].append(_rate(parse, iterations))
    report = Report(
        f"2. Parsing (one {_RECORDS}-record page, {len(body) / 1024:.0f} KiB, "
        f"{iterations} parses × {rounds} interleaved rounds, medians)",
        ["contender", "records/s", "µs per page", "margin-async is ×"],
    )
    ours = median(rates[_OURS])
    for name, contender in contenders.items():
        if not callable(contender):
            report.add(name, "–", "–", contender)
            continue
        rate = median(rates[name])
        report.add(name, fmt(rate, 0), fmt(_RECORDS / rate * 1e6), f"{ours / rate:.2f}× as fast")
    floor = median(rates[_FLOOR])
    report.targets.append(
        Target(
            f"within {_WITHIN_FLOOR:.0f}× of bare json.loads",
            floor / ours <= _WITHIN_FLOOR,
            f"{floor / ours:.2f}× slower",
        )
    )
    for name, goal in ((_OFFICIAL, 1.5), (_CCXT, 3.0)):
        text = f"≥ {goal:.1f}× {name}"
        if name in rates:
            ratio = ours / median(rates[name])
            report.targets.append(Target(text, ratio >= goal, f"{ratio:.2f}×"))
        else:
            report.targets.append(Target(text, None, "not installed"))
    text = f"with the fast extra: within {_WITHIN_FLOOR:.0f}× of bare json.loads"
    if _FAST in rates:
        slower = floor / median(rates[_FAST])
        report.targets.append(Target(text, slower <= _WITHIN_FLOOR, f"{slower:.2f}× slower"))
    else:
        report.targets.append(Target(text, None, "not installed"))
    report.notes.append(
        "Output differs by design: margin-async builds frozen models with exact Decimal "
        "amounts and a typed status; the official SDK keeps amounts as str; ccxt's "
        "parse_margin_loan keeps 3 fields (amount as float) plus the raw dict."
    )
    return report
