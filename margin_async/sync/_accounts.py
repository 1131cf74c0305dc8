"""Where accounts and their credentials come from: an accounts file (TOML) and
credentials files. Neither the accounts file nor the database ever holds a secret.

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

A credentials file is JSON (``{"api_key": ..., "api_secret": ..., "api_passphrase": ...,
"key_version": 3}``) or ``KEY=VALUE`` lines (the ``KUCOIN_API_*`` names work too, so the
output of ``margin-async sandbox`` is one), readable by its owner only.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs

from margin_async import Credentials, ValidationError
from margin_async.sync._errors import SyncConfigError
from margin_async.sync._mirror import AccountSpec
from margin_async.sync._rows import KINDS, Kind

__all__ = [
    "AccountEntry",
    "load_accounts",
    "load_credentials_file",
    "parse_codes",
    "parse_kinds",
    "parse_symbols",
    "read_credentials_file",
]

_Refuse = Callable[[str], NoReturn]

_CREDENTIAL_KEYS = {
    "base_url": "base_url",
    "margin_async_base_url": "base_url",
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
_ACCOUNT_KEYS = {"label", "credentials", "env", "currencies", "isolated", "cross", "kinds"}
_DEFAULT_KEYS = {"currencies", "isolated", "cross", "kinds"}
_ENV_FIELDS = ("api_key", "api_secret", "api_passphrase", "key_version")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CODE = re.compile(r"[A-Z0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")


@attrs.frozen
class AccountEntry:
    """One account of an accounts file: its label, what to mirror, and where its
    credentials come from (a file path, or environment variable names), never secrets."""

    label: str
    spec: AccountSpec
    credentials_file: Path | None = None
    env: Mapping[str, str] | None = None

    def credentials(self) -> Credentials:
        """Read this account's credentials from their source."""
        return self.source()[0]

    def source(self) -> tuple[Credentials, str | None]:
        """This account's credentials, and the base URL its credentials file names."""
        if self.credentials_file is not None:
            return read_credentials_file(self.credentials_file)
        if self.env is not None:
            return _from_env(self.label, self.env), None
        raise SyncConfigError(
            "accounts", f"account {self.label!r} names no credentials file nor env variables"
        )


def _from_env(label: str, names: Mapping[str, str]) -> Credentials:
    values: dict[str, str] = {}
    for field in _ENV_FIELDS:
        name = names.get(field)
        if name is None:
            continue
        value = os.environ.get(name, "")
        if not value:
            raise SyncConfigError(
                "accounts", f"account {label!r}: environment variable {name} ({field}) is not set"
            )
        values[field] = value
    version = values.get("key_version", "3")
    if version not in ("2", "3"):
        raise SyncConfigError(
            "accounts", f"account {label!r}: {names['key_version']} must be 2 or 3"
        )
    try:
        return Credentials(
            values["api_key"], values["api_secret"], values["api_passphrase"], int(version)
        )
    except ValidationError as exc:
        raise SyncConfigError(
            "accounts", f"account {label!r}: {names.get(exc.argument, exc.argument)} is not valid"
        ) from None


# -- credentials files ----------------------------------------------------------------------


def load_credentials_file(path: str | os.PathLike[str]) -> Credentials:
    """Read a credentials file (see the module docstring), refusing one that group or
    others may read. No message shows any of its content."""
    return read_credentials_file(path)[0]


def read_credentials_file(path: str | os.PathLike[str]) -> tuple[Credentials, str | None]:
    """:func:`load_credentials_file`, and the ``base_url`` the file names (if any), as
    the output of ``margin-async sandbox`` does."""
    where = str(path)

    def refuse(problem: str) -> NoReturn:
        raise SyncConfigError("credentials", f"credentials file {where}{problem}")

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        refuse(f": cannot read it ({exc.strerror})")
    if os.name == "posix" and mode & 0o077:
        refuse(
            f" is accessible by group or others (mode {mode & 0o777:04o}); "
            f"protect it first: chmod 600 {where}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        refuse(f": cannot read it ({exc.strerror if isinstance(exc, OSError) else 'not UTF-8'})")
    entries: list[tuple[str, object, str]] = []
    if text.lstrip().startswith("{"):
        try:
            pairs = json.loads(text, object_pairs_hook=list)
        except json.JSONDecodeError as exc:
            refuse(f" is not valid JSON (line {exc.lineno})")
        except (ValueError, RecursionError):
            refuse(" is not valid JSON")
        if not isinstance(pairs, list):
            refuse(" must hold a JSON object")
        for index, (name, value) in enumerate(pairs, start=1):
            entries.append((str(name), value, f"JSON key {index}"))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            name, sep, value = stripped.removeprefix("export ").partition("=")
            if not sep or not name.strip():
                refuse(f", line {number}: expected KEY=VALUE")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            entries.append((name, value, f"line {number}"))
    fields: dict[str, str] = {}
    for name, value, place in entries:
        field = _CREDENTIAL_KEYS.get(name.strip().lower())
        if field is None:
            refuse(
                f", {place}: unknown key (expected api_key, api_secret, api_passphrase, "
                "key_version, base_url)"
            )
        if field in fields:
            refuse(f", {place}: {field} is given twice")
        if isinstance(value, bool) or not isinstance(value, str | int):
            refuse(f", {place}: {field} must be a string")
        fields[field] = str(value).strip() if field == "key_version" else str(value)
    missing = [f for f in ("api_key", "api_secret", "api_passphrase") if not fields.get(f)]
    if missing:
        refuse(f" lacks {', '.join(missing)}")
    version = fields.get("key_version", "3")
    if version not in ("2", "3"):
        refuse(": key_version must be 2 or 3")
    try:
        creds = Credentials(
            fields["api_key"], fields["api_secret"], fields["api_passphrase"], int(version)
        )
    except ValidationError as exc:
        refuse(f": {exc.argument} is not valid")
    return creds, fields.get("base_url") or None


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
        if key.lower() in _CREDENTIAL_KEYS:
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
    """A comma list of currency codes (``usdt,btc`` -> ``["USDT", "BTC"]``)."""
    codes = [part.strip().upper() for part in text.split(",") if part.strip()]
    for code in codes:
        if not _CODE.fullmatch(code):
            raise SyncConfigError(argument, f"{code!r} is not a currency code such as USDT")
    if not codes:
        raise SyncConfigError(argument, "no currency code given")
    return codes


def parse_symbols(text: str, argument: str) -> list[str]:
    """A comma list of isolated-margin symbols (``btc-usdt`` -> ``["BTC-USDT"]``)."""
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    for symbol in symbols:
        if not _SYMBOL.fullmatch(symbol):
            raise SyncConfigError(argument, f"{symbol!r} is not a symbol such as BTC-USDT")
    return symbols


def parse_kinds(text: str) -> tuple[Kind, ...]:
    """``--kinds borrow,interest``."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    wrong = [name for name in names if name not in KINDS]
    if wrong or not names:
        raise SyncConfigError("kinds", f"must be a comma list of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in names)
