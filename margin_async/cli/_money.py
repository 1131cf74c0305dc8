"""``borrow``, ``repay`` and ``leverage``: the commands that change the account.

Borrow and repay ask first (``--yes`` to skip), before the event loop starts, so nothing
is connected while a person reads. Once the call starts the run's money state is
IN_FLIGHT: the CLI cannot know whether the request's bytes left, so an interrupt then
is an unknown outcome (exit 6), not a plain 130.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Awaitable

from margin_async import (
    BorrowResult,
    MarginError,
    OutcomeUnknownError,
    RepayResult,
    TimeInForce,
    to_dict,
)
from margin_async.cli._errors import Arg, Declined, UsageError
from margin_async.cli._exchange import open_client
from margin_async.cli._output import choose_format, write_rows
from margin_async.cli._parser import Commands, add_format, add_margin_mode
from margin_async.cli._state import PROG, Money, Movement, RunState
from margin_async.cli._values import plain

__all__ = ["register"]

_MONEY_ARGS = {
    "currency": Arg("currency", "CURRENCY"),
    "size": Arg("size", "SIZE"),
    "time_in_force": Arg("tif", "--tif"),
    "is_hf": Arg("hf", "--hf"),
}


_MOVEMENT_HELP = """\
Asks first ([y/N] on stderr; --yes to skip, required when stdin is not a terminal).
Once the request may have been sent, Ctrl-C or a lost answer exits 6 (outcome
unknown): check the history before trying again.

examples:
  margin-async {verb} USDT 10{tif}
  margin-async {verb} BTC 0.5 --isolated --symbol BTC-USDT --yes
"""


def register(commands: Commands) -> None:
    """Add ``borrow``, ``repay`` and ``leverage``."""
    borrow = commands.add(
        "borrow",
        "borrow an amount of a currency",
        _borrow,
        prepare=_prepare,
        arguments=_MONEY_ARGS,
        epilog=_MOVEMENT_HELP.format(verb="borrow", tif=" --tif FOK"),
    )
    _add_movement(borrow, "borrow")
    borrow.add_argument(
        "--tif",
        type=str.upper,
        choices=[tif.name for tif in TimeInForce],
        default=TimeInForce.IOC.name,
        help="IOC takes what is available, FOK all or nothing (default: IOC)",
    )
    _add_flags(borrow, "borrow")

    repay = commands.add(
        "repay",
        "repay an amount of a currency (interest first)",
        _repay,
        prepare=_prepare,
        arguments=_MONEY_ARGS,
        epilog=_MOVEMENT_HELP.format(verb="repay", tif=""),
    )
    _add_movement(repay, "repay")
    _add_flags(repay, "repay")

    leverage = commands.add(
        "leverage",
        "set the leverage multiplier (> 1, two decimals at most)",
        _leverage,
        arguments={"leverage": Arg("value", "LEVERAGE")},
        epilog="examples:\n  margin-async leverage 3.5\n"
        "  margin-async leverage 5 --isolated --symbol BTC-USDT\n",
    )
    leverage.add_argument("value", metavar="LEVERAGE", help="e.g. 3 or 3.5")
    add_margin_mode(leverage)
    add_format(leverage)


def _add_movement(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("currency", metavar="CURRENCY", help="currency code, e.g. USDT")
    parser.add_argument("size", metavar="SIZE", help=f"amount to {verb}, e.g. 10 or 0.5")


def _add_flags(parser: argparse.ArgumentParser, verb: str) -> None:
    add_margin_mode(parser)
    noun = {"borrow": "borrowing", "repay": "repayment"}[verb]
    parser.add_argument("--hf", action="store_true", help=f"high-frequency {noun} (isHf)")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_format(parser)


def _mode(args: argparse.Namespace) -> str:
    if not args.isolated:
        return "cross"
    return f"isolated {args.symbol.strip().upper() if args.symbol else '(no --symbol)'}"


def _question(args: argparse.Namespace) -> str:
    what = f"{plain(args.size)} {args.currency.strip().upper()}"
    flags = ", HF" if args.hf else ""
    where = " on the sandbox" if args.sandbox else ""
    if args.command == "borrow":
        return f"Borrow {what} ({args.tif}, {_mode(args)}{flags}){where}?"
    return f"Repay {what} ({_mode(args)}{flags}){where}?"


def _history_command(args: argparse.Namespace) -> str | None:
    """The command that shows the history a borrow/repay would appear in (``None`` with
    --sandbox: its exchange ends with the command)."""
    if args.sandbox:
        return None
    # Shown only once the SDK accepted the values: upper-cased as they were sent.
    command = [PROG, "history", args.command, "--currency", args.currency.strip().upper()]
    if args.isolated:
        command += ["--isolated", "--symbol", (args.symbol or "").strip().upper()]
    if args.credentials:
        command += ["--credentials", args.credentials]
    if args.base_url:
        command += ["--base-url", args.base_url]
    return shlex.join(command)


def _prepare(args: argparse.Namespace, state: RunState) -> None:
    """Record the movement (for an interrupt to report), then ask for confirmation;
    refuse when nobody can answer (stdin not a terminal)."""
    state.movement = Movement(args.command, _history_command(args))
    choose_format(args, state)  # a format that cannot be written is refused before asking
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {args.command} without confirmation: stdin is not a terminal; "
            "pass --yes to confirm"
        )
    sys.stderr.write(f"{_question(args)} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Declined


async def _move_money(
    args: argparse.Namespace, state: RunState, call: Awaitable[BorrowResult | RepayResult]
) -> None:
    """Await ``call`` (the borrow or repay, not yet started) and write its result."""
    state.money = Money.IN_FLIGHT
    try:
        result = await call
    except OutcomeUnknownError:
        raise  # still unknown (exit 6 either way)
    except MarginError:
        # Any other MarginError of a borrow/repay (a ValidationError included) means it
        # was not applied: the SDK reconciles every ambiguous failure into a match or
        # OutcomeUnknownError.
        state.money = Money.SETTLED
        raise
    # Written before the client closes: an interrupt while closing loses no result.
    # The SDK accepted both values, so these are what was sent.
    row = {"currency": args.currency.strip().upper(), "size": plain(args.size)}
    write_rows(args, state, [{**row, **to_dict(result)}])
    sys.stdout.flush()
    state.money = Money.SETTLED


async def _borrow(args: argparse.Namespace, state: RunState) -> None:
    async with open_client(args, state) as client:
        await _move_money(
            args,
            state,
            client.borrow(
                args.currency,
                args.size,
                args.tif,
                symbol=args.symbol,
                is_isolated=args.isolated,
                is_hf=args.hf,
            ),
        )


async def _repay(args: argparse.Namespace, state: RunState) -> None:
    async with open_client(args, state) as client:
        await _move_money(
            args,
            state,
            client.repay(
                args.currency,
                args.size,
                symbol=args.symbol,
                is_isolated=args.isolated,
                is_hf=args.hf,
            ),
        )


async def _leverage(args: argparse.Namespace, state: RunState) -> None:
    choose_format(args, state)  # a format that cannot be written is refused before sending
    async with open_client(args, state) as client:
        await client.modify_leverage(args.value, symbol=args.symbol, is_isolated=args.isolated)
    row = {
        "leverage": plain(args.value),
        "mode": "isolated" if args.isolated else "cross",
        "symbol": (args.symbol or "").strip().upper(),
    }
    write_rows(args, state, [row])
