"""``margin-async sync``: mirror borrow, repay and interest history into a database.

``register(subparsers)`` adds the ``sync`` command to an argparse parser; :func:`run`
is its handler (it raises :class:`~margin_async.MarginError` subclasses, which the CLI
maps to its exit codes); :func:`main` runs it alone (``python -m margin_async.sync``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

from margin_async import (
    DEFAULT_BASE_URL,
    AccountPool,
    AuthenticationError,
    Credentials,
    MarginError,
    RateLimitError,
    RetryPolicy,
    TransportError,
    ValidationError,
)
from margin_async.sync._accounts import (
    AccountEntry,
    load_accounts,
    parse_codes,
    parse_kinds,
    parse_symbols,
    read_credentials_file,
)
from margin_async.sync._budget import DEFAULT_HEADROOM, DEFAULT_QUOTA
from margin_async.sync._errors import SyncConfigError
from margin_async.sync._mirror import AccountSpec, Mirror, SyncStatus
from margin_async.sync._open import open_store
from margin_async.sync._rows import KINDS

if TYPE_CHECKING:
    from margin_async.testing import FakeKuCoin

__all__ = ["DESCRIPTION", "ENV_DB", "EPILOG", "HELP", "add_arguments", "main", "register", "run"]

PROG = "margin-async"
#: The database URL when ``--db`` is not given.
ENV_DB = "MARGIN_ASYNC_DB"
_ENV_BASE_URL = "MARGIN_ASYNC_BASE_URL"
_SANDBOX_LABEL = "sandbox"
_SANDBOX_CURRENCIES = ("USDT", "BTC")
_SANDBOX_SYMBOL = "BTC-USDT"
_SANDBOX_RECORDS = 1000

#: One line for the host CLI's command list.
HELP = "mirror borrow, repay and interest history into SQLite or PostgreSQL"

DESCRIPTION = """\
Mirror borrow, repay and interest history into a database, exactly once: the records of
each poll and the position after them commit in one transaction, so a crash or a kill at
any moment loses and repeats nothing. --once brings the database up to date and exits
(cron, Airflow); --follow keeps it up to date until SIGTERM or Ctrl-C, which finish the
transaction under way and exit 0. Several --follow workers on one PostgreSQL database
share the accounts (leases) and take over those of a worker that died.
"""

EPILOG = f"""\
databases (--db, or ${ENV_DB}):
  sqlite:///mirror.db           a file (relative path; sqlite:////abs/path.db), WAL mode
  postgresql://USER@HOST/DB     PostgreSQL (pip install 'margin-async[postgres]'); the
                                password from PGPASSWORD or ~/.pgpass rather than the URL
  tables: borrow_orders, repay_orders, interest_records, sync_cursors, sync_leases,
  sync_workers

accounts:
  without --accounts, one account (label --label) from --credentials FILE or the
  KUCOIN_API_* environment; --sandbox mirrors an embedded fake exchange's seeded account.
  --accounts FILE (TOML) names many: label, credentials = "FILE" or env = {{ api_key =
  "VAR", api_secret = "VAR", api_passphrase = "VAR" }}, currencies, isolated symbols.
  Secrets never go in the accounts file or the database.

rate limits:
  the mirror spends at most (1 - headroom) x quota weight per 30 s per account and backs
  off when less than headroom x quota remains, leaving that to the account's borrows and
  repays (defaults: quota {DEFAULT_QUOTA}, VIP0; headroom {DEFAULT_HEADROOM}).

examples:
  {PROG} sync --sandbox --db sqlite:///mirror.db --once
  {PROG} sync --db postgresql://mirror@db.internal/treasury --accounts accounts.toml --follow
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _add_connection(parser: argparse.ArgumentParser) -> None:
    """The connection options the main CLI gives every command (used when alone)."""
    group = parser.add_argument_group("connection options")
    group.add_argument(
        "--sandbox",
        action="store_true",
        help="mirror an embedded fake exchange with seeded history (no real account)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API base URL (default: ${_ENV_BASE_URL} or {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--credentials",
        metavar="FILE",
        help="JSON or KEY=VALUE file with api_key, api_secret, api_passphrase[, key_version]; "
        "must be chmod 600 (default: KUCOIN_API_* environment variables)",
    )
    group.add_argument(
        "--timeout", metavar="SECONDS", type=_seconds, default=10.0, help="seconds per attempt"
    )
    group.add_argument(
        "--attempts",
        metavar="N",
        type=_positive_int,
        default=4,
        help="attempts per request, counting the first (default: 4)",
    )
    group.add_argument("--debug", action="store_true", help="log to stderr, show tracebacks")


