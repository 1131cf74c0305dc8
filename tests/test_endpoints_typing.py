"""The keyword arguments declared once (TypedDicts with ``Unpack``) are still checked for
callers by ``mypy --strict``: every documented call style passes, and a wrong keyword, a
wrong type or an unchecked ``AccountError`` is an error at the line that has it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

# Lines ending in "# E: code" must have exactly that error; every other line none.
SNIPPET = textwrap.dedent(
    """
    from datetime import UTC, datetime
    from decimal import Decimal

    from margin_async import (
        AccountError,
        AccountPool,
        BorrowOrder,
        BorrowResult,
        InterestRecord,
        MarginClient,
        Page,
        Paginator,
        RepayOrder,
        RepayResult,
    )


    async def documented(c: MarginClient, pool: AccountPool) -> None:
        r: BorrowResult = await c.borrow("USDT", Decimal("10"), time_in_force="IOC")
        await c.borrow("BTC", "0.5", time_in_force="FOK", symbol="BTC-USDT", is_isolated=True)
        await c.borrow("USDT", "100", "IOC", is_hf=True)
        p: RepayResult = await c.repay("USDT", Decimal("10"), symbol=None, is_hf=False)
        await c.modify_leverage(Decimal("3.5"))
        await c.modify_leverage("5", symbol="BTC-USDT", is_isolated=True)
        page: Page[BorrowOrder] = await c.get_borrow_history(
            "USDT",
            is_isolated=True,
            symbol="BTC-USDT",
            order_no="1",
            start_time=1729000000000,
            end_time=datetime.now(UTC),
            current_page=1,
            page_size=50,
        )
        repays: Page[RepayOrder] = await c.get_repay_history(["BTC", "ETH"], order_no=None)
        await c.get_interest_history(current_page=2, start_time=None)
        walk: Paginator[BorrowOrder] = c.borrow_history("USDT", order_no="1", prefetch=4)
        c.repay_history("USDT", start_time=1, end_time=2, page_size=100)
        records: list[InterestRecord] = await c.interest_history(prefetch=2).collect()
        async for item in pool.merge(lambda c: c.borrow_history("USDT", prefetch=2)):
            order: BorrowOrder = item.record
        async for either in pool.merge(lambda c: c.interest_history(), errors="yield"):
            if not isinstance(either, AccountError):
                charge: InterestRecord = either.record
        async for one in pool.interest_history(symbol="BTC-USDT", is_isolated=True):
            again: InterestRecord = one.record
        async for maybe in pool.borrow_history("USDT", errors="yield", start_time=1):
            if not isinstance(maybe, AccountError):
                borrowed: BorrowOrder = maybe.record


    async def mistaken(c: MarginClient, pool: AccountPool) -> None:
        await c.get_interest_history(order_no="1")  # E: call-arg
        await c.get_borrow_history("USDT", prefetch=4)  # E: call-arg
        c.borrow_history("USDT", current_page=2)  # E: call-arg
        c.repay_history("USDT", colour="red")  # E: call-arg
        await c.get_borrow_history("USDT", is_isolated="yes")  # E: arg-type
        await c.get_repay_history("USDT", start_time="2024-01-01")  # E: arg-type
        c.interest_history(page_size="500")  # E: arg-type
        await c.borrow("USDT", "1", is_hf=1)  # E: arg-type
        await c.repay("USDT", "1", time_in_force="IOC")  # E: call-arg
        await c.modify_leverage("2", is_hf=True)  # E: call-arg
        async for item in pool.interest_history(errors="yield"):
            item.record  # E: union-attr
        pool.borrow_history("USDT", order_no="1")  # E: call-overload
        pool.merge(lambda c: c.borrow_history("USDT"), errors="skip")  # E: call-overload
    """
)


def test_mypy_checks_the_declared_keywords(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET, encoding="utf-8")
    assert pytestconfig.cache is not None
    cache = pytestconfig.cache.mkdir("mypy-snippet")
    out, err, _ = api.run(
        [
            "--strict",
            "--show-error-codes",
            "--no-error-summary",
            "--no-pretty",
            "--hide-error-context",
            "--cache-dir",
            str(cache),
            str(source),
        ]
    )
    assert not err, err
    found = set()
    for line in out.splitlines():
        match = re.match(r".*snippet\.py:(\d+): error: .*\[([a-z-]+)\]$", line)
        if match:
            found.add((int(match[1]), match[2]))
    expected = {
        (number, line.rsplit("# E: ", 1)[1])
        for number, line in enumerate(SNIPPET.splitlines(), start=1)
        if "# E: " in line
    }
    assert found == expected, out
