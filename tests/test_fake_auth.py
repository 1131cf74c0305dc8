"""FakeKuCoin's authentication over loopback, signed by tests/kucoin_wire.py (not the SDK)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
import yarl
from helpers import GOLDEN_TIMESTAMP, GOLDEN_VECTORS, PASSPHRASE, SECRET, SIGNED_PASSPHRASE
from kucoin_wire import b64hmac, call, kc_headers, send

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin
from margin_async.testing._auth import hmac_b64, prehash

HISTORY = "/api/v3/margin/borrow?currency=USDT"


# -- golden vectors ---------------------------------------------------------------------


def test_golden_vectors_with_test_signer_and_fake_signer() -> None:
    assert b64hmac(SECRET, PASSPHRASE.encode()) == SIGNED_PASSPHRASE
    assert hmac_b64(SECRET, PASSPHRASE.encode()) == SIGNED_PASSPHRASE
    for method, target, body, expected in GOLDEN_VECTORS:
        message = (str(GOLDEN_TIMESTAMP) + method + target).encode() + body
        assert b64hmac(SECRET, message) == expected
        path, _, query = target.partition("?")
        assert hmac_b64(SECRET, prehash(str(GOLDEN_TIMESTAMP), method, path, query, body)) == (
            expected
        )


@pytest.mark.parametrize(("method", "target", "body", "signature"), GOLDEN_VECTORS)
async def test_golden_requests_accepted_over_the_wire(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    method: str,
    target: str,
    body: bytes,
    signature: str,
) -> None:
    creds = fake.add_account(
        credentials=Credentials("golden-key", SECRET, PASSPHRASE, key_version=3)
    )
    fake.set_clock_skew(GOLDEN_TIMESTAMP - time.time_ns() // 1_000_000)
    headers = {
        "KC-API-KEY": creds.api_key,
        "KC-API-SIGN": signature,
        "KC-API-TIMESTAMP": str(GOLDEN_TIMESTAMP),
        "KC-API-PASSPHRASE": SIGNED_PASSPHRASE,
        "KC-API-KEY-VERSION": "3",
    }
    status, _, payload = await send(http, fake, method, target, body, headers)
    assert status == 200, payload
    assert payload["code"] == "200000"


async def test_percent_encoded_comma_on_the_wire_is_verified_decoded(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    # What python-kucoin does: sign "currency=BTC,ETH" but send "currency=BTC%2CETH".
    signed = "/api/v3/margin/interest?currency=BTC,ETH"
    wire = "/api/v3/margin/interest?currency=BTC%2CETH"
    headers = kc_headers(creds, "GET", signed)
    status, _, payload = await send(http, fake, "GET", wire, headers=headers)
    assert (status, payload["code"]) == (200, "200000")


# -- each auth failure ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE"]
)
@pytest.mark.parametrize("how", ["missing", "empty"])
async def test_missing_header_is_400001(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, header: str, how: str
) -> None:
    headers = kc_headers(creds, "GET", HISTORY)
    if how == "missing":
        del headers[header]
    else:
        headers[header] = ""
    status, response_headers, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400001")
    assert "gw-ratelimit-remaining" not in response_headers


@pytest.mark.parametrize("how", ["missing", "empty"])
async def test_no_key_version_means_version_1_rules_and_400004(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, how: str
) -> None:
    # As python-kucoin 2.2 signs: a plain passphrase and no KC-API-KEY-VERSION. KuCoin
    # applies version 1 rules then, which no version 2 or 3 key passes.
    headers = kc_headers(creds, "GET", HISTORY)
    headers["KC-API-PASSPHRASE"] = creds.api_passphrase
    if how == "missing":
        del headers["KC-API-KEY-VERSION"]
    else:
        headers["KC-API-KEY-VERSION"] = ""
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400004")


@pytest.mark.parametrize("offset_ms", [-6000, 6000, -60_000])
async def test_stale_or_future_timestamp_is_400002(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, offset_ms: int
) -> None:
    ts = int(time.time() * 1000) + offset_ms
    headers = kc_headers(creds, "GET", HISTORY, timestamp=ts)
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400002")


async def test_timestamp_within_tolerance_is_accepted(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY, timestamp=int(time.time() * 1000) - 3000)
    status, _, _ = await send(http, fake, "GET", HISTORY, headers=headers)
    assert status == 200


async def test_non_numeric_timestamp_is_400002(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY)
    headers["KC-API-TIMESTAMP"] = "soon"
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400002")


async def test_unknown_key_is_400003(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    stranger = Credentials("not-a-key", creds.api_secret, creds.api_passphrase)
    status, _, payload = await call(http, fake, stranger, "GET", HISTORY)
    assert (status, payload["code"]) == (401, "400003")


async def test_wrong_passphrase_is_400004(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    wrong = Credentials(creds.api_key, creds.api_secret, "not-the-passphrase")
    status, _, payload = await call(http, fake, wrong, "GET", HISTORY)
    assert (status, payload["code"]) == (401, "400004")


async def test_unsigned_passphrase_is_400004(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY)
    headers["KC-API-PASSPHRASE"] = creds.api_passphrase  # key version 1 style
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400004")


@pytest.mark.parametrize("version", ["1", "4", "v2"])
async def test_unknown_key_version_is_400004(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials, version: str
) -> None:
    headers = kc_headers(creds, "GET", HISTORY)
    headers["KC-API-KEY-VERSION"] = version
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400004")


@pytest.mark.parametrize(("key_version", "header"), [(3, "2"), (2, "3"), (2, "2")])
async def test_versions_2_and_3_sign_alike(
    fake: FakeKuCoin, http: aiohttp.ClientSession, key_version: int, header: str
) -> None:
    # ccxt and python-kucoin send "2" whatever the key's version.
    creds = fake.add_account(key_version=key_version)
    headers = kc_headers(creds, "GET", HISTORY)
    headers["KC-API-KEY-VERSION"] = header
    status, _, _ = await send(http, fake, "GET", HISTORY, headers=headers)
    assert status == 200


async def test_wrong_secret_is_400005(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY, secret="another-secret")
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400005")


async def test_signature_over_encoded_query_is_400005(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    wire = "/api/v3/margin/interest?currency=BTC%2CETH"
    status, _, payload = await send(http, fake, "GET", wire, headers=kc_headers(creds, "GET", wire))
    assert (status, payload["code"]) == (401, "400005")


async def test_body_changed_after_signing_is_400005(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    signed = b'{"currency":"USDT","size":10,"timeInForce":"IOC"}'
    sent = b'{"currency": "USDT", "size": 10, "timeInForce": "IOC"}'
    headers = kc_headers(creds, "POST", "/api/v3/margin/borrow", signed)
    status, _, payload = await send(http, fake, "POST", "/api/v3/margin/borrow", sent, headers)
    assert (status, payload["code"]) == (401, "400005")
    assert fake.ledger(creds.api_key) == []


@pytest.mark.parametrize(
    ("signed_method", "signed_target"),
    [
        ("get", HISTORY),  # the method is signed upper-case
        ("POST", HISTORY),
        ("GET", "/api/v3/margin/repay?currency=USDT"),
        ("GET", HISTORY + "&pageSize=50"),
        ("GET", "/api/v3/margin/borrow"),
    ],
)
async def test_signature_over_anything_else_is_400005(
    fake: FakeKuCoin,
    http: aiohttp.ClientSession,
    creds: Credentials,
    signed_method: str,
    signed_target: str,
) -> None:
    headers = kc_headers(creds, signed_method, signed_target)
    status, _, payload = await send(http, fake, "GET", HISTORY, headers=headers)
    assert (status, payload["code"]) == (401, "400005")


async def test_auth_failure_charges_no_weight(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY, secret="wrong")
    for _ in range(3):
        await send(http, fake, "GET", HISTORY, headers=headers)
    _, response_headers, _ = await call(http, fake, creds, "GET", HISTORY)
    assert response_headers["gw-ratelimit-remaining"] == str(4000 - 15)


# -- tolerance --------------------------------------------------------------------------


async def test_extra_headers_are_tolerated(
    fake: FakeKuCoin, http: aiohttp.ClientSession, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", HISTORY)
    headers.update({"User-Agent": "python-kucoin/2.1", "Accept": "*/*", "X-Trace": "1"})
    headers.update({"KC-API-PARTNER": "ccxt", "KC-API-PARTNER-SIGN": "x"})
    status, _, _ = await send(http, fake, "GET", HISTORY, headers=headers)
    assert status == 200


async def raw_get(fake: FakeKuCoin, target: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    """GET over a bare socket: aiohttp's client would drop a trailing '?'."""
    url = yarl.URL(fake.url)
    assert url.host is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    lines = [f"GET {target} HTTP/1.1", f"Host: {url.host}:{url.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("signed_target", ["/api/v3/margin/interest", "/api/v3/margin/interest?"])
async def test_bare_question_mark_accepted_signed_either_way(
    fake: FakeKuCoin, creds: Credentials, signed_target: str
) -> None:
    headers = kc_headers(creds, "GET", signed_target)
    status, payload = await raw_get(fake, "/api/v3/margin/interest?", headers)
    assert (status, payload["code"]) == (200, "200000")


async def test_question_mark_signed_but_not_sent_is_refused(
    fake: FakeKuCoin, creds: Credentials
) -> None:
    headers = kc_headers(creds, "GET", "/api/v3/margin/interest?")
    status, payload = await raw_get(fake, "/api/v3/margin/interest", headers)
    assert (status, payload["code"]) == (401, "400005")


# -- public and unknown routes ----------------------------------------------------------


async def test_server_time_is_public_and_has_no_rate_limit_headers(
    fake: FakeKuCoin, http: aiohttp.ClientSession
) -> None:
    before = fake.now_ms()
    status, headers, payload = await send(http, fake, "GET", "/api/v1/timestamp")
    assert status == 200
    assert payload["code"] == "200000"
    assert before <= payload["data"] <= fake.now_ms()
    assert not any(name.lower().startswith("gw-ratelimit") for name in headers)


async def test_unknown_route_is_404(fake: FakeKuCoin, http: aiohttp.ClientSession) -> None:
    status, _, payload = await send(http, fake, "GET", "/api/v3/margin/nothing")
    assert (status, payload["code"]) == (404, "404000")
    status, _, _ = await send(http, fake, "DELETE", "/api/v3/margin/borrow")
    assert status == 404


def test_add_account_returns_fresh_credentials(fake: FakeKuCoin) -> None:
    first, second = fake.add_account(), fake.add_account(key_version=2)
    assert first.api_key != second.api_key
    assert first.api_secret != second.api_secret
    assert second.key_version == 2
    with pytest.raises(ValueError, match="already registered"):
        fake.add_account(credentials=first)