def register(
    subparsers: Any,
    *,
    add_common: Callable[[argparse.ArgumentParser], None] | None = None,
    **parser_options: Any,
) -> argparse.ArgumentParser:
    """Add the ``sync`` command to ``subparsers`` (from ``add_subparsers``) and return
    its parser. ``add_common`` adds the connection options (``--sandbox``,
    ``--base-url``, ``--credentials``, ``--timeout``, ``--attempts``, ``--debug``) the
    way the host CLI gives them to every command; without it, they are added here.
    ``parser_options`` go to ``add_parser``. The handler is :func:`run`, also set as the
    parser's ``handler`` default.
    """
    options: dict[str, Any] = {
        "help": HELP,
        "description": DESCRIPTION,
        "epilog": EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        **parser_options,
    }
    sync: argparse.ArgumentParser = subparsers.add_parser("sync", **options)
    if add_common is not None:
        add_common(sync)
    add_arguments(sync, connection=add_common is None)
    sync.set_defaults(handler=run)
    return sync


def add_arguments(parser: argparse.ArgumentParser, *, connection: bool = True) -> None:
    """Add the ``sync`` options to ``parser`` (a host CLI's subcommand parser); with
    ``connection``, the connection options too (see :func:`register`)."""
    sync = parser
    if connection:
        _add_connection(sync)
    sync.add_argument("--db", metavar="URL", help=f"database URL (default: ${ENV_DB}); see below")
    sync.add_argument(
        "--accounts", metavar="FILE", help="TOML file naming the accounts (see below)"
    )
    sync.add_argument(
        "--label",
        default="default",
        help="the account's label in the tables, without --accounts (default: default)",
    )
    sync.add_argument(
        "--currency",
        metavar="C",
        action="append",
        help="currency codes, comma-separated or repeated (borrow and repay need some; "
        "interest alone may mirror every currency); accounts file entries may set their own",
    )
    sync.add_argument(
        "--symbols",
        metavar="S",
        action="append",
        help="isolated-margin symbols (BTC-USDT) to mirror besides cross margin",
    )
    sync.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="histories to mirror, comma-separated (default: borrow,repay,interest)",
    )
    mode = sync.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="bring the database up to date, exit")
    mode.add_argument(
        "--follow", action="store_true", help="keep it up to date until SIGTERM or Ctrl-C"
    )
    sync.add_argument(
        "--interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="--follow: seconds between polls of each history (default: 5)",
    )
    sync.add_argument(
        "--quota",
        type=_positive_int,
        default=DEFAULT_QUOTA,
        metavar="WEIGHT",
        help=f"the account's request weight per 30 s (default: {DEFAULT_QUOTA}, VIP0)",
    )
    sync.add_argument(
        "--headroom",
        type=_fraction,
        default=DEFAULT_HEADROOM,
        metavar="FRACTION",
        help=f"share of the quota left to other use of the account (default: {DEFAULT_HEADROOM})",
    )
    sync.add_argument(
        "--lease-ttl",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="an account's lease expires this long after its worker's last renewal, and "
        "another worker takes it over (default: 30)",
    )
    sync.add_argument(
        "--worker", metavar="NAME", help="this worker's name (default: host:pid:random)"
    )
    sync.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: only when stderr is a terminal)",
    )
    # Tuning and testing knobs, not shown.
    sync.add_argument("--batch-size", type=_positive_int, default=2000, help=argparse.SUPPRESS)
    sync.add_argument(
        "--sandbox-records", type=int, default=_SANDBOX_RECORDS, help=argparse.SUPPRESS
    )


# -- settings ---------------------------------------------------------------------------


def _option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def _joined(values: Sequence[str] | None) -> str | None:
    return None if not values else ",".join(values)


def _accounts(args: argparse.Namespace) -> list[AccountEntry]:
    """The accounts to mirror, with --currency/--symbols as defaults for their specs."""
    kinds = parse_kinds(args.kinds)
    currencies_text = _joined(args.currency)
    currencies = None if currencies_text is None else parse_codes(currencies_text, "currency")
    symbols_text = _joined(args.symbols)
    symbols = [] if symbols_text is None else parse_symbols(symbols_text, "symbols")
    if _option(args, "sandbox") and currencies is None and not args.accounts:
        currencies = list(_SANDBOX_CURRENCIES)
        symbols = symbols or [_SANDBOX_SYMBOL]
    if args.accounts:
        entries = load_accounts(args.accounts)
        return [
            AccountEntry(
                entry.label,
                AccountSpec(
                    currencies=entry.spec.currencies
                    if entry.spec.currencies is not None
                    else currencies,
                    isolated=entry.spec.isolated or tuple(symbols),
                    cross=entry.spec.cross,
                    kinds=tuple(k for k in (entry.spec.kinds or kinds) if k in kinds),
                ),
                entry.credentials_file,
                entry.env,
            )
            for entry in entries
        ]
    label = _SANDBOX_LABEL if _option(args, "sandbox") and args.label == "default" else args.label
    if not label:
        raise SyncConfigError("label", "must not be empty")
    spec = AccountSpec(currencies=currencies, isolated=tuple(symbols), kinds=kinds)
    return [AccountEntry(label, spec)]


