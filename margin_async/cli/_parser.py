"""The argument parser, and the way a command module plugs a subcommand into it.

A command module exposes ``register(commands: Commands) -> None``; it calls
:meth:`Commands.add` with the subcommand's name, help and coroutine, then adds its own
arguments to the parser it gets back. :func:`build_parser` calls every registrar it is
given (``margin_async.cli._app.COMMANDS`` lists the built-in ones).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import attrs

from margin_async import DEFAULT_BASE_URL, __version__
from margin_async.cli._errors import (
    COMMON_ARGS,
    EXIT_API,
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_RATE_LIMIT,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Arg,
)
from margin_async.cli._output import FORMATS
from margin_async.cli._state import PROG, RunState

__all__ = [
    "CREDENTIALS",
    "ENV_BASE_URL",
    "EPILOG",
    "EXIT_STATUS",
    "OUTPUT",
    "SEE_ALSO",
    "Command",
    "Commands",
    "Register",
    "add_format",
    "add_margin_mode",
    "at_least",
    "build_parser",
]

ENV_BASE_URL = "MARGIN_ASYNC_BASE_URL"

#: A subcommand's work, run in the event loop.
Run = Callable[[argparse.Namespace, RunState], Coroutine[Any, Any, None]]
#: Work done before the event loop starts (a confirmation prompt, for instance).
Prepare = Callable[[argparse.Namespace, RunState], None]

CREDENTIALS = f"""\
credentials:
  --credentials FILE (JSON, or KEY=VALUE lines, with api_key, api_secret,
  api_passphrase and optionally key_version and base_url; what margin-async sandbox
  prints is such a file; it must not be readable by group or others: chmod 600 FILE),
  else the environment variables KUCOIN_API_KEY, KUCOIN_API_SECRET,
  KUCOIN_API_PASSPHRASE[, KUCOIN_API_KEY_VERSION]. The exchange is {DEFAULT_BASE_URL}
  unless --base-url, the file's base_url or ${ENV_BASE_URL} says otherwise; --sandbox
  runs against an embedded fake exchange with throwaway credentials.
"""

OUTPUT = """\
output:
  --format table (aligned columns), jsonl (one JSON object per line) or csv; amounts
  are exact decimal strings in plain notation in every format. Default: from the
  --output file's extension (.jsonl, .ndjson, .csv; any other needs --format), else
  table on a terminal and jsonl elsewhere. When stderr is a terminal and the output
  goes to it or to a file (not into a pipe, whose reader may print on the same
  terminal), a progress display on stderr shows the records written and what the
  command waits for, and how long; output for the terminal is printed above it.
  Tables and the progress display need the cli extra: pip install "margin-async[cli]";
  without it, jsonl and csv are the same, a terminal gets jsonl and no progress (and a
  note saying so), and --format table or --progress is refused.
"""

EXIT_STATUS = f"""\
exit status:
  {EXIT_OK:<4} success
  {EXIT_INTERNAL:<4} not confirmed (answered no), or an internal error
  {EXIT_USAGE:<4} usage or validation error (bad argument, unsafe credentials file, no --yes)
  {EXIT_AUTH:<4} authentication refused (key, secret, passphrase, IP allow-list, permission)
  {EXIT_RATE_LIMIT:<4} rate limit still exceeded after retries
  {EXIT_NETWORK:<4} network failure after retries (cannot connect, timeout, gateway error)
  {EXIT_OUTCOME_UNKNOWN:<4} outcome unknown: a borrow/repay may or may not have executed (its
       answer was lost, or it was interrupted once under way); check the history
       (margin-async history borrow|repay --currency C) before trying again
  {EXIT_API:<4} other API error (a KuCoin error code, an unexpected reply, clock refused)
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); for borrow/repay, only before the request was
       under way (at the prompt): once it may have been sent, Ctrl-C exits 6
  {EXIT_TERMINATED:<4} terminated (SIGTERM), with the same rule for borrow/repay as Ctrl-C
       (sync finishes its transaction and exits 0 instead)
  {EXIT_BROKEN_PIPE:<4} the reader of the output went away (e.g. | head)
"""

EXAMPLES = """\
examples:
  margin-async demo
  margin-async history borrow --sandbox --currency USDT --format jsonl | head
  margin-async history interest --since 2024-01-01 --format csv --output interest.csv
  margin-async borrow USDT 10 --tif FOK --yes
