"""``margin-async sync``: mirror borrow, repay and interest history into a database,
exactly once, with :mod:`margin_async.sync` (the library does the mirroring).

This module is the command's parser; :mod:`~margin_async.cli._sync_accounts` says which
accounts it mirrors with which credentials, and :mod:`~margin_async.cli._sync_run` runs
it (signals, progress). Like every command it takes the CLI's connection options, exit
statuses, error messages and secret scrubbing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from margin_async.cli._errors import Arg
from margin_async.cli._parser import Commands, at_least
from margin_async.cli._sync_accounts import ENV_DB, SANDBOX_RECORDS
from margin_async.cli._sync_run import run
from margin_async.sync import DEFAULT_HEADROOM, DEFAULT_QUOTA, KINDS

__all__ = ["register"]

_HELP = "mirror borrow, repay and interest history into SQLite or PostgreSQL"

_DESCRIPTION = """\
Mirror borrow, repay and interest history into a database, exactly once: the records of
each poll and the position after them commit in one transaction, so a crash or a kill at
any moment loses and repeats nothing. --once brings the database up to date and exits
(cron, Airflow); --follow keeps it up to date until SIGTERM or Ctrl-C, which finish the
transaction under way and exit 0. Several --follow workers on one PostgreSQL database
share the accounts (leases) and take over those of a worker that died.
"""

_EPILOG = f"""\
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

progress:
  on a terminal (the cli extra), one line: the records written, the accounts held and
  how far behind the exchange they are; then a summary line. Nothing when not on a
  terminal, unless --progress.

examples:
  margin-async sync --sandbox --db sqlite:///mirror.db --once
  margin-async sync --db postgresql://mirror@db.internal/treasury --accounts accounts.toml --follow
"""

#: The mirror's parameters -> the flags that carry them (for its refusals).
_SYNC_ARGS = {
    "currency": Arg("currency", "--currency"),
    "symbols": Arg("symbols", "--symbols"),
    "kinds": Arg("kinds", "--kinds"),
    "quota": Arg("quota", "--quota"),
    "headroom": Arg("headroom", "--headroom"),
    "lease_ttl": Arg("lease_ttl", "--lease-ttl"),
    "interval": Arg("interval", "--interval"),
    "batch_size": Arg("batch_size", "--batch-size"),
}


def _number(accepts: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse ``type``: a number that ``accepts`` (said as ``rule`` otherwise).

    The library judges these too, but --interval only in --follow and only once the
    database is open: a mistake is said here, before anything starts.
    """

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return convert


_seconds = _number(lambda value: value > 0, "seconds > 0")
_fraction = _number(lambda value: 0 <= value < 1, "in [0, 1)")


def register(commands: Commands) -> None:
    """Add ``sync``."""
    sync = commands.add(
        "sync",
        _HELP,
        run,
        arguments=_SYNC_ARGS,
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
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
    _add_tuning(sync)


def _add_tuning(sync: argparse.ArgumentParser) -> None:
    """How the mirror polls, shares the rate limit and the accounts, and shows progress."""
    sync.add_argument(
        "--interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="--follow: seconds between polls of each history (default: 5)",
    )
    sync.add_argument(
        "--quota",
        type=at_least(1),
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
        help="progress display on stderr (default: when stderr is a terminal and stdout "
        "is not a pipe)",
    )
    # Tuning and testing knobs, not shown.
    sync.add_argument("--batch-size", type=at_least(1), default=2000, help=argparse.SUPPRESS)
    sync.add_argument(
        "--sandbox-records", type=at_least(0), default=SANDBOX_RECORDS, help=argparse.SUPPRESS
    )
