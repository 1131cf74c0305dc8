"""Credentials from ``--credentials FILE`` or the ``KUCOIN_API_*`` environment.

A file others may read is refused (like ssh). No message ever shows a file's content
or a secret: refusals name the line or the JSON key's position and what is wrong.
Whether a value is valid is the SDK's call (:class:`~margin_async.Credentials`).

What ``margin-async sandbox`` prints, saved as it is, is a valid file: its ``export``
lines name the credentials and ``MARGIN_ASYNC_BASE_URL``, the exchange they belong to.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from margin_async import Credentials, ValidationError
from margin_async.cli._errors import UsageError
from margin_async.cli._state import RunState

__all__ = ["credentials", "load_credentials_file"]

# Accepted spellings in a credentials file, lower-cased (the env names work too, so a
# saved `margin-async sandbox` output is a valid file).
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
#: The environment variable of each field of :class:`~margin_async.Credentials`.
_ENV_NAMES = {
    "api_key": "KUCOIN_API_KEY",
    "api_secret": "KUCOIN_API_SECRET",
    "api_passphrase": "KUCOIN_API_PASSPHRASE",
    "key_version": "KUCOIN_API_KEY_VERSION",
}
_REQUIRED = ("api_key", "api_secret", "api_passphrase")
_KEY_LIST = "api_key, api_secret, api_passphrase, key_version, base_url"
# A value this short is not worth hiding from a message, and would hide ordinary words.
_MIN_HIDDEN = 4

#: One ``field = value`` of a credentials file, and where it is (``"line 3"``).
_Entry = tuple[str, object, str]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _json_entries(text: str, refuse: Callable[[str], NoReturn]) -> list[_Entry]:
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
    entries: list[_Entry] = []
    for index, (name, value) in enumerate(pairs, start=1):
        where = f"JSON key {index}"
        field = _CREDENTIAL_KEYS.get(str(name).strip().lower())
        if field is None:
            refuse(f", {where}: unknown key (expected {_KEY_LIST})")
        entries.append((field, value, where))
    return entries


def _line_entries(text: str, refuse: Callable[[str], NoReturn]) -> list[_Entry]:
    entries: list[_Entry] = []
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


def _credentials_from_text(text: str, path: str) -> tuple[Credentials, str | None]:
    """The credentials in ``text`` (the content of the file ``path``).

    A refusal says where (a line, a JSON key's position) and what is wrong, and never
    shows any of the file's text: a line without a key name, or whose "key" is the text
    before a ``=`` inside a base64 value, may well be a secret pasted alone.
    """

    def refuse(problem: str) -> NoReturn:
        raise UsageError(f"credentials file {path}{problem}")

    parse = _json_entries if text.lstrip().startswith("{") else _line_entries
    fields: dict[str, str] = {}
    seen: dict[str, str] = {}
    for field, value, where in parse(text, refuse):
        if field in seen:
            refuse(f", {where}: {field} is given twice (also at {seen[field]})")
        seen[field] = where
        if isinstance(value, bool) or not isinstance(value, str | int):
            refuse(f", {where}: {field} must be a string")
        fields[field] = str(value).strip() if field in ("key_version", "base_url") else str(value)
    missing = [f for f in _REQUIRED if not fields.get(f)]
    if missing:
        refuse(f" lacks {', '.join(missing)}")
    key, secret, passphrase = fields["api_key"], fields["api_secret"], fields["api_passphrase"]
    try:
        version = int(fields.get("key_version", "3"))
    except ValueError:
        # Not a number at all: said as the SDK's Credentials.from_env says it, without
        # the text (it may be a secret pasted in the wrong place).
        refuse(f", {seen['key_version']}: key_version must be 2 or 3")
    try:
        return Credentials(key, secret, passphrase, version), fields.get("base_url") or None
    except ValidationError as exc:
        reason = str(exc).removeprefix(f"{exc.argument}: ")
        if any(len(v) >= _MIN_HIDDEN and v in reason for v in (key, secret, passphrase)):
            reason = "is not valid"
        place = f", {seen[exc.argument]}" if exc.argument in seen else ""
        refuse(f"{place}: {exc.argument} {reason}")


def load_credentials_file(path: str) -> tuple[Credentials, str | None]:
    """The credentials in ``path`` and the base URL it names (``None`` when it names
    none), refusing a file others may read (like ssh).

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


def _from_environment() -> Credentials:
    try:
        return Credentials.from_env()
    except ValidationError as exc:
        required = [_ENV_NAMES[field] for field in _REQUIRED]
        if exc.argument in required and not os.environ.get(exc.argument):
            raise UsageError(
                f"no credentials: {exc} (set KUCOIN_API_KEY, KUCOIN_API_SECRET and "
                "KUCOIN_API_PASSPHRASE, pass --credentials FILE, or try --sandbox)"
            ) from None
        # Present but refused: said with the variable to fix (the SDK names the field).
        variable = _ENV_NAMES.get(exc.argument, exc.argument)
        reason = str(exc).removeprefix(f"{exc.argument}: ")
        raise UsageError(f"credentials in the environment: {variable} {reason}") from None


def credentials(args: argparse.Namespace, state: RunState) -> tuple[Credentials, str | None]:
    """The credentials of ``--credentials FILE`` (and the base URL the file names),
    else of the environment; their secrets are added to ``state`` before anything can
    print them."""
    base_url = None
    if args.credentials:
        creds, base_url = load_credentials_file(args.credentials)
    else:
        # Hidden before they are checked: whatever the checks say can never show them.
        for name in ("KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"):
            state.add_secret(os.environ.get(name, ""))
        creds = _from_environment()
    state.add_credentials(creds)
    return creds, base_url
