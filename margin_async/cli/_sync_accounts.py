"""What ``margin-async sync`` mirrors: the accounts (one from the command line, or an
accounts file's), each one's credentials, the exchange they belong to (or the embedded
``--sandbox`` exchange, one seeded account per label), and the database.

Credentials files are read by :mod:`~margin_async.cli._credentials`, as for every
command; an accounts file names them, or the environment variables holding the secrets.
Every secret read is added to the run's scrubbing before anything can print it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from margin_async import Credentials, ValidationError
from margin_async.cli._credentials import credentials, load_credentials_file
from margin_async.cli._errors import UsageError
from margin_async.cli._exchange import choose_base_url, no_sandbox_options
from margin_async.cli._state import RunState
from margin_async.sync import (
    AccountEntry,
    AccountSpec,
    load_accounts,
    parse_codes,
    parse_kinds,
    parse_symbols,
)

if TYPE_CHECKING:
    from margin_async.testing import FakeKuCoin

__all__ = [
    "ENV_DB",
    "SANDBOX_RECORDS",
    "Exchange",
    "account_credentials",
    "accounts",
    "db_url",
    "open_exchange",
    "sandbox_activity",
]

#: The database URL when ``--db`` is not given.
ENV_DB = "MARGIN_ASYNC_DB"
#: Borrow records seeded per currency of a ``--sandbox`` account (as many again in
#: repays and interest, halved and doubled).
SANDBOX_RECORDS = 1000
_SANDBOX_LABEL = "sandbox"
_SANDBOX_CURRENCIES = ("USDT", "BTC")
_SANDBOX_SYMBOL = "BTC-USDT"


def _joined(values: Sequence[str] | None) -> str | None:
    return None if not values else ",".join(values)


def accounts(args: argparse.Namespace) -> list[AccountEntry]:
    """The accounts to mirror, with --currency/--symbols/--kinds as defaults for what
    an accounts file's entries do not say."""
    kinds = parse_kinds(args.kinds)
    currencies_text = _joined(args.currency)
    currencies = None if currencies_text is None else parse_codes(currencies_text, "currency")
    symbols_text = _joined(args.symbols)
    symbols = [] if symbols_text is None else parse_symbols(symbols_text, "symbols")
    if args.sandbox and currencies is None and not args.accounts:
        currencies = list(_SANDBOX_CURRENCIES)
        symbols = symbols or [_SANDBOX_SYMBOL]
    if args.accounts:
        return [
            attrs.evolve(
                entry,
                spec=AccountSpec(
                    currencies=entry.spec.currencies
                    if entry.spec.currencies is not None
                    else currencies,
                    isolated=entry.spec.isolated or tuple(symbols),
                    cross=entry.spec.cross,
                    kinds=tuple(k for k in (entry.spec.kinds or kinds) if k in kinds),
                ),
            )
            for entry in load_accounts(args.accounts)
        ]
    label = _SANDBOX_LABEL if args.sandbox and args.label == "default" else args.label
    if not label:
        raise UsageError("--label must not be empty")
    return [AccountEntry(label, AccountSpec(currencies=currencies, isolated=symbols, kinds=kinds))]


def db_url(args: argparse.Namespace) -> str:
    """``--db``, else ``$MARGIN_ASYNC_DB`` (which the library judges)."""
    url = args.db or os.environ.get(ENV_DB, "")
    if not url:
        raise UsageError(f"give --db URL (or set {ENV_DB}), e.g. --db sqlite:///mirror.db")
    return str(url)


def account_credentials(entry: AccountEntry, state: RunState) -> tuple[Credentials, str | None]:
    """An accounts file entry's credentials, and the base URL its credentials file names:
    from that file (read as ``--credentials FILE`` is), or from the environment
    variables it names."""
    if entry.credentials_file is not None:
        found, url = load_credentials_file(str(entry.credentials_file))
    elif entry.env is not None:
        found, url = _from_env_names(entry.label, entry.env, state), None
    else:
        # load_accounts never makes one: an entry built by other code.
        raise UsageError(f"account {entry.label!r} names no credentials file nor env variables")
    state.add_credentials(found)
    return found, url


