"""The ``margin-async`` command: borrow, repay, leverage and history from the shell.

Every command runs against the real exchange (credentials from ``--credentials FILE``
or the ``KUCOIN_API_*`` environment) or, with ``--sandbox``, against an embedded
:class:`~margin_async.testing.FakeKuCoin` seeded with history. ``margin-async sandbox``
serves such a fake for other programs; ``margin-async demo`` shows the SDK at work.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import os
import shlex
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from margin_async._version import __version__
from margin_async.auth import Credentials
from margin_async.cli_format import FORMATS, Format, Progress, make_writer, render_table
from margin_async.client import MarginClient
from margin_async.convert import to_dict
from margin_async.errors import (
    AuthenticationError,
    MarginError,
    OutcomeUnknownError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from margin_async.events import ResponseEvent
from margin_async.models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    Page,
    RepayOrder,
    RepayResult,
)
from margin_async.retry import RetryPolicy
from margin_async.session import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from margin_async.testing import FakeKuCoin

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_RATE_LIMIT",
    "EXIT_USAGE",
    "exit_code",
    "main",
]

PROG = "margin-async"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_NETWORK = 5
EXIT_OUTCOME_UNKNOWN = 6
EXIT_API = 7
#: A bug in margin-async itself (an exception that is not a MarginError).
EXIT_INTERNAL = 1
#: The reader of our output went away (``| head``): 128 + SIGPIPE, as shell tools do.
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130

ENV_BASE_URL = "MARGIN_ASYNC_BASE_URL"

_EPILOG = f"""\
credentials:
  --credentials FILE (JSON, or KEY=VALUE lines, with api_key, api_secret,
  api_passphrase and optionally key_version; the file must not be readable by
  group or others: chmod 600 FILE), else the environment variables
  KUCOIN_API_KEY, KUCOIN_API_SECRET, KUCOIN_API_PASSPHRASE[, KUCOIN_API_KEY_VERSION].
  The exchange is {DEFAULT_BASE_URL} unless --base-url or ${ENV_BASE_URL}
  says otherwise; --sandbox runs against an embedded fake exchange with throwaway
  credentials (margin-async sandbox serves one for other programs).

