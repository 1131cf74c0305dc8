"""One run of the command line: parse, run the subcommand, turn its end into an exit
status and at most one line on stderr (with the run's secrets scrubbed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any

from margin_async import AuthenticationError, MarginError, OutcomeUnknownError, ValidationError
from margin_async.cli._demo import register as _demo
from margin_async.cli._errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_TERMINATED,
    Declined,
    UsageError,
    exit_code,
    explain,
    in_words,
)
from margin_async.cli._history import register as _history
from margin_async.cli._money import register as _money
from margin_async.cli._parser import Command, Register, build_parser
from margin_async.cli._sandbox import register as _sandbox
from margin_async.cli._state import PROG, Money, RunState, logging_to_stderr
from margin_async.cli._sync import register as _sync

__all__ = ["COMMANDS", "main"]

#: The registrars of the built-in subcommands, in the order ``--help`` lists them.
COMMANDS: tuple[Register, ...] = (_money, _history, _sync, _sandbox, _demo)


def main(argv: Sequence[str] | None = None, *, commands: Sequence[Register] = COMMANDS) -> int:
    """Run the command line; return the exit status (the console script exits with it).

    ``commands`` are the registrars of the available subcommands (see
    :mod:`margin_async.cli`).
    """
    args = build_parser(commands).parse_args(argv)
    command = args.handler
    assert isinstance(command, Command)
    state = RunState()
    with logging_to_stderr(args.debug, state):
        return _run(command, args, state)


def _run(command: Command, args: argparse.Namespace, state: RunState) -> int:
    try:
        if command.prepare is not None:
            command.prepare(args, state)
        asyncio.run(_terminable(command.run(args, state), state))
        sys.stdout.flush()
        return EXIT_OK
    except Declined:
        sys.stderr.write("Not confirmed; nothing was sent.\n")
        return EXIT_INTERNAL
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _interrupted(state)
    except BrokenPipeError:
        # The reader left (| head). Point stdout at devnull so the interpreter's final
        # flush does not fail again, and end quietly, as shell tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            sys.stderr.write(state.scrub(traceback.format_exc()))
        if isinstance(exc, ValidationError):
            return _fail(state, _refused(exc, args, command, state), exit_code(exc))
        if isinstance(exc, UsageError | MarginError):
            return _fail(state, in_words(str(exc)) + _hint(exc, state), exit_code(exc))
        return _fail(
            state,
            f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            EXIT_INTERNAL,
        )


async def _terminable(run: Coroutine[Any, Any, None], state: RunState) -> None:
    """Await ``run``; SIGTERM cancels it as Ctrl-C does.

    By default SIGTERM kills the process on the spot: a borrow or repay under way would
    end without the outcome-unknown message and exit 6 that Ctrl-C gets. Commands that
    stop gracefully on SIGTERM (``sync``, ``sandbox``) install their own handler while
    they run (:func:`~margin_async.cli._signals.stop_on_signals`), which takes this one's
    place.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def terminate() -> None:
        state.terminated = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (NotImplementedError, RuntimeError, ValueError):
        await run  # no signal handlers here (Windows, or not the main thread)
        return
    try:
        await run
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _refused(
    error: ValidationError, args: argparse.Namespace, command: Command, state: RunState
) -> str:
    message = explain(error, args, command.arguments)
    if state.movement is not None:
        message += f"; the {state.movement.name} was not sent"
    return message


def _fail(state: RunState, message: str, code: int) -> int:
    # Whatever was already written to stdout goes first, so the error comes last.
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    if state.unfinished is not None:
        message += f"; {state.unfinished}"
    sys.stderr.write(state.scrub(f"{PROG}: error: {message}\n"))
    return code


def _interrupted(state: RunState) -> int:
    """Report Ctrl-C or SIGTERM: exit 6 once a borrow/repay may have been sent, else
    130 (Ctrl-C) or 143 (SIGTERM)."""
    if state.terminated:
        what, code = "terminated", EXIT_TERMINATED
    else:
        what, code = "interrupted", EXIT_INTERRUPTED
        if not state.line_start:
            sys.stderr.write("\n")  # after the terminal's ^C, on a line of its own
    movement = state.movement
    if movement is not None and state.money is Money.IN_FLIGHT:
        return _fail(
            state,
            f"{what} while the {movement.name} was under way: outcome unknown: the "
            f"{movement.name} may or may not have been applied; {movement.advice()}",
            EXIT_OUTCOME_UNKNOWN,
        )
    if movement is not None and state.money is Money.NOT_STARTED:
        sys.stderr.write(f"{PROG}: {what}; the {movement.name} was not sent\n")
    elif state.unfinished is not None:
        sys.stderr.write(state.scrub(f"{PROG}: {what}; {state.unfinished}\n"))
    else:
        sys.stderr.write(f"{PROG}: {what}\n")
    return code


def _hint(error: Exception, state: RunState) -> str:
    if isinstance(error, AuthenticationError):
        return " (check the API key, secret, passphrase, key version and IP allow-list)"
    if isinstance(error, OutcomeUnknownError) and state.movement is not None:
        lookup = state.movement.lookup
        return "" if lookup is None else f" (look it up with: {lookup})"
    return ""
