"""The accounts file (TOML): which accounts to mirror, what of each, and where their
credentials come from; and the parsing of the same lists given as comma-separated text
(``--currency usdt,btc``). Neither the accounts file nor the database ever holds a secret.

Accounts file::

    [defaults]                      # optional; each account may override
    currencies = ["USDT", "BTC"]
    kinds = ["borrow", "repay", "interest"]

    [[accounts]]
    label = "treasury"
    credentials = "treasury.env"    # a credentials file (chmod 600), relative to this file
    isolated = ["BTC-USDT"]         # isolated-margin symbols, mirrored besides cross

    [[accounts]]
    label = "desk-2"
    currencies = ["USDT"]
    # the NAMES of environment variables holding the secrets
    env = { api_key = "DESK2_KEY", api_secret = "DESK2_SECRET", api_passphrase = "DESK2_PASS" }

A credentials file is what ``margin-async --credentials FILE`` reads (JSON or
``KEY=VALUE`` lines, readable by its owner only); this module only records its path.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs

from margin_async.sync._errors import SyncConfigError
from margin_async.sync._mirror import AccountSpec
from margin_async.sync._rows import KINDS, Kind

__all__ = ["AccountEntry", "load_accounts", "parse_codes", "parse_kinds", "parse_symbols"]

_Refuse = Callable[[str], NoReturn]

# A key naming any of these is a secret pasted into the accounts file (api_secret,
# KUCOIN_API_PASSPHRASE, key, ...): refused as such, whatever its exact spelling.
_SECRET_WORDS = ("key", "secret", "passphrase")
_ACCOUNT_KEYS = {"label", "credentials", "env", "currencies", "isolated", "cross", "kinds"}
_DEFAULT_KEYS = {"currencies", "isolated", "cross", "kinds"}
_ENV_FIELDS = ("api_key", "api_secret", "api_passphrase", "key_version")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CODE = re.compile(r"[A-Z0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")


@attrs.frozen
class AccountEntry:
    """One account of an accounts file: its label, what to mirror, and where its
    credentials come from (a credentials file's path, or the names of the environment
    variables holding them), never the secrets themselves: whoever runs the mirror reads
    them (``margin-async sync`` does, as it reads ``--credentials FILE``)."""

    label: str
    spec: AccountSpec
    credentials_file: Path | None = None
    #: Field (``api_key``, ``api_secret``, ``api_passphrase``, ``key_version``) ->
    #: the name of the environment variable holding it.
    env: Mapping[str, str] | None = None


# -- accounts files -------------------------------------------------------------------------


def load_accounts(path: str | os.PathLike[str]) -> list[AccountEntry]:
    """Read an accounts file (see the module docstring); a :class:`SyncConfigError`
    names the account and key of any mistake (and never echoes a value)."""
    where = str(path)

    def refuse(problem: str) -> NoReturn:
        raise SyncConfigError("accounts", f"accounts file {where}: {problem}")

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        refuse(f"cannot read it ({exc.strerror})")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        refuse(f"not valid TOML ({exc})")
    unknown = set(document) - {"accounts", "defaults"}
    if unknown:
        refuse(f"unknown table(s) {', '.join(sorted(unknown))} (expected [defaults], [[accounts]])")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        refuse("[defaults] must be a table")
    _check_keys(defaults, _DEFAULT_KEYS, "[defaults]", refuse)
    raw_accounts = document.get("accounts")
    if not isinstance(raw_accounts, list) or not raw_accounts:
        refuse("no [[accounts]] entry")
    base = Path(path).parent
    entries: list[AccountEntry] = []
    labels: set[str] = set()
    for index, raw in enumerate(raw_accounts, start=1):
        if not isinstance(raw, dict):
            refuse(f"account {index} must be a table")
        label = raw.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            refuse(f"account {index}: label must be a non-empty string")
        name = f"account {label!r}"
        if label in labels:
            refuse(f"{name} is given twice")
        labels.add(label)
        _check_keys(raw, _ACCOUNT_KEYS, name, refuse)
        merged: dict[str, Any] = {
            **defaults,
            **{k: v for k, v in raw.items() if k in _DEFAULT_KEYS},
        }
        spec = AccountSpec(
            currencies=_codes(merged.get("currencies"), name, refuse),
            isolated=_symbols(merged.get("isolated", []), name, refuse),
            cross=_flag(merged.get("cross", True), name, refuse),
            kinds=_kinds(merged.get("kinds"), name, refuse),
        )
        source_file = raw.get("credentials")
        env = raw.get("env")
        if source_file is not None and env is not None:
            refuse(f"{name}: give credentials (a file) or env (variable names), not both")
        credentials_file: Path | None = None
        if source_file is not None:
            if not isinstance(source_file, str) or not source_file:
                refuse(f"{name}: credentials must be the path of a credentials file")
            credentials_file = base / Path(source_file).expanduser()
        names: dict[str, str] | None = None
        if env is not None:
            names = _env_names(env, name, refuse)
        entries.append(AccountEntry(label, spec, credentials_file, names))
    return entries


def _check_keys(table: Mapping[str, Any], allowed: set[str], name: str, refuse: _Refuse) -> None:
    for key in table:
        if key not in allowed and any(word in key.lower() for word in _SECRET_WORDS):
            refuse(
                f"{name}: {key} looks like a secret; the accounts file never holds secrets: "
                'name a credentials file (credentials = "PATH") or environment variables '
                '(env = { api_key = "VAR", api_secret = "VAR", api_passphrase = "VAR" })'
            )
        if key not in allowed:
            refuse(f"{name}: unknown key {key!r} (expected {', '.join(sorted(allowed))})")


def _env_names(env: object, name: str, refuse: _Refuse) -> dict[str, str]:
    if not isinstance(env, dict):
        refuse(f"{name}: env must be a table of environment variable names")
    names: dict[str, str] = {}
    for field, value in env.items():
        if field not in _ENV_FIELDS:
            refuse(f"{name}: env.{field} is not one of {', '.join(_ENV_FIELDS)}")
        if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
            # Not echoed: it may be a secret pasted in by mistake.
            refuse(f"{name}: env.{field} must be the NAME of an environment variable")
        names[field] = value
    missing = [f for f in _ENV_FIELDS[:3] if f not in names]
    if missing:
        refuse(f"{name}: env lacks {', '.join(missing)}")
    return names


def _codes(value: object, name: str, refuse: _Refuse) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        refuse(f'{name}: currencies must be a non-empty list such as ["USDT"]')
    codes = []
    for item in value:
        code = item.strip().upper() if isinstance(item, str) else ""
        if not _CODE.fullmatch(code):
            refuse(f"{name}: {item!r} is not a currency code such as USDT")
        codes.append(code)
    return tuple(dict.fromkeys(codes))


def _symbols(value: object, name: str, refuse: _Refuse) -> tuple[str, ...]:
    if not isinstance(value, list):
        refuse(f'{name}: isolated must be a list such as ["BTC-USDT"]')
    symbols = []
    for item in value:
        symbol = item.strip().upper() if isinstance(item, str) else ""
        if not _SYMBOL.fullmatch(symbol):
            refuse(f"{name}: {item!r} is not a symbol such as BTC-USDT")
        symbols.append(symbol)
    return tuple(dict.fromkeys(symbols))


def _flag(value: object, name: str, refuse: _Refuse) -> bool:
    if not isinstance(value, bool):
        refuse(f"{name}: cross must be true or false")
    return value


def _kinds(value: object, name: str, refuse: _Refuse) -> tuple[Kind, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(k not in KINDS for k in value):
        refuse(f"{name}: kinds must be a list of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in value)


def parse_codes(text: str, argument: str) -> list[str]:
    """A comma list of currency codes (``usdt,btc`` -> ``["USDT", "BTC"]``), spelled as
    the mirror keys its streams (upper case); a :class:`SyncConfigError` naming
    ``argument`` for anything else."""
    codes = [part.strip().upper() for part in text.split(",") if part.strip()]
    for code in codes:
        if not _CODE.fullmatch(code):
            raise SyncConfigError(argument, f"{code!r} is not a currency code such as USDT")
    if not codes:
        raise SyncConfigError(argument, "no currency code given")
    return codes


def parse_symbols(text: str, argument: str) -> list[str]:
    """A comma list of isolated-margin symbols (``btc-usdt`` -> ``["BTC-USDT"]``); a
    :class:`SyncConfigError` naming ``argument`` for anything else."""
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    for symbol in symbols:
        if not _SYMBOL.fullmatch(symbol):
            raise SyncConfigError(argument, f"{symbol!r} is not a symbol such as BTC-USDT")
    return symbols


def parse_kinds(text: str) -> tuple[Kind, ...]:
    """A comma list of histories (``borrow,interest``), in :data:`KINDS` order; a
    :class:`SyncConfigError` (``kinds``) for anything else."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    wrong = [name for name in names if name not in KINDS]
    if wrong or not names:
        raise SyncConfigError("kinds", f"must be a comma list of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in names)
