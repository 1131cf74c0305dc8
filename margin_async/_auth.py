"""API credentials and KuCoin's request signing (pure functions, no I/O)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import attrs

from margin_async._errors import ValidationError

__all__ = ["Credentials", "sign", "sign_passphrase", "signed_headers"]

_ENV_KEY = "KUCOIN_API_KEY"
_ENV_SECRET = "KUCOIN_API_SECRET"
_ENV_PASSPHRASE = "KUCOIN_API_PASSPHRASE"
_ENV_VERSION = "KUCOIN_API_KEY_VERSION"


def sign(secret: str, message: str | bytes) -> str:
    """Return ``base64(HMAC_SHA256(secret, message))`` as text."""
    data = message.encode() if isinstance(message, str) else message
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def sign_passphrase(secret: str, passphrase: str) -> str:
    """Return the ``KC-API-PASSPHRASE`` header value for key versions 2 and 3."""
    return sign(secret, passphrase)


def _check_key_version(_: object, __: attrs.Attribute[int], value: int) -> None:
    # An int exactly: 3.0 or Decimal(3) would be sent as "KC-API-KEY-VERSION: 3.0".
    if type(value) is not int or value not in (2, 3):
        raise ValidationError("key_version", f"must be 2 or 3, got {value!r}")


def _check_text(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(attribute.name, "must be a non-empty string")


def _check_key(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _check_text(instance, attribute, value)
    # The key is sent verbatim as a header: a stray newline or space (an env file's
    # trailing newline) would make aiohttp refuse the request with a bare ValueError.
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValidationError(
            attribute.name, "must be printable ASCII without spaces or line breaks"
        )


@attrs.frozen(repr=False)
class Credentials:
    """An API key of one KuCoin account (key version 2 or 3).

    The secret and the passphrase never appear in ``repr``, ``str``, logs or errors.
    """

    api_key: str = attrs.field(validator=_check_key)
    api_secret: str = attrs.field(validator=_check_text)
    api_passphrase: str = attrs.field(validator=_check_text)
    key_version: int = attrs.field(default=3, validator=_check_key_version)
    # Derived once: the signed passphrase is constant per key, and the HMAC key schedule
    # is the costly half of signing, so requests copy a prepared HMAC instead.
    _signed_passphrase: str = attrs.field(init=False, eq=False)
    _hmac: hmac.HMAC = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self, "_signed_passphrase", sign_passphrase(self.api_secret, self.api_passphrase)
        )
        object.__setattr__(self, "_hmac", hmac.new(self.api_secret.encode(), None, hashlib.sha256))

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key!r}, key_version={self.key_version})"

    __str__ = __repr__

    @classmethod
    def from_env(cls) -> Credentials:
        """Read ``KUCOIN_API_KEY``, ``KUCOIN_API_SECRET``, ``KUCOIN_API_PASSPHRASE`` and,
        optionally, ``KUCOIN_API_KEY_VERSION`` (default 3)."""
        values = {}
        for name in (_ENV_KEY, _ENV_SECRET, _ENV_PASSPHRASE):
            value = os.environ.get(name, "")
            if not value:
                raise ValidationError(name, "environment variable is not set")
            values[name] = value
        raw_version = os.environ.get(_ENV_VERSION, "3")
        try:
            version = int(raw_version)
        except ValueError:
            raise ValidationError(_ENV_VERSION, "must be 2 or 3") from None
        return cls(values[_ENV_KEY], values[_ENV_SECRET], values[_ENV_PASSPHRASE], version)

    def signature(self, prehash: bytes) -> str:
        """Return ``base64(HMAC_SHA256(secret, prehash))``."""
        mac = self._hmac.copy()
        mac.update(prehash)
        return base64.b64encode(mac.digest()).decode()


def signed_headers(
    credentials: Credentials, timestamp_ms: int, method: str, path_with_query: str, body: bytes
) -> dict[str, str]:
    """Return the five ``KC-API-*`` headers for one request.

    ``path_with_query`` is the path plus ``?`` and the *unencoded* query (``currency=BTC,ETH``);
    ``body`` is the exact bytes sent (empty for GET).
    """
    timestamp = str(timestamp_ms)
    prehash = (timestamp + method + path_with_query).encode() + body
    return {
        "KC-API-KEY": credentials.api_key,
        "KC-API-SIGN": credentials.signature(prehash),
        "KC-API-TIMESTAMP": timestamp,
        "KC-API-PASSPHRASE": credentials._signed_passphrase,
        "KC-API-KEY-VERSION": str(credentials.key_version),
    }
