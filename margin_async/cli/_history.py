"""``margin-async history borrow|repay|interest``: every page of a history, streamed.

The CLI only converts text (``--since 2024-01-31`` to an aware datetime, ``USDT,BTC``
to a list); the SDK judges every value, and its refusals are shown with these flags.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from margin_async import Page, TimeArg, to_dict
from margin_async.cli._errors import Arg, UsageError
from margin_async.cli._exchange import open_client
from margin_async.cli._output import choose_format, make_writer, open_output
from margin_async.cli._parser import OUTPUT, Commands, add_format, add_margin_mode
from margin_async.cli._progress import Display
from margin_async.cli._state import RunState

__all__ = ["register", "time_arg"]

_INTEGER = re.compile(r"[+-]?[0-9]+")

_EXAMPLES = """\
examples:
  margin-async history borrow --currency USDT                  # a table, on a terminal
  margin-async history repay --currency BTC --isolated --symbol BTC-USDT --format csv
  margin-async history interest --since 2024-01-01 --output interest.csv
  margin-async history borrow --sandbox --currency USDT | head  # JSON lines, into a pipe
"""

_HISTORY_ARGS = {
    "currency": Arg("currency", "--currency", "--currency USDT"),
    "order_no": Arg("order_no", "--order-no"),
    "start_time": Arg("since", "--since"),
    "end_time": Arg("until", "--until"),
    "page_size": Arg("page_size", "--page-size"),
}


def time_arg(text: str) -> TimeArg:
    """``--since``/``--until``: epoch milliseconds (an int), or an ISO date or datetime
    (an aware datetime; naive means UTC). Which values make sense is the SDK's call."""
    value = text.strip()
    if _INTEGER.fullmatch(value):
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or datetime (2024-01-31, 2024-01-31T12:00:00Z) "
            "nor epoch milliseconds"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _currencies(text: str) -> list[str]:
    """``--currency``: one code or a comma-separated list (each checked by the SDK)."""
    return text.split(",")


def register(commands: Commands) -> None:
    """Add ``history``."""
    history = commands.add(
        "history",
        "stream borrow, repay or interest history, every page",
        _run,
        arguments=_HISTORY_ARGS,
        epilog=f"{OUTPUT}\n{_EXAMPLES}",
    )
    history.add_argument("kind", choices=("borrow", "repay", "interest"))
    history.add_argument(
        "--currency",
        type=_currencies,
        action="extend",
        metavar="C",
        help="currency code; repeat it or give a comma list (required for borrow and repay)",
    )
    add_margin_mode(history)
    history.add_argument("--order-no", metavar="N", help="one order (borrow and repay only)")
    history.add_argument(
        "--since",
        type=time_arg,
        metavar="T",
        help="from this time: ISO date/datetime (naive = UTC) or epoch milliseconds",
    )
    history.add_argument("--until", type=time_arg, metavar="T", help="up to this time (same forms)")
    add_format(history)
    history.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (format from its extension)"
    )
    history.add_argument(
        "--page-size",
        type=int,
        metavar="N",
        help="records per request, 10..500 (default: 500)",
    )
    history.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress display on stderr (default: when stderr is a terminal and the output "
        "goes to it or to a file, not into a pipe)",
    )


async def _run(args: argparse.Namespace, state: RunState) -> None:
    if args.kind == "interest" and args.order_no is not None:
        raise UsageError("--order-no is only for borrow and repay history")
    fmt = choose_format(args, state)  # before connecting: a bad --output is said at once
    filters: dict[str, Any] = {
        "is_isolated": args.isolated,
        "symbol": args.symbol,
        "start_time": args.since,
        "end_time": args.until,
    }
    if args.page_size is not None:
        filters["page_size"] = args.page_size
    with Display.for_run(args, state) as display:
        async with open_client(args, state, on_wait=display.waiting) as client:
            pages: AsyncIterator[Page[Any]]
            if args.kind == "interest":
                pages = client.interest_history(args.currency, **filters).pages()
            else:
                walk = client.borrow_history if args.kind == "borrow" else client.repay_history
                pages = walk(args.currency, order_no=args.order_no, **filters).pages()
            with (
                open_output(args.output, state, display) as sink,
                display.stream(f"{args.kind} history") as line,
            ):
                writer = make_writer(fmt, sink)
                async for page in pages:
                    for item in page.items:
                        writer.write(to_dict(item))
                    writer.flush()
                    line.advance(sink.records - line.records, total=page.total_num)
                writer.close()
                line.advance(sink.records - line.records)