def _from_env_names(label: str, names: Mapping[str, str], state: RunState) -> Credentials:
    """The credentials in the environment variables ``names`` (field -> variable)."""
    for field in ("api_secret", "api_passphrase"):
        # Hidden before they are checked: whatever the checks say can never show them.
        state.add_secret(os.environ.get(names.get(field, ""), ""))
    values: dict[str, str] = {}
    for field, name in names.items():
        value = os.environ.get(name, "")
        if not value:
            raise UsageError(f"account {label!r}: environment variable {name} ({field}) is not set")
        values[field] = value
    version = values.get("key_version", "3")
    if version not in ("2", "3"):
        raise UsageError(f"account {label!r}: {names['key_version']} must be 2 or 3")
    try:
        return Credentials(
            values["api_key"], values["api_secret"], values["api_passphrase"], int(version)
        )
    except ValidationError as exc:
        # The variable, not the value: it is a secret, or a piece of one.
        variable = names.get(exc.argument, exc.argument)
        raise UsageError(f"account {label!r}: {variable} is not valid") from None


@attrs.frozen
class Exchange:
    """The exchange a sync talks to, and the credentials of each account on it."""

    base_url: str
    #: Where ``base_url`` came from, for a refusal of it (``--base-url``, ...).
    source: str
    accounts: dict[str, Credentials]
    #: The embedded exchange of ``--sandbox`` (``None`` for a real one).
    fake: FakeKuCoin | None = None


@contextlib.asynccontextmanager
async def open_exchange(
    args: argparse.Namespace, entries: list[AccountEntry], state: RunState
) -> AsyncIterator[Exchange]:
    """The real exchange with each account's credentials (``--accounts`` entries', else
    the CLI's ``--credentials``/``KUCOIN_API_*``), or with ``--sandbox`` an embedded
    fake with one seeded account per label."""
    if not args.sandbox:
        creds: dict[str, Credentials] = {}
        named: dict[str, str] = {}  # credentials file -> the base URL it names
        for entry in entries:
            if args.accounts:
                found, url = account_credentials(entry, state)
                where = str(entry.credentials_file)
            else:
                found, url = credentials(args, state)
                where = str(args.credentials)
            creds[entry.label] = found
            if url:
                named[where] = url
        base_url, source = choose_base_url(args, named)
        yield Exchange(base_url, source, creds)
        return
    no_sandbox_options(args)
    from margin_async.testing import FakeKuCoin  # aiohttp.web: only when it is needed

    records = args.sandbox_records
    async with FakeKuCoin() as fake:
        made: dict[str, Credentials] = {}
        for entry in entries:
            account = fake.add_account()
            for currency in entry.spec.currencies or _SANDBOX_CURRENCIES:
                fake.seed_history(
                    account.api_key, currency, borrows=records, repays=records // 2,
                    interest=records * 2,
                )  # fmt: skip
                for symbol in entry.spec.isolated:
                    small = max(1, records // 10)
                    fake.seed_history(
                        account.api_key, currency, borrows=small, repays=small, interest=small,
                        symbol=symbol,
                    )  # fmt: skip
            state.add_credentials(account)
            made[entry.label] = account
        yield Exchange(fake.url, "--sandbox", made, fake)


async def sandbox_activity(exchange: Exchange, interval: float) -> None:
    """``--sandbox --follow``: an interest charge per account and interval, so that
    there is something new to mirror."""
    fake = exchange.fake
    assert fake is not None
    while True:
        await asyncio.sleep(interval)
        for creds in exchange.accounts.values():
            fake.append_interest(creds.api_key, "USDT", Decimal("0.0001"), Decimal("0.0002"))