"""

#: The whole of ``margin-async --help`` after the options.
EPILOG = "\n".join((CREDENTIALS, OUTPUT, EXIT_STATUS, EXAMPLES))
#: Where a subcommand's help sends a reader for what all commands share.
SEE_ALSO = "credentials, output formats, exit statuses: margin-async --help"


@attrs.frozen
class Command:
    """A registered subcommand: what it runs, and how its SDK parameters are typed."""

    run: Run
    #: Called before the event loop starts; ``None`` for nothing.
    prepare: Prepare | None = None
    #: SDK parameter name -> how it is given here, for messages (see ``errors.explain``).
    arguments: Mapping[str, Arg] = attrs.field(factory=dict)


class Commands:
    """Where command modules register their subcommands (see the module docstring)."""

    def __init__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._subparsers = subparsers

    def add(
        self,
        name: str,
        help_text: str,
        run: Run,
        *,
        prepare: Prepare | None = None,
        arguments: Mapping[str, Arg] | None = None,
        connection: bool = True,
        description: str = "",
        epilog: str = "",
    ) -> argparse.ArgumentParser:
        """Add subcommand ``name`` running ``run``; return its parser for its arguments.

        ``connection`` adds the options that choose the exchange and the client's
        behaviour (``--sandbox``, ``--base-url``, ``--credentials``, ``--timeout``,
        ``--attempts``); every subcommand takes ``--debug``. ``arguments`` maps the SDK
        parameters this command passes on to the flags that carry them. ``description``
        opens this command's ``--help`` (default: ``help_text``); ``epilog`` is what it
        says after its options (then :data:`SEE_ALSO`).
        """
        sub = self._subparsers.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            epilog="\n".join(part for part in (epilog, SEE_ALSO) if part),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_common_options(sub, top=False, connection=connection)
        table = {**COMMON_ARGS, **(arguments or {})}
        sub.set_defaults(handler=Command(run, prepare, table))
        return sub


#: A command module's entry point: registers its subcommand(s).
Register = Callable[[Commands], None]


def add_common_options(parser: argparse.ArgumentParser, *, top: bool, connection: bool) -> None:
    """Options accepted before or after the command. Under a command they default to
    SUPPRESS so that leaving one out there keeps the value given before the command."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    # Without connection options, --debug goes with the command's own options.
    group = parser.add_argument_group("connection options") if connection else parser
    if connection:
        group.add_argument(
            "--sandbox",
            action="store_true",
            default=default(False),
            help="run against an embedded fake exchange seeded with history (no real account)",
        )
        group.add_argument(
            "--base-url",
            metavar="URL",
            default=default(None),
            help=f"API base URL (default: ${ENV_BASE_URL} or {DEFAULT_BASE_URL})",
        )
        group.add_argument(
            "--credentials",
            metavar="FILE",
            default=default(None),
            help="JSON or KEY=VALUE file with api_key, api_secret, api_passphrase"
            "[, key_version]; must be chmod 600 (default: KUCOIN_API_* environment variables)",
        )
        group.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=float,
            default=default(10.0),
            help="seconds per attempt (default: 10)",
        )
        group.add_argument(
            "--attempts",
            metavar="N",
            type=int,
            default=default(4),
            help="attempts per request, counting the first (default: 4); borrow and repay "
            "are never resent after an ambiguous failure",
        )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="log requests to stderr and show tracebacks",
    )


def add_margin_mode(parser: argparse.ArgumentParser) -> None:
    """``--isolated`` and ``--symbol`` (the SDK's ``is_isolated`` and ``symbol``)."""
    parser.add_argument("--isolated", action="store_true", help="isolated margin (needs --symbol)")
    parser.add_argument("--symbol", help="isolated margin pair, e.g. BTC-USDT (with --isolated)")


def add_format(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    """``--format``."""
    parser.add_argument(
        "--format",
        choices=formats,
        default=None,
        help="output format (default: table on a terminal, else jsonl)",
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number ``>= minimum`` (options of the CLI's own,
    such as ``--records``; the SDK's parameters are judged by the SDK)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return convert


def build_parser(registrars: Iterable[Register]) -> argparse.ArgumentParser:
    """The ``margin-async`` argument parser with the subcommands of ``registrars``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="KuCoin margin borrowing from the shell: borrow, repay, leverage, and "
        "history streamed as a table, JSON lines or CSV.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common_options(parser, top=True, connection=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = Commands(subparsers)
    for register in registrars:
        register(commands)
    return parser
