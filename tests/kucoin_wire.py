"""A minimal KuCoin signer and sender, independent of margin_async._auth.

FakeKuCoin's checks are driven over loopback with this code, which shares nothing with the
SDK's signer: a mistake in margin_async._auth cannot hide the same mistake in the fake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import yarl

if TYPE_CHECKING:
    from margin_async._auth import Credentials
    from margin_async.testing import FakeKuCoin


def b64hmac(secret: str, message: bytes) -> str:
    """base64(HMAC_SHA256(secret, message))."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def kc_headers(
    creds: Credentials,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    """The KC-API-* headers signing ``timestamp + method + target + body`` (``target`` as
    given, query included); ``secret`` signs the request instead of the account's own."""
    ts = str(time.time_ns() // 1_000_000 if timestamp is None else timestamp)
    key = creds.api_secret if secret is None else secret
    return {
        "KC-API-KEY": creds.api_key,
        "KC-API-SIGN": b64hmac(key, (ts + method + target).encode() + body),
        "KC-API-TIMESTAMP": ts,
        "KC-API-PASSPHRASE": b64hmac(creds.api_secret, creds.api_passphrase.encode()),
        "KC-API-KEY-VERSION": str(creds.key_version),
    }


async def send(
    http: aiohttp.ClientSession,
    fake: FakeKuCoin,
    method: str,
    target: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Mapping[str, str], Any]:
    """Send exactly ``target`` (no re-encoding) and ``body``; decode JSON replies (numbers
    with a fraction as Decimal), other replies as text."""
    url = yarl.URL(fake.url + target, encoded=True)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    async with http.request(method, url, data=body or None, headers=all_headers) as resp:
        raw = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, resp.headers, json.loads(raw, parse_float=Decimal)
        return resp.status, resp.headers, raw.decode()


async def call(
    http: aiohttp.ClientSession,
    fake: FakeKuCoin,
    creds: Credentials,
    method: str,
    target: str,
    body: bytes | dict[str, Any] = b"",
) -> tuple[int, Mapping[str, str], Any]:
    """Sign and send ``target`` exactly as given; a dict body is sent as compact JSON."""
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":")).encode()
    return await send(http, fake, method, target, body, kc_headers(creds, method, target, body))