def _single_credentials(args: argparse.Namespace) -> tuple[Credentials, str | None]:
    path = _option(args, "credentials")
    if path:
        return read_credentials_file(path)
    try:
        return Credentials.from_env(), None
    except ValidationError as exc:
        raise SyncConfigError(
            "credentials",
            f"no credentials: {exc} (set KUCOIN_API_KEY, KUCOIN_API_SECRET and "
            "KUCOIN_API_PASSPHRASE, pass --credentials FILE or --accounts FILE, or try --sandbox)",
        ) from None


def _db_url(args: argparse.Namespace) -> str:
    url = args.db or os.environ.get(ENV_DB, "")
    if not url:
        raise SyncConfigError(
            "db", f"give --db URL (or set {ENV_DB}), e.g. --db sqlite:///mirror.db"
        )
    return str(url)


# -- the exchange -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _exchange(
    args: argparse.Namespace, entries: list[AccountEntry]
) -> AsyncIterator[tuple[str, dict[str, Credentials], FakeKuCoin | None]]:
    """The base URL and each account's credentials: the real exchange's, or an embedded
    fake's with ``--sandbox`` (one seeded account per label)."""
    if not _option(args, "sandbox"):
        creds: dict[str, Credentials] = {}
        named: set[str] = set()  # base URLs the credentials files name
        for entry in entries:
            found, url = entry.source() if args.accounts else _single_credentials(args)
            creds[entry.label] = found
            if url:
                named.add(url)
        if len(named) > 1 and not _option(args, "base_url"):
            raise SyncConfigError(
                "credentials",
                f"the credentials files name different base URLs ({', '.join(sorted(named))}): "
                "the accounts of one sync share one exchange; pass --base-url",
            )
        base_url = (
            _option(args, "base_url")
            or next(iter(named), None)
            or os.environ.get(_ENV_BASE_URL)
            or DEFAULT_BASE_URL
        )
        yield str(base_url), creds, None
        return
    if _option(args, "base_url") or _option(args, "credentials"):
        raise SyncConfigError(
            "sandbox", "--sandbox uses its own exchange and accounts; drop --base-url/--credentials"
        )
    from margin_async.testing import FakeKuCoin

    records = max(0, int(args.sandbox_records))
    async with FakeKuCoin() as fake:
        accounts: dict[str, Credentials] = {}
        for entry in entries:
            made = fake.add_account()
            for currency in entry.spec.currencies or _SANDBOX_CURRENCIES:
                fake.seed_history(
                    made.api_key, currency, borrows=records, repays=records // 2,
                    interest=records * 2,
                )  # fmt: skip
                for symbol in entry.spec.isolated:
                    small = max(1, records // 10)
                    fake.seed_history(
                        made.api_key, currency, borrows=small, repays=small, interest=small,
                        symbol=symbol,
                    )  # fmt: skip
            accounts[entry.label] = made
        yield fake.url, accounts, fake


async def _sandbox_activity(
    fake: FakeKuCoin, accounts: dict[str, Credentials], interval: float
) -> None:
    """--sandbox --follow: an interest charge per account and interval, to mirror live."""
    while True:
        await asyncio.sleep(interval)
        for creds in accounts.values():
            fake.append_interest(creds.api_key, "USDT", Decimal("0.0001"), Decimal("0.0002"))


# -- progress ---------------------------------------------------------------------------


class _Progress:
    """One status line on stderr, redrawn in place (a terminal only)."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self._out = out
        self._enabled = enabled
        self._width = 0

    def show(self, status: SyncStatus, *, final: str = "") -> None:
        """Redraw the line; ``final`` (``"once"`` or ``"follow"``) ends it."""
        if not self._enabled:
            return
        records = f"{status.records:,} records" + (
            f" ({status.replayed:,} already there)" if status.replayed else ""
        )
        if final == "once":
            text = f"sync: {len(status.done)}/{status.accounts} accounts up to date, {records}"
            if status.skipped:
                text += f", {len(status.skipped)} left to other workers"
        elif final:
            text = f"sync: stopped, {records}"
        else:
            lag = "catching up" if status.lag_ms is None else f"lag {status.lag_ms / 1000:.1f} s"
            text = f"sync: {len(status.held)}/{status.accounts} accounts, {records}, {lag}"
        pad = max(0, self._width - len(text))
        self._out.write("\r" + text + " " * pad + ("\n" if final else ""))
        self._out.flush()
        self._width = 0 if final else len(text)

    def clear(self) -> None:
        if self._enabled and self._width:
            self._out.write("\r" + " " * self._width + "\r")
            self._out.flush()
            self._width = 0


async def _show_progress(mirror: Mirror, progress: _Progress) -> None:
    while True:
        progress.show(mirror.status())
        await asyncio.sleep(0.5)


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of interrupting."""
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)
    # Not on Windows (NotImplementedError), nor outside the main thread (RuntimeError,
    # ValueError): there the command runs without them.
    unsupported = (NotImplementedError, RuntimeError, ValueError)
    for sig in handled:
        with contextlib.suppress(*unsupported):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in handled:
            with contextlib.suppress(*unsupported):
                loop.remove_signal_handler(sig)