output:
  --format table (aligned columns), jsonl (one JSON object per line) or csv; amounts
  are exact decimal strings in every format. Default: table on a terminal, else jsonl
  (or from the --output file's extension). Progress goes to stderr, on a terminal only.

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
  {EXIT_BROKEN_PIPE:<4} the reader of the output went away (e.g. | head)

examples:
  margin-async demo
  margin-async history borrow --sandbox --currency USDT --format jsonl | head
  margin-async history interest --since 2024-01-01 --format csv --output interest.csv
  margin-async borrow USDT 10 --tif FOK --yes
"""

_log = logging.getLogger("margin_async")
_asyncio_log = logging.getLogger("asyncio")

# Amounts seeded into the embedded fake of --sandbox (small: it starts on every command).
_SANDBOX_BORROWS = 1000
_SANDBOX_SYMBOL = "BTC-USDT"
# Records of the demo's fake: 100 pages of 500 in all, streamed in well under a second.
_DEMO_RECORDS = 20_000


class UsageError(Exception):
    """A mistake of the command line or its environment (exit status 2)."""


# -- what one run knows: its secrets, and where its borrow/repay stands -------------------

_REDACTED = "[redacted]"


class _Money(enum.Enum):
    """Where the borrow/repay of this run stands, for an interrupt to report."""

    #: Not started: an interrupt now sends nothing (exit 130).
    NOT_STARTED = "not started"
    #: Started, outcome not known: it may have been sent and applied (exit 6).
    IN_FLIGHT = "in flight"
    #: Its outcome is known and was reported (a result written, or a refusal raised).
    SETTLED = "settled"


@attrs.define
class _RunState:
    """State of one ``main`` run that outlives the event loop (read after Ctrl-C)."""

    money: _Money = _Money.NOT_STARTED
    _forms: set[str] = attrs.field(factory=set, init=False)

    def add_secret(self, secret: str) -> None:
        """Never print ``secret`` (nor its JSON- or repr-escaped spellings)."""
        if secret:
            self._forms |= {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}

    def add_credentials(self, creds: Credentials) -> None:
        """Never print the secret, the passphrase or the signed passphrase header.

        The API key is no secret (it is in ``repr(Credentials)`` and in the exchange's
        own messages), so it is left alone.
        """
        self.add_secret(creds.api_secret)
        self.add_secret(creds.api_passphrase)
        # The KC-API-PASSPHRASE header, reusable on its own: a reply may echo it back.
        mac = hmac.new(creds.api_secret.encode(), creds.api_passphrase.encode(), hashlib.sha256)
        self.add_secret(base64.b64encode(mac.digest()).decode())

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[redacted]``."""
        # Longest first: an escaped spelling can contain the raw one.
        for form in sorted(self._forms, key=len, reverse=True):
            text = text.replace(form, _REDACTED)
        return text


def _run_state(args: argparse.Namespace) -> _RunState:
    """The state of the run ``args`` belong to (created by :func:`main`)."""
    state = getattr(args, "_run_state", None)
    if not isinstance(state, _RunState):
        state = _RunState()
        args._run_state = state
    return state


# -- exit codes ---------------------------------------------------------------------------


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


# -- argument types -----------------------------------------------------------------------


def parse_time(text: str) -> int:
    """``--since``/``--until``: epoch ms, or an ISO date/datetime (naive means UTC)."""
    value = text.strip()
    if value.isdigit():
        ms = int(value)
        if ms < 10**11:
            # 1973 in ms, or 5138 in seconds: almost certainly seconds by mistake.
            raise argparse.ArgumentTypeError(
                f"{text!r} looks like epoch seconds; give epoch milliseconds or an ISO date"
            )
        return ms
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or datetime (2024-01-31, 2024-01-31T12:00:00Z) "
            "nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic on timedelta: no float rounding of the milliseconds.
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def parse_amount(text: str) -> Decimal:
    """A positive decimal amount, exact (``10``, ``0.5``)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive amount")
    return value


def parse_currency(text: str) -> str:
    """A currency code, upper-cased (``usdt`` -> ``USDT``)."""
    code = text.strip().upper()
    if not code or not code.isalnum() or not code.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a currency code such as USDT")
    return code


def parse_currencies(text: str) -> list[str]:
    """``--currency``: one code or a comma-separated list."""
    return [parse_currency(part) for part in text.split(",") if part.strip()] or [
        parse_currency(text)
    ]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


# -- credentials --------------------------------------------------------------------------

# Accepted spellings in a credentials file, lower-cased (the env names work too, so a
# saved `margin-async sandbox` output, minus its comments, is a valid file).
_CREDENTIAL_KEYS = {
    "api_key": "api_key",
    "key": "api_key",
    "kucoin_api_key": "api_key",
    "api_secret": "api_secret",
    "secret": "api_secret",
    "kucoin_api_secret": "api_secret",
    "api_passphrase": "api_passphrase",
    "passphrase": "api_passphrase",
    "kucoin_api_passphrase": "api_passphrase",
    "key_version": "key_version",
    "api_key_version": "key_version",
    "kucoin_api_key_version": "key_version",
}


#: One ``field = value`` of a credentials file, and where it is (``"line 3"``).
_Entry = tuple[str, object, str]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


_KEY_LIST = "api_key, api_secret, api_passphrase, key_version"
# A value this short is not worth hiding from a message, and would hide ordinary words.
_MIN_HIDDEN = 4


def _credential_entries(text: str, refuse: Callable[[str], NoReturn]) -> list[_Entry]:
    """The ``(field, value, where)`` entries of a JSON or KEY=VALUE credentials file."""
    entries: list[_Entry] = []
    if text.lstrip().startswith("{"):
        try:
            # Pairs, not a dict: a key given twice must be seen, not silently overwritten.
            pairs = json.loads(text, object_pairs_hook=list)
        except json.JSONDecodeError as exc:
            # The position only: the document may hold a secret.
            refuse(f" is not valid JSON (line {exc.lineno})")
        except (ValueError, RecursionError):  # an absurd number, absurd nesting
            refuse(" is not valid JSON")
        if not isinstance(pairs, list):
            refuse(" must hold a JSON object")
        for index, (name, value) in enumerate(pairs, start=1):
            where = f"JSON key {index}"
            field = _CREDENTIAL_KEYS.get(str(name).strip().lower())
            if field is None:
                refuse(f", {where}: unknown key (expected {_KEY_LIST})")
            entries.append((field, value, where))
        return entries
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").strip()
        name, sep, value = stripped.partition("=")
        where = f"line {number}"
        if not sep:
            refuse(f", {where}: expected KEY=VALUE")
        if not name.strip():
            refuse(f", {where}: no key name before '='")
        field = _CREDENTIAL_KEYS.get(name.strip().lower())
        if field is None:
            refuse(f", {where}: unknown key (expected {_KEY_LIST})")
        entries.append((field, _unquote(value), where))
    return entries


def _credentials_from_text(text: str, path: str) -> Credentials:
    """The credentials in ``text`` (the content of the file ``path``).

    A refusal says where (a line, a JSON key's position) and what is wrong, and never
    shows any of the file's text: a line without a key name, or whose "key" is the text
    before a ``=`` inside a base64 value, may well be a secret pasted alone.
    """

    def refuse(problem: str) -> NoReturn:
        raise UsageError(f"credentials file {path}{problem}")

    fields: dict[str, str] = {}
    seen: dict[str, str] = {}
    for field, value, where in _credential_entries(text, refuse):
        if field in seen:
            refuse(f", {where}: {field} is given twice (also at {seen[field]})")
        seen[field] = where
        if isinstance(value, bool) or not isinstance(value, str | int):
            refuse(f", {where}: {field} must be a string")
        fields[field] = str(value).strip() if field == "key_version" else str(value)
    missing = [f for f in ("api_key", "api_secret", "api_passphrase") if not fields.get(f)]
    if missing:
        refuse(f" lacks {', '.join(missing)}")
    version = fields.get("key_version", "3")
    if version not in ("2", "3"):
        refuse(f", {seen['key_version']}: key_version must be 2 or 3")
    key, secret, passphrase = fields["api_key"], fields["api_secret"], fields["api_passphrase"]
    try:
        return Credentials(key, secret, passphrase, int(version))
    except ValidationError as exc:
        reason = str(exc).removeprefix(f"{exc.argument}: ")
        if any(len(v) >= _MIN_HIDDEN and v in reason for v in (key, secret, passphrase)):
            reason = "is not valid"
        place = f", {seen[exc.argument]}" if exc.argument in seen else ""
        refuse(f"{place}: {exc.argument} {reason}")


def load_credentials_file(path: str) -> Credentials:
    """Read credentials from ``path``, refusing a file others may read (like ssh).

    No error message shows any of the file's content (see :func:`_credentials_from_text`).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"cannot read credentials file {path}: {exc.strerror}") from None
    # Windows has no POSIX permission bits to check.
    if os.name == "posix" and mode & 0o077:
        raise UsageError(
            f"credentials file {path} is accessible by group or others "
            f"(mode {mode & 0o777:04o}); protect it first: chmod 600 {path}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read credentials file {path}: {reason}") from None
    return _credentials_from_text(text, path)


def _credentials(args: argparse.Namespace) -> Credentials:
    state = _run_state(args)
    if args.credentials:
        creds = load_credentials_file(args.credentials)
        state.add_credentials(creds)
        return creds
    # Hidden before they are checked: whatever the checks say can never show them.
    for name in ("KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"):
        state.add_secret(os.environ.get(name, ""))
    try:
        creds = Credentials.from_env()
        state.add_credentials(creds)
        return creds
    except ValidationError as exc:
        raise UsageError(
            f"no credentials: {exc} (set KUCOIN_API_KEY, KUCOIN_API_SECRET and "
            "KUCOIN_API_PASSPHRASE, pass --credentials FILE, or try --sandbox)"
        ) from None


# -- the exchange to talk to --------------------------------------------------------------


async def _sandbox_account(fake: FakeKuCoin, records: int) -> Credentials:
    """A new account of ``fake`` with history and some debt, so every command has
    something to show: cross USDT and BTC history, a little isolated BTC-USDT, and open
    loans of USDT (cross) and BTC (isolated) that ``repay`` can pay back."""
    creds = fake.add_account()
    fake.seed_history(
        creds.api_key, "USDT", borrows=records, repays=records // 2, interest=records * 2
    )
    small = max(1, records // 10)
    fake.seed_history(creds.api_key, "BTC", borrows=small, repays=small, interest=small)
    fake.seed_history(
        creds.api_key, "BTC", borrows=small, repays=small, interest=small, symbol=_SANDBOX_SYMBOL
    )
    # Borrowed through the API (the fake has no other way to open a position); these
    # two appear in the history and ledger like any borrow.
    async with MarginClient(creds, base_url=fake.url, label="sandbox-setup") as client:
        await client.borrow("USDT", Decimal(10_000))
        await client.borrow("BTC", Decimal(1), symbol=_SANDBOX_SYMBOL, is_isolated=True)
    return creds


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[MarginClient]:
    """A client of the real exchange, or of an embedded seeded fake with ``--sandbox``."""
    retry = RetryPolicy(attempts=args.attempts)
    if not args.sandbox:
        creds = _credentials(args)
        base_url = args.base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        async with MarginClient(
            creds, base_url=base_url, retry=retry, timeout=args.timeout, label="cli"
        ) as client:
            yield client
        return
    if args.base_url or args.credentials:
        raise UsageError(
            "--sandbox uses its own exchange and account; drop --base-url/--credentials"
        )
    from margin_async.testing import FakeKuCoin  # only the sandbox needs the fake (aiohttp.web)

    async with FakeKuCoin() as fake:
        creds = await _sandbox_account(fake, _SANDBOX_BORROWS)
        _run_state(args).add_credentials(creds)
        async with MarginClient(
            creds, base_url=fake.url, retry=retry, timeout=args.timeout, label="sandbox"
        ) as client:
            yield client


# -- output -------------------------------------------------------------------------------


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        # newline="" lets the csv module write its own line endings.
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _format(args: argparse.Namespace, out: TextIO) -> Format:
    """``--format``, else from the output file's extension, else table on a terminal."""
    chosen: Format | None = getattr(args, "format", None)
    if chosen is not None:
        return chosen
    output = getattr(args, "output", None)
    if output:
        suffix = Path(output).suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
    return "table" if out.isatty() else "jsonl"


def _show_progress(args: argparse.Namespace) -> bool:
    """``--progress``/``--no-progress``, else only when stderr is a terminal."""
    forced: bool | None = getattr(args, "progress", None)
    return sys.stderr.isatty() if forced is None else forced


def _write_rows(args: argparse.Namespace, rows: Sequence[dict[str, Any]]) -> None:
    with _output(getattr(args, "output", None)) as out:
        writer = make_writer(_format(args, out), out)
        for row in rows:
            writer.write(row)
        writer.close()


# -- commands -----------------------------------------------------------------------------


def _mode(args: argparse.Namespace) -> str:
    return f"isolated {args.symbol}" if args.isolated else "cross"


def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask before moving money; refuse when nobody can answer (stdin not a terminal)."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {args.command} without confirmation: stdin is not a terminal; "
            "pass --yes to confirm"
        )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise _Declined


class _Declined(Exception):
    """The user answered no: nothing was sent (exit 1)."""


async def _move_money(
    args: argparse.Namespace, call: Awaitable[BorrowResult | RepayResult]
) -> None:
    """Await ``call`` (the borrow or repay, not yet started) and write its result.

    From the moment it starts until its outcome is reported, the run's money state is
    IN_FLIGHT: the CLI cannot know whether the request's bytes left, so an interrupt
    then is an unknown outcome (exit 6), not a plain 130.
    """
    state = _run_state(args)
    state.money = _Money.IN_FLIGHT
    try:
        result = await call
    except OutcomeUnknownError:
        raise  # still unknown (exit 6 either way)
    except MarginError:
        # Any other MarginError of a borrow/repay means it was not applied (the SDK
        # reconciles every ambiguous failure into a match or OutcomeUnknownError).
        state.money = _Money.SETTLED
        raise
    # Written before the client closes: an interrupt while closing loses no result.
    row = {"currency": args.currency, "size": str(args.size), **to_dict(result)}
    _write_rows(args, [row])
    sys.stdout.flush()
    state.money = _Money.SETTLED


async def _cmd_borrow(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await _move_money(
            args,
            client.borrow(
                args.currency,
                args.size,
                args.tif,
                symbol=args.symbol,
                is_isolated=args.isolated,
                is_hf=args.hf,
            ),
        )


async def _cmd_repay(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await _move_money(
            args,
            client.repay(
                args.currency,
                args.size,
                symbol=args.symbol,
                is_isolated=args.isolated,
                is_hf=args.hf,
            ),
        )


def _history_command(args: argparse.Namespace) -> str | None:
    """The command that shows the history a borrow/repay would appear in (``None`` with
    --sandbox: its exchange ends with the command)."""
    if args.sandbox:
        return None
    command = [PROG, "history", args.command, "--currency", args.currency]
    if args.isolated:
        command += ["--isolated", "--symbol", args.symbol]
    if args.credentials:
        command += ["--credentials", args.credentials]
    if args.base_url:
        command += ["--base-url", args.base_url]
    return shlex.join(command)


def _check_history(args: argparse.Namespace) -> str:
    """What to do about a borrow/repay whose outcome is unknown."""
    command = _history_command(args)
    if command is None:
        return "the --sandbox exchange ended with this command, so there is nothing to check"
    return f"check the history ({command}) before trying again"


async def _cmd_leverage(args: argparse.Namespace) -> None:
    async with _client(args) as client:
        await client.modify_leverage(args.value, symbol=args.symbol, is_isolated=args.isolated)
    row = {
        "leverage": str(args.value),
        "mode": "isolated" if args.isolated else "cross",
        "symbol": args.symbol or "",
    }
    _write_rows(args, [row])


async def _cmd_history(args: argparse.Namespace) -> None:
    currency: list[str] | None = args.currency or None
    if args.kind != "interest" and currency is None:
        raise UsageError(f"history {args.kind} needs --currency (e.g. --currency USDT)")
    if args.kind == "interest" and args.order_no is not None:
        raise UsageError("--order-no is only for borrow and repay history")
    async with _client(args) as client:
        filters: dict[str, Any] = {
            "is_isolated": args.isolated,
            "symbol": args.symbol,
            "start_time": args.since,
            "end_time": args.until,
            "page_size": args.page_size,
        }
        pages: AsyncIterator[Page[Any]]
        if args.kind == "interest":
            pages = client.interest_history(currency, **filters).pages()
        elif currency is None:
            raise UsageError(f"history {args.kind} needs --currency (e.g. --currency USDT)")
        elif args.kind == "borrow":
            pages = client.borrow_history(currency, order_no=args.order_no, **filters).pages()
        else:
            pages = client.repay_history(currency, order_no=args.order_no, **filters).pages()
        with _output(args.output) as out:
            writer = make_writer(_format(args, out), out)
            progress = Progress(sys.stderr, f"{args.kind} history", enabled=_show_progress(args))
            try:
                async for page in pages:
                    for item in page.items:
                        writer.write(to_dict(item))
                    progress.page(
                        len(page.items), total_records=page.total_num, total_pages=page.total_page
                    )
            except BaseException:
                progress.clear()
                raise
            writer.close()
            progress.finish()


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM (instead of KeyboardInterrupt or death)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


async def _cmd_sandbox(args: argparse.Namespace) -> None:
    from margin_async.testing import FakeKuCoin

    # Handlers first: whoever reads the URL below may signal at once, and must get exit 0.
    with _stop_on_signal() as stop:
        async with FakeKuCoin(port=args.port, seed=args.seed) as fake:
            creds = await _sandbox_account(fake, args.seed_records)
            # Printing these secrets is the point: they are throwaway keys of a local fake.
            lines = [
                f"# margin-async sandbox: a fake KuCoin at {fake.url} (Ctrl-C to stop)",
                f"# one account with USDT history ({args.seed_records} borrows, "
                f"{args.seed_records // 2} repays, {args.seed_records * 2} interest records), "
                f"BTC history (cross and isolated {_SANDBOX_SYMBOL}), and loans of "
                "10000 USDT (cross) and 1 BTC (isolated) to repay",
                f"export KUCOIN_API_KEY={creds.api_key}",
                f"export KUCOIN_API_SECRET={creds.api_secret}",
                f"export KUCOIN_API_PASSPHRASE={creds.api_passphrase}",
                f"export KUCOIN_API_KEY_VERSION={creds.key_version}",
                f"export {ENV_BASE_URL}={fake.url}",
            ]
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            await stop.wait()


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
    show: bool,
) -> _Summary:
    progress = Progress(sys.stderr, f"{name:8} history", enabled=show)
    total = Decimal(0)
    try:
        async for page in pages:
            for item in page.items:
                total += amount(item)
            progress.page(
                len(page.items), total_records=page.total_num, total_pages=page.total_page
            )
    except BaseException:
        progress.clear()
        raise
    progress.finish()
    return _Summary(name, progress.records, progress.pages, field, total, progress.elapsed)


async def _cmd_demo(args: argparse.Namespace) -> None:
    from margin_async.testing import FakeKuCoin

    out = sys.stdout
    show = _show_progress(args)
    borrows, repays, interest = args.records, args.records // 2, args.records
    requests = 0
    resends = 0

    def count(event: ResponseEvent) -> None:
        nonlocal requests, resends
        requests += 1
        resends += event.attempt > 1

    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=borrows, repays=repays, interest=interest)
        out.write(
            f"margin-async {__version__} demo: an embedded fake KuCoin at {fake.url}, one "
            f"account seeded with {borrows:,} borrows, {repays:,} repays and {interest:,} "
            "interest records of USDT.\n\n"
        )
        async with MarginClient(creds, base_url=fake.url, on_response=count) as client:
            loan = await client.borrow("USDT", Decimal("1000"), "IOC")
            fake.accrue_interest(creds.api_key, hours=24)
            paid = await client.repay("USDT", Decimal("400"))
            await client.modify_leverage("3.5")
            render_table(
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
            )
            out.write(f"\nstill owed: {fake.debt(creds.api_key, 'USDT')} USDT principal\n\n")
            out.flush()
            summaries = [
                await _stream_summary(
                    "borrow",
                    "actual_size",
                    client.borrow_history("USDT").pages(),
                    lambda o: o.actual_size if isinstance(o, BorrowOrder) else Decimal(0),
                    show,
                ),
                await _stream_summary(
                    "repay",
                    "principal+interest",
                    client.repay_history("USDT").pages(),
                    lambda o: o.principal + o.interest if isinstance(o, RepayOrder) else Decimal(0),
                    show,
                ),
                await _stream_summary(
                    "interest",
                    "interest_amount",
                    client.interest_history("USDT").pages(),
                    lambda o: o.interest_amount if isinstance(o, InterestRecord) else Decimal(0),
                    show,
                ),
            ]
    render_table(
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
    )
    out.write(
        f"\n{requests} HTTP requests ({resends} resent); amounts summed as exact Decimal.\n"
        "Try: margin-async sandbox, then margin-async history borrow --currency USDT\n"
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "borrow": _cmd_borrow,
    "repay": _cmd_repay,
    "leverage": _cmd_leverage,
    "history": _cmd_history,
    "sandbox": _cmd_sandbox,
    "demo": _cmd_demo,
}


# -- the parser ---------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted before or after the command. Under a command they default to
    SUPPRESS so that leaving one out there keeps the value given before the command."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection options")
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
        help="JSON or KEY=VALUE file with api_key, api_secret, api_passphrase[, key_version]; "
        "must be chmod 600 (default: KUCOIN_API_* environment variables)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default(10.0),
        help="seconds per attempt (default: 10)",
    )
    group.add_argument(
        "--attempts",
        metavar="N",
        type=_positive_int,
        default=default(4),
        help="attempts per request, counting the first (default: 4); borrow and repay are "
        "never resent after an ambiguous failure",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="log requests to stderr and show tracebacks",
    )


