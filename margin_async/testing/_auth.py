"""The fake exchange's own request verification, written apart from ``margin_async._auth``.

It re-implements KuCoin's checks from the wire contract so that a mistake in the SDK's
signer is refused here instead of being shared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

import attrs

__all__ = [
    "AUTH_HEADERS",
    "TIMESTAMP_TOLERANCE_MS",
    "AuthFailure",
    "KeyRecord",
    "hmac_b64",
    "prehash",
    "verify",
]

#: Headers every signed request must carry (an empty value counts as missing).
#: The headers whose absence is 400001. KC-API-KEY-VERSION is not among them: without it
#: the exchange applies version 1 rules (a plain passphrase), which fail for the version
#: 2 and 3 keys it issues now, with 400004.
AUTH_HEADERS = (
    "KC-API-KEY",
    "KC-API-SIGN",
    "KC-API-TIMESTAMP",
    "KC-API-PASSPHRASE",
)
_SIGNED_VERSIONS = frozenset({"2", "3"})
#: How far (milliseconds) a request timestamp may be from the server clock.
TIMESTAMP_TOLERANCE_MS = 5000
# ASCII digits only, and few enough for int(): str.isdigit() passes "²" and fullwidth
# digits, and int() refuses more than 4300 digits.
_TIMESTAMP_TEXT = re.compile(r"[0-9]{1,20}")


def hmac_b64(secret: str, message: bytes) -> str:
    """``base64(HMAC_SHA256(secret, message))`` as ASCII text."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def prehash(timestamp: str, method: str, path: str, query: str, body: bytes) -> bytes:
    """The string KuCoin signs: ``timestamp + METHOD + path ['?' + decoded query] + body``."""
    target = f"{path}?{query}" if query else path
    return (timestamp + method.upper() + target).encode("utf-8") + body


@attrs.frozen
class KeyRecord:
    """What the fake knows about one API key."""

    api_key: str
    secret: str
    passphrase: str
    key_version: int


@attrs.frozen
class AuthFailure:
    """A refused request: the KuCoin code (``"400005"``), its message and HTTP status."""

    code: str
    message: str
    http_status: int = 401


_MISSING = AuthFailure(
    "400001",
    "Please check the header of your request for KC-API-KEY, KC-API-SIGN, "
    "KC-API-TIMESTAMP, KC-API-PASSPHRASE, KC-API-KEY-VERSION",
)
_BAD_TIMESTAMP = AuthFailure(
    "400002", "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds"
)
_UNKNOWN_KEY = AuthFailure("400003", "KC-API-KEY not exists")
_BAD_PASSPHRASE = AuthFailure("400004", "Invalid KC-API-PASSPHRASE")
_BAD_SIGNATURE = AuthFailure("400005", "Signature error -- Please check your signature")


def _same(given: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str and headers may carry anything.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def verify(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    now_ms: int,
    keys: Mapping[str, KeyRecord],
    trailing_question_mark: bool = False,
) -> KeyRecord | AuthFailure:
    """Check one request the way KuCoin does, in its order (400001 .. 400005).

    ``query`` is the *decoded* query string as received (``currency=BTC,ETH``) and
    ``body`` the raw bytes. ``trailing_question_mark`` says the URL ended in a bare ``?``;
    then a signature over ``path?`` is accepted as well as one over ``path`` (peers
    differ there), but nothing looser. Returns the key's record or the failure.
    """
    values = {name: headers.get(name, "") for name in AUTH_HEADERS}
    if not all(values.values()):
        return _MISSING
    version = headers.get("KC-API-KEY-VERSION", "")
    timestamp = values["KC-API-TIMESTAMP"]
    if (
        not _TIMESTAMP_TEXT.fullmatch(timestamp)
        or abs(int(timestamp) - now_ms) > TIMESTAMP_TOLERANCE_MS
    ):
        return _BAD_TIMESTAMP
    record = keys.get(values["KC-API-KEY"])
    if record is None:
        return _UNKNOWN_KEY
    # Versions 2 and 3 sign the same way, and ccxt sends "2" for any key; no version, or
    # another one, means a plain passphrase header (version 1), hence 400004.
    if version not in _SIGNED_VERSIONS or not _same(
        values["KC-API-PASSPHRASE"], hmac_b64(record.secret, record.passphrase.encode("utf-8"))
    ):
        return _BAD_PASSPHRASE
    signature = values["KC-API-SIGN"]
    expected = hmac_b64(record.secret, prehash(timestamp, method, path, query, body))
    if _same(signature, expected):
        return record
    if trailing_question_mark and not query:
        alternative = hmac_b64(record.secret, (timestamp + method.upper() + path + "?").encode())
        if _same(signature, alternative):
            return record
    return _BAD_SIGNATURE
