"""Signing: every golden vector of DESIGN.md, through each public signing function."""

from __future__ import annotations

import pytest
from helpers import (
    GOLDEN_IDS,
    GOLDEN_TIMESTAMP,
    GOLDEN_VECTORS,
    KEY,
    PASSPHRASE,
    SECRET,
    SIGNED_PASSPHRASE,
    creds,
)
from kucoin_wire import b64hmac

from margin_async._auth import Credentials, sign, sign_passphrase, signed_headers


def test_signed_passphrase_golden() -> None:
    assert sign_passphrase(SECRET, PASSPHRASE) == SIGNED_PASSPHRASE
    assert sign(SECRET, PASSPHRASE) == SIGNED_PASSPHRASE
    assert sign(SECRET, PASSPHRASE.encode()) == SIGNED_PASSPHRASE


@pytest.mark.parametrize(("method", "path", "body", "expected"), GOLDEN_VECTORS, ids=GOLDEN_IDS)
def test_signed_headers_golden(method: str, path: str, body: bytes, expected: str) -> None:
    headers = signed_headers(creds(), GOLDEN_TIMESTAMP, method, path, body)
    assert headers == {
        "KC-API-KEY": KEY,
        "KC-API-SIGN": expected,
        "KC-API-TIMESTAMP": str(GOLDEN_TIMESTAMP),
        "KC-API-PASSPHRASE": SIGNED_PASSPHRASE,
        "KC-API-KEY-VERSION": "3",
    }


@pytest.mark.parametrize(("method", "path", "body", "expected"), GOLDEN_VECTORS, ids=GOLDEN_IDS)
def test_credentials_signature_golden(method: str, path: str, body: bytes, expected: str) -> None:
    prehash = (str(GOLDEN_TIMESTAMP) + method + path).encode() + body
    assert creds().signature(prehash) == expected
    assert sign(SECRET, prehash) == expected
    # The vectors agree with a plain hmac computed here.
    assert b64hmac(SECRET, prehash) == expected


def test_signature_is_reusable_prepared_hmac() -> None:
    """The prepared HMAC is copied per request: signing twice gives the same answer and
    signing one message does not disturb the next."""
    c = creds()
    _, path_a, body_a, sig_a = GOLDEN_VECTORS[0]
    _, path_b, body_b, sig_b = GOLDEN_VECTORS[2]
    pre_a = (str(GOLDEN_TIMESTAMP) + "GET" + path_a).encode() + body_a
    pre_b = (str(GOLDEN_TIMESTAMP) + "POST" + path_b).encode() + body_b
    assert [c.signature(pre_a), c.signature(pre_b), c.signature(pre_a)] == [sig_a, sig_b, sig_a]


def test_key_version_2_header() -> None:
    headers = signed_headers(creds(key_version=2), GOLDEN_TIMESTAMP, *GOLDEN_VECTORS[0][:3])
    assert headers["KC-API-KEY-VERSION"] == "2"
    # Versions 2 and 3 sign the passphrase and the request the same way.
    assert headers["KC-API-PASSPHRASE"] == SIGNED_PASSPHRASE
    assert headers["KC-API-SIGN"] == GOLDEN_VECTORS[0][3]


def test_signature_depends_on_every_part() -> None:
    base = signed_headers(creds(), GOLDEN_TIMESTAMP, *GOLDEN_VECTORS[2][:3])["KC-API-SIGN"]
    method, path, body, _ = GOLDEN_VECTORS[2]
    variants = [
        signed_headers(creds(), GOLDEN_TIMESTAMP + 1, method, path, body),
        signed_headers(creds(), GOLDEN_TIMESTAMP, "GET", path, body),
        signed_headers(creds(), GOLDEN_TIMESTAMP, method, path + "?x=1", body),
        signed_headers(creds(), GOLDEN_TIMESTAMP, method, path, body + b" "),
        signed_headers(
            Credentials(KEY, SECRET + "x", PASSPHRASE), GOLDEN_TIMESTAMP, method, path, body
        ),
    ]
    assert all(v["KC-API-SIGN"] != base for v in variants)


def test_credentials_equality_ignores_derived_fields() -> None:
    assert creds() == creds()
    assert creds() != creds(key_version=2)
