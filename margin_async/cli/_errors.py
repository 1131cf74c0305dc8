"""Exit statuses, the CLI's own errors, and the SDK's ``ValidationError`` in the user's words.

The SDK judges every argument; its :class:`~margin_async.ValidationError` names the
Python parameter (``page_size``). :func:`explain` says it with the flag the person typed
(``--page-size``), using the command's table of :class:`Arg` entries.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping

import attrs

from margin_async import (
    AuthenticationError,
    MarginError,
    OutcomeUnknownError,
    RateLimitError,
    TransportError,
    ValidationError,
)

__all__ = [
    "COMMON_ARGS",
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_RATE_LIMIT",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Arg",
    "Declined",
    "UsageError",
    "exit_code",
    "explain",
    "in_words",
]

EXIT_OK = 0
#: A bug in margin-async itself (an exception that is not a MarginError), or "no" at a prompt.
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_NETWORK = 5
EXIT_OUTCOME_UNKNOWN = 6
EXIT_API = 7
EXIT_INTERRUPTED = 130
#: Stopped by SIGTERM (128 + 15, as a shell reports a process the signal killed).
EXIT_TERMINATED = 143
#: The reader of our output went away (``| head``): 128 + SIGPIPE, as shell tools do.
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A mistake of the command line or its environment (exit status 2)."""


class Declined(Exception):
    """The user answered no at a prompt: nothing was sent (exit status 1)."""


def exit_code(error: BaseException) -> int:
    """The exit status for ``error`` (see ``margin-async --help``)."""
    if isinstance(error, UsageError | ValidationError):
        return EXIT_USAGE
    if isinstance(error, AuthenticationError):
        return EXIT_AUTH
    if isinstance(error, RateLimitError):
        return EXIT_RATE_LIMIT
    if isinstance(error, TransportError):
        return EXIT_NETWORK
    if isinstance(error, OutcomeUnknownError):
        return EXIT_OUTCOME_UNKNOWN
    if isinstance(error, MarginError):
        # ApiError, TimestampError, ProtocolError, ClientClosedError, PoolError
        return EXIT_API
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL


@attrs.frozen
class Arg:
    """How a person gives one SDK parameter on the command line."""

    #: The ``argparse`` destination holding the value (``None`` when not given).
    dest: str
    #: What the person typed: a flag (``--page-size``) or a positional's metavar (``SIZE``).
    flag: str
    #: An example, shown when the value is missing (``--currency USDT``).
    example: str | None = None


#: SDK parameters that mean the same flag in every command that has them.
COMMON_ARGS: Mapping[str, Arg] = {
    "attempts": Arg("attempts", "--attempts"),
    "timeout": Arg("timeout", "--timeout"),
    "is_isolated": Arg("isolated", "--isolated"),
    "symbol": Arg("symbol", "--symbol", "--symbol BTC-USDT"),
}


def explain(error: ValidationError, args: argparse.Namespace, table: Mapping[str, Arg]) -> str:
    """``error`` in the words of the command line: flags instead of Python names.

    A value the person did not give becomes "<command> needs --flag (e.g. ...)"; any
    other refusal is the SDK's reason after the flag (``--page-size must be from 10 to
    500, got 5``).
    """
    reason = in_words(str(error).removeprefix(f"{error.argument}: "))
    # Python spellings inside the reason: "is_isolated=True", "end_time".
    for name, known in table.items():
        if "_" in name:
            reason = re.sub(rf"\b{re.escape(name)}(=True)?\b", known.flag, reason)
    arg = table.get(error.argument)
    if arg is None:
        return f"{error.argument}: {reason}"
    if arg.example is not None and getattr(args, arg.dest, None) is None:
        return f"{_title(args)} needs {arg.flag} (e.g. {arg.example})"
    return f"{arg.flag} {reason}"


# aiohttp's "could not connect" text, which the SDK quotes: host, TLS setting, OS reason.
_CONNECT = re.compile(r":? ?Cannot connect to host \S+ ssl:(?:<[^>]*>|\S+) \[(?P<reason>.*)\]")
_ERRNO = re.compile(r"^\[Errno -?\d+\] ")
# Spellings of Python values a person did not type: Decimal('1') is the 1 they typed.
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")


def in_words(message: str) -> str:
    """An SDK message without the Python and aiohttp spellings a person need not read:
    ``cannot connect to http://127.0.0.1:9: Cannot connect to host 127.0.0.1:9
    ssl:default [Connect call failed ('127.0.0.1', 9)]`` becomes ``cannot connect to
    http://127.0.0.1:9``, ``Decimal('1')`` becomes ``1``."""

    def reason(match: re.Match[str]) -> str:
        text = _ERRNO.sub("", match["reason"]).strip()
        # asyncio's "Connect call failed ('127.0.0.1', 9)" says nothing more than the URL.
        if not text or text.startswith("Connect call failed"):
            return ""
        return ": " + text[:1].lower() + text[1:]

    return _DECIMAL_REPR.sub(r"\1", _CONNECT.sub(reason, message))


def _title(args: argparse.Namespace) -> str:
    """The command as typed, with a positional choice (``history borrow``)."""
    kind = getattr(args, "kind", None)
    return f"{args.command} {kind}" if isinstance(kind, str) else str(args.command)
