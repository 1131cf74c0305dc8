"""2. Parsing: records per second turning one 500-record page (bytes) into objects.

No network: every contender starts from the same reply body (:mod:`benchmarks.payload`)
and rounds alternate between contenders.

* ``json.loads`` alone: the floor (dicts of strings, nothing typed);
* margin-async: ``json.loads(parse_float=Decimal)`` + ``convert.structure(data,
  Page[BorrowOrder])``: frozen attrs models, ``Decimal`` amounts, ``OrderStatus``;
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
from decimal import Decimal
from typing import Any

from benchmarks.common import Mode, Report, Target, fmt, median, optional_import
from benchmarks.payload import borrow_page
from margin_async.convert import structure
from margin_async.models import BorrowOrder, Page

__all__ = ["run"]

_RECORDS = 500


def _contenders(body: bytes) -> dict[str, Callable[[], object] | str]:
    def floor() -> object:
        return json.loads(body)

    def margin_async() -> object:
        data = json.loads(body, parse_float=Decimal)["data"]
        return structure(data, Page[BorrowOrder])

    contenders: dict[str, Callable[[], object] | str] = {
        "json.loads alone (floor)": floor,
        "margin-async": margin_async,
    }
    if optional_import("kucoin_universal_sdk") is None:
        contenders["official SDK (pydantic)"] = "not installed"
    else:
        from kucoin_universal_sdk.generate.margin.debit.model_get_borrow_history_resp import (  # type: ignore[import-untyped]
            GetBorrowHistoryResp,
        )
        from kucoin_universal_sdk.model.common import RestResponse  # type: ignore[import-untyped]

        def official() -> object:
            envelope = RestResponse.from_json(body.decode("utf-8"))
            return GetBorrowHistoryResp.from_dict(envelope.data)

        contenders["official SDK (pydantic)"] = official
    ccxt = optional_import("ccxt")
    if ccxt is None:
        contenders["ccxt (parse_margin_loan per item)"] = "not installed"
    else:
        exchange: Any = ccxt.kucoin()

        def ccxt_parse() -> object:
            data = json.loads(body)["data"]
            return [exchange.parse_margin_loan(item) for item in data["items"]]

        contenders["ccxt (parse_margin_loan per item)"] = ccxt_parse
    return contenders


def _rate(parse: Callable[[], object], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        parse()
    return _RECORDS * iterations / (time.perf_counter() - started)


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
    ours = median(rates["margin-async"])
    for name, contender in contenders.items():
        if not callable(contender):
            report.add(name, "–", "–", contender)
            continue
        rate = median(rates[name])
        report.add(name, fmt(rate, 0), fmt(_RECORDS / rate * 1e6), f"{ours / rate:.2f}× as fast")
    floor = median(rates["json.loads alone (floor)"])
    report.targets.append(
        Target("within 3× of bare json.loads", floor / ours <= 3, f"{floor / ours:.2f}× slower")
    )
    for name, goal in (
        ("official SDK (pydantic)", 1.0),
        ("ccxt (parse_margin_loan per item)", 3.0),
    ):
        text = f"≥ {goal:.1f}× {name}"
        if name in rates:
            ratio = ours / median(rates[name])
            report.targets.append(Target(text, ratio >= goal, f"{ratio:.2f}×"))
        else:
            report.targets.append(Target(text, None, "not installed"))
    report.notes.append(
        "Output differs by design: margin-async builds frozen models with exact Decimal "
        "amounts and a typed status; the official SDK keeps amounts as str; ccxt's "
        "parse_margin_loan keeps 3 fields (amount as float) plus the raw dict."
    )
    return report