def _add_margin_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isolated", action="store_true", help="isolated margin (needs --symbol)")
    parser.add_argument(
        "--symbol", type=str.upper, help="isolated margin pair, e.g. BTC-USDT (with --isolated)"
    )


def _add_format(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    parser.add_argument(
        "--format",
        choices=formats,
        default=None,
        help="output format (default: table on a terminal, else jsonl)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``margin-async`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="KuCoin margin borrowing from the shell: borrow, repay, leverage, and "
        "history streamed as a table, JSON lines or CSV.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_common(sub, top=False)
        return sub

    borrow = command("borrow", "borrow an amount of a currency")
    borrow.add_argument("currency", type=parse_currency, help="currency code, e.g. USDT")
    borrow.add_argument("size", type=parse_amount, help="amount, e.g. 10 or 0.5")
    borrow.add_argument(
        "--tif",
        type=str.upper,
        choices=("IOC", "FOK"),
        default="IOC",
        help="IOC takes what is available, FOK all or nothing (default: IOC)",
    )
    _add_margin_mode(borrow)
    borrow.add_argument("--hf", action="store_true", help="high-frequency borrowing (isHf)")
    borrow.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _add_format(borrow)

    repay = command("repay", "repay an amount of a currency (interest first)")
    repay.add_argument("currency", type=parse_currency, help="currency code, e.g. USDT")
    repay.add_argument("size", type=parse_amount, help="amount, e.g. 10 or 0.5")
    _add_margin_mode(repay)
    repay.add_argument("--hf", action="store_true", help="high-frequency borrowing (isHf)")
    repay.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _add_format(repay)

    leverage = command("leverage", "set the leverage multiplier (> 1, two decimals at most)")
    leverage.add_argument("value", type=parse_amount, help="e.g. 3 or 3.5")
    _add_margin_mode(leverage)
    _add_format(leverage)

    history = command("history", "stream borrow, repay or interest history, every page")
    history.add_argument("kind", choices=("borrow", "repay", "interest"))
    history.add_argument(
        "--currency",
        type=parse_currencies,
        action="extend",
        metavar="C",
        help="currency code; repeat it or give a comma list (required for borrow and repay)",
    )
    _add_margin_mode(history)
    history.add_argument("--order-no", metavar="N", help="one order (borrow and repay only)")
    history.add_argument(
        "--since",
        type=parse_time,
        metavar="T",
        help="from this time: ISO date/datetime (naive = UTC) or epoch milliseconds",
    )
    history.add_argument(
        "--until", type=parse_time, metavar="T", help="up to this time (same forms)"
    )
    _add_format(history)
    history.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (format from its extension)"
    )
    history.add_argument(
        "--page-size",
        type=int,
        default=500,
        metavar="N",
        help="records per request, 10..500 (default: 500)",
    )
    history.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )

    sandbox = command("sandbox", "serve a fake exchange with a seeded account until Ctrl-C")
    sandbox.add_argument(
        "--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    sandbox.add_argument(
        "--seed-records",
        type=int,
        default=_SANDBOX_BORROWS,
        metavar="N",
        help=f"USDT borrow records to seed; N/2 repays, 2N interest (default: {_SANDBOX_BORROWS})",
    )
    sandbox.add_argument("--seed", type=int, default=0, help="seed of the synthetic history")

    demo = command("demo", "borrow, repay and stream 50,000 records on an embedded fake exchange")
    demo.add_argument(
        "--records",
        type=_positive_int,
        default=_DEMO_RECORDS,
        metavar="N",
        help=f"borrow and interest records to seed, N/2 repays (default: {_DEMO_RECORDS:,})",
    )
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: only when stderr is a terminal)",
    )
    return parser


