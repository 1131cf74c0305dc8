"""``margin-async demo``: the SDK at work on an embedded fake exchange: a borrow, a
repay, a leverage change, then three whole histories streamed and summed exactly."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import attrs

from margin_async import (
    BorrowOrder,
    InterestRecord,
    MarginClient,
    Page,
    RepayOrder,
    ResponseEvent,
    __version__,
)
from margin_async.cli._output import open_output, show_rows
from margin_async.cli._parser import Commands, at_least
from margin_async.cli._progress import Display
from margin_async.cli._state import RunState

__all__ = ["register"]

# Records of the demo's fake: 100 pages of 500 in all, streamed in well under a second.
_DEMO_RECORDS = 20_000


def register(commands: Commands) -> None:
    """Add ``demo``."""
    demo = commands.add(
        "demo",
        "borrow, repay and stream 50,000 records on an embedded fake exchange",
        _run,
        connection=False,
    )
    demo.add_argument(
        "--records",
        type=at_least(1),
        default=_DEMO_RECORDS,
        metavar="N",
        help=f"borrow and interest records to seed, N/2 repays (default: {_DEMO_RECORDS:,})",
    )
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress display on stderr (default: when stderr is a terminal and stdout is "
        "not a pipe)",
    )


@attrs.frozen
class _Summary:
    history: str
    records: int
    pages: int
    field: str
    total: Decimal
    elapsed: float


async def _stream_summary(
    name: str,
    field: str,
    pages: AsyncIterator[Page[Any]],
    amount: Callable[[Any], Decimal],
    display: Display,
) -> _Summary:
    total = Decimal(0)
    pages_read = 0
    with display.stream(f"{name:8} history") as line:
        async for page in pages:
            pages_read += 1
            for item in page.items:
                total += amount(item)
            line.advance(len(page.items), total=page.total_num)
    return _Summary(name, line.records, pages_read, field, total, line.elapsed)


async def _run(args: argparse.Namespace, state: RunState) -> None:
    from margin_async.testing import FakeKuCoin  # aiohttp.web: only when it is needed

    borrows, repays, interest = args.records, args.records // 2, args.records
    requests = 0
    resends = 0

    def count(event: ResponseEvent) -> None:
        nonlocal requests, resends
        requests += 1
        resends += event.attempt > 1

    with Display.for_run(args, state) as display, open_output(None, state, display) as out:
        async with FakeKuCoin() as fake:
            creds = fake.add_account()
            fake.seed_history(
                creds.api_key, "USDT", borrows=borrows, repays=repays, interest=interest
            )
            out.write(
                f"margin-async {__version__} demo: an embedded fake KuCoin at {fake.url}, one "
                f"account seeded with {borrows:,} borrows, {repays:,} repays and {interest:,} "
                "interest records of USDT.\n\n"
            )
            async with MarginClient(
                creds, base_url=fake.url, on_response=count, on_wait=display.waiting
            ) as client:
                loan = await client.borrow("USDT", Decimal("1000"), "IOC")
                fake.accrue_interest(creds.api_key, hours=24)
                paid = await client.repay("USDT", Decimal("400"))
                await client.modify_leverage("3.5")
                show_rows(
                    [
                        {
                            "operation": "borrow 1000 USDT IOC",
                            "order_no": loan.order_no,
                            "amount": str(loan.actual_size),
                        },
                        {
                            "operation": "repay 400 USDT",
                            "order_no": paid.order_no,
                            "amount": str(paid.actual_size),
                        },
                        {"operation": "leverage 3.5", "order_no": "", "amount": "3.5"},
                    ],
                    out,
                    state,
                )
                out.write(f"\nstill owed: {fake.debt(creds.api_key, 'USDT')} USDT principal\n\n")
                out.flush()
                summaries = [
                    await _stream_summary(
                        "borrow",
                        "actual_size",
                        client.borrow_history("USDT").pages(),
                        lambda o: o.actual_size if isinstance(o, BorrowOrder) else Decimal(0),
                        display,
                    ),
                    await _stream_summary(
                        "repay",
                        "principal+interest",
                        client.repay_history("USDT").pages(),
                        lambda o: (
                            o.principal + o.interest if isinstance(o, RepayOrder) else Decimal(0)
                        ),
                        display,
                    ),
                    await _stream_summary(
                        "interest",
                        "interest_amount",
                        client.interest_history("USDT").pages(),
                        lambda o: (
                            o.interest_amount if isinstance(o, InterestRecord) else Decimal(0)
                        ),
                        display,
                    ),
                ]
    # Below the bars, which stay as they ended.
    with open_output(None, state) as out:
        out.write("\n")
        show_rows(
            [
                {
                    "history": s.history,
                    "records": s.records,
                    "pages": s.pages,
                    "sum_of": s.field,
                    "exact_sum": str(s.total),
                    "elapsed_s": f"{s.elapsed:.3f}",
                    "records_per_s": f"{s.records / s.elapsed:.0f}" if s.elapsed > 0 else "",
                }
                for s in summaries
            ],
            out,
            state,
        )
        out.write(
            f"\n{requests} HTTP requests ({resends} resent); amounts summed as exact Decimal.\n"
            "Try: margin-async sandbox, then margin-async history borrow --currency USDT\n"
        )