# -- the command ------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, *, on_credentials: Callable[[Credentials], None] | None = None
) -> None:
    """The ``sync`` command. Raises a :class:`~margin_async.MarginError` on failure
    (a :class:`~margin_async.ValidationError` for settings), and ``KeyboardInterrupt``
    when ``--once`` was interrupted (the database is consistent, not up to date).
    ``on_credentials`` is called with each account's credentials once read (a host CLI
    registers their secrets for scrubbing)."""
    entries = _accounts(args)
    url = _db_url(args)
    stop = asyncio.Event()
    progress = _Progress(
        sys.stderr,
        sys.stderr.isatty() if args.progress is None else bool(args.progress),
    )
    with _signals(stop):
        async with _exchange(args, entries) as (base_url, creds, fake):
            if on_credentials is not None:
                for found in creds.values():
                    on_credentials(found)
            store = open_store(url)
            mirror = Mirror(
                store,
                {entry.label: entry.spec for entry in entries},
                quota=args.quota,
                headroom=args.headroom,
                lease_ttl=args.lease_ttl,
                batch_size=args.batch_size,
                worker=args.worker,
            )
            async with (
                store,
                AccountPool(
                    creds,
                    base_url=base_url,
                    retry=RetryPolicy(attempts=_option(args, "attempts", 4)),
                    timeout=_option(args, "timeout", 10.0),
                    on_response=mirror.observe,
                ) as pool,
            ):
                helpers = [asyncio.ensure_future(_show_progress(mirror, progress))]
                if fake is not None and args.follow:
                    helpers.append(
                        asyncio.ensure_future(_sandbox_activity(fake, creds, args.interval))
                    )
                try:
                    if args.follow:
                        status = await mirror.follow(pool, interval=args.interval, stop=stop)
                    else:
                        status = await _once(mirror, pool, stop)
                except BaseException:
                    progress.clear()
                    raise
                finally:
                    for helper in helpers:
                        helper.cancel()
                    await asyncio.gather(*helpers, return_exceptions=True)
                progress.show(status, final="follow" if args.follow else "once")


async def _once(mirror: Mirror, pool: AccountPool, stop: asyncio.Event) -> SyncStatus:
    """``run_once``, cut short (after the transactions under way) by ``stop``."""
    work = asyncio.ensure_future(mirror.run_once(pool))
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise KeyboardInterrupt
    return work.result()


# -- alone: python -m margin_async.sync -------------------------------------------------

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_NETWORK = 5
EXIT_API = 7
EXIT_INTERRUPTED = 130


def exit_code(error: BaseException) -> int:
    """The ``margin-async`` exit status for ``error``."""
    if isinstance(error, ValidationError):
        return EXIT_USAGE
    if isinstance(error, AuthenticationError):
        return EXIT_AUTH
    if isinstance(error, RateLimitError):
        return EXIT_RATE_LIMIT
    if isinstance(error, TransportError):
        return EXIT_NETWORK
    if isinstance(error, MarginError):
        return EXIT_API
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    """A ``margin-async`` parser with the ``sync`` command only."""
    parser = argparse.ArgumentParser(prog=PROG)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``margin-async sync ...`` alone; return the exit status."""
    args = build_parser().parse_args(argv)
    debug = bool(_option(args, "debug", False))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
    logger = logging.getLogger("margin_async")
    saved = (logger.level, logger.propagate)  # main may run in process: restored after
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    started = time.monotonic()
    try:
        asyncio.run(run(args))
        return EXIT_OK
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write(f"{PROG}: interrupted; the database is consistent, rerun to finish\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            import traceback

            sys.stderr.write(traceback.format_exc())
        if isinstance(exc, MarginError):
            sys.stderr.write(f"{PROG}: error: {exc}\n")
        else:
            sys.stderr.write(
                f"{PROG}: error: unexpected {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback)\n"
            )
        return exit_code(exc)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        _log_elapsed(started, debug)


def _log_elapsed(started: float, debug: bool) -> None:
    if debug:
        sys.stderr.write(f"{PROG}: sync ran {time.monotonic() - started:.2f} s\n")