def _check(args: argparse.Namespace) -> None:
    """Cross-option rules argparse cannot express (a :class:`UsageError`: exit 2)."""
    if hasattr(args, "isolated"):
        if args.isolated and not args.symbol:
            raise UsageError("--isolated needs --symbol (e.g. --symbol BTC-USDT)")
        if args.symbol and not args.isolated:
            raise UsageError("--symbol is for isolated margin: add --isolated")
    if args.command == "sandbox" and args.seed_records < 0:
        raise UsageError("--seed-records must be >= 0")
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and since > until:
        raise UsageError("--since is after --until")


def _question(args: argparse.Namespace) -> str:
    flags = ", HF" if args.hf else ""
    where = " on the sandbox" if args.sandbox else ""
    if args.command == "borrow":
        return f"Borrow {args.size} {args.currency} ({args.tif}, {_mode(args)}{flags}){where}?"
    return f"Repay {args.size} {args.currency} ({_mode(args)}{flags}){where}?"


class _ScrubbingFormatter(logging.Formatter):
    """Formats a record (and its traceback), then removes the run's secrets from it."""

    def __init__(self, state: _RunState) -> None:
        super().__init__(f"{PROG}: %(levelname)s: %(name)s: %(message)s")
        self._state = state

    def format(self, record: logging.LogRecord) -> str:
        return self._state.scrub(super().format(record))


@contextlib.contextmanager
def _logging_to_stderr(debug: bool, state: _RunState) -> Iterator[None]:
    """margin_async's log on stderr (DEBUG with --debug, else warnings only) while the
    command runs; the logger is restored afterwards, as ``main`` may run in-process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter(state))
    # asyncio's own reports ("Task exception was never retrieved") can quote an error
    # message too: they go through the same scrubbing handler, warnings only.
    levels = {_log: logging.DEBUG if debug else logging.WARNING, _asyncio_log: logging.WARNING}
    saved = [(logger, logger.level, logger.propagate) for logger in levels]
    for logger, level in levels.items():
        logger.addHandler(handler)
        logger.setLevel(level)
        # Not also through the root logger: each message once, in our format.
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _fail(state: _RunState, message: str, code: int) -> int:
    # Whatever was already written to stdout goes first, so the error comes last.
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    sys.stderr.write(state.scrub(f"{PROG}: error: {message}\n"))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    state = _run_state(args)
    with _logging_to_stderr(args.debug, state):
        return _main(args, state)


def _interrupted(args: argparse.Namespace, state: _RunState) -> int:
    """Report Ctrl-C: exit 6 once a borrow/repay may have been sent, else 130."""
    sys.stderr.write("\n")
    if state.money is _Money.IN_FLIGHT:
        return _fail(
            state,
            f"interrupted while the {args.command} was under way: outcome unknown: the "
            f"{args.command} may or may not have been applied; {_check_history(args)}",
            EXIT_OUTCOME_UNKNOWN,
        )
    if state.money is _Money.NOT_STARTED and args.command in ("borrow", "repay"):
        sys.stderr.write(f"{PROG}: interrupted; the {args.command} was not sent\n")
    else:
        sys.stderr.write(f"{PROG}: interrupted\n")
    return EXIT_INTERRUPTED


def _main(args: argparse.Namespace, state: _RunState) -> int:
    try:
        _check(args)
        if args.command in ("borrow", "repay"):
            # Asked before the event loop starts: nothing is connected while a person reads.
            _confirm(args, _question(args))
        asyncio.run(_COMMANDS[args.command](args))
        sys.stdout.flush()
        return EXIT_OK
    except _Declined:
        sys.stderr.write("Not confirmed; nothing was sent.\n")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _interrupted(args, state)
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
        if isinstance(exc, UsageError | MarginError):
            return _fail(state, str(exc) + _hint(args, exc), exit_code(exc))
        return _fail(
            state,
            f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            EXIT_INTERNAL,
        )


def _hint(args: argparse.Namespace, error: Exception) -> str:
    if isinstance(error, AuthenticationError):
        return " (check the API key, secret, passphrase, key version and IP allow-list)"
    if isinstance(error, OutcomeUnknownError) and args.command in ("borrow", "repay"):
        command = _history_command(args)
        return "" if command is None else f" (look it up with: {command})"
    return ""


def run() -> NoReturn:
    """Entry point for ``python -m margin_async.cli``."""
    sys.exit(main())


if __name__ == "__main__":
    run()
