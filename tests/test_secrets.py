"""The API secret, the passphrase and the signed passphrase never show: not in repr/str of
any object a caller holds, nor in exception messages, nor in DEBUG logs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from helpers import (
    BASE,
    BORROW_PATH,
    INTEREST_PATH,
    KEY,
    LEVERAGE_PATH,
    PASSPHRASE,
    REPAY_PATH,
    SECRET,
    SIGNED_PASSPHRASE,
    TIME_PATH,
    borrow_item,
    capture_logs,
    creds,
    interest_item,
    ok,
    page,
    repay_item,
    url_re,
)

from margin_async import (
    Credentials,
    MarginClient,
    MarginError,
    ResponseEvent,
    RetryPolicy,
    ValidationError,
)
from margin_async import _reconcile as _reconcile
from margin_async._endpoints.borrow import borrow_request
from margin_async._endpoints.leverage import leverage_request

SECRETS = (SECRET, PASSPHRASE, SIGNED_PASSPHRASE)


@pytest.fixture(autouse=True)
def fast_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "margin_async._reconcile.find_order",
        functools.partial(_reconcile.find_order, interval=0),
        raising=False,
    )


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret leaked in: {text[:300]}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__])


def _describe(error: BaseException) -> str:
    parts = []
    for exc in _chain(error):
        parts.extend([repr(exc), str(exc), repr(exc.args), repr(vars(exc))])
        request = getattr(exc, "request", None)
        if request is not None:
            parts.extend([repr(request), str(request)])
    return "\n".join(parts)


def _log_text(records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            lines.append(_describe(record.exc_info[1]))
    return "\n".join(lines)


def test_credentials_repr() -> None:
    for c in (creds(), creds(key_version=2)):
        for text in (repr(c), str(c), f"{c}", f"{c!r}", f"{c}"):
            assert_clean(text)
            assert KEY in text  # the key itself is not a secret, and helps debugging


def test_validation_errors_of_credentials_are_clean() -> None:
    for kwargs in (
        {"key_version": 7},
        {"api_key": ""},
        {"api_key": SECRET + "\n"},
    ):
        fields: dict[str, Any] = {
            "api_key": KEY,
            "api_secret": SECRET,
            "api_passphrase": PASSPHRASE,
        }
        fields.update(kwargs)
        with pytest.raises(ValidationError) as info:
            Credentials(**fields)
        assert_clean(_describe(info.value))


def test_requests_are_clean() -> None:
    for request in (
        borrow_request("USDT", "1", "IOC").request,
        leverage_request("3.5"),
    ):
        assert_clean(repr(request))
        assert_clean(str(request))


async def test_full_run_leaks_nothing(mock: aioresponses) -> None:
    with capture_logs() as records:
        await _full_run(mock, records)


async def _full_run(mock: aioresponses, records: list[logging.LogRecord]) -> None:
    events: list[ResponseEvent] = []
    errors: list[BaseException] = []

    # Successes of every operation.
    mock.post(BASE + BORROW_PATH, payload=ok({"orderNo": "1", "actualSize": "10"}))
    mock.post(
        BASE + REPAY_PATH,
        payload=ok({"orderNo": "2", "actualSize": "10", "timestamp": 1729657580449}),
    )
    mock.post(BASE + LEVERAGE_PATH, payload=ok(None))
    mock.get(url_re(BORROW_PATH), payload=ok(page([borrow_item()])))
    mock.get(url_re(REPAY_PATH), payload=ok(page([repay_item()])))
    mock.get(url_re(INTEREST_PATH), payload=ok(page([interest_item()])))
    mock.get(url_re(INTEREST_PATH), payload=ok(page([interest_item()])))
    # A clock resync.
    mock.get(url_re(BORROW_PATH), status=401, payload={"code": "400002", "msg": "timestamp"})
    mock.get(BASE + TIME_PATH, payload=ok(1729657580449))
    mock.get(url_re(BORROW_PATH), payload=ok(page([])))
    once = RetryPolicy(attempts=1)
    async with MarginClient(creds(), retry=once, on_response=events.append, label="acct") as c:
        assert_clean(repr(c))
        assert_clean(str(c))
        await c.borrow("USDT", Decimal("10"))
        await c.repay("USDT", "10")
        await c.modify_leverage("3.5")
        await c.get_borrow_history("USDT")
        await c.get_repay_history("USDT")
        await c.get_interest_history()
        await c.interest_history().collect()
        await c.get_borrow_history("USDT")

        # Failures of every kind.
        failures: list[tuple[str, dict[str, Any]]] = [
            ("get", {"status": 401, "payload": {"code": "400005", "msg": "Invalid KC-API-SIGN"}}),
            ("get", {"status": 401, "payload": {"code": "400004", "msg": "Invalid passphrase"}}),
            ("get", {"status": 400, "payload": {"code": "400100", "msg": "bad"}}),
            ("get", {"status": 429, "payload": {"code": "429000", "msg": "Too Many Requests"}}),
            ("get", {"status": 502, "body": b"<html>502</html>"}),
            ("get", {"exception": aiohttp.ServerDisconnectedError()}),
            ("get", {"body": b"not json"}),
            ("post", {"exception": aiohttp.ServerDisconnectedError()}),
        ]
        for kind, reply in failures:
            if kind == "get":
                mock.get(url_re(BORROW_PATH), **reply)
                call: Any = c.get_borrow_history("USDT")
            else:
                mock.post(BASE + BORROW_PATH, **reply)
                mock.get(url_re(BORROW_PATH), payload=ok(page([])), repeat=3)
                call = c.borrow("USDT", "10")
            try:
                await call
            except MarginError as error:
                errors.append(error)
        # A timestamp refused even after a resync.
        mock.get(url_re(BORROW_PATH), status=401, payload={"code": "400002", "msg": "ts"})
        mock.get(BASE + TIME_PATH, payload=ok(1729657580449))
        mock.get(url_re(BORROW_PATH), status=401, payload={"code": "400002", "msg": "ts"})
        try:
            await c.get_borrow_history("USDT")
        except MarginError as error:
            errors.append(error)
        # Validation errors.
        for bad in (lambda: c.borrow("USDT", 1.5), lambda: c.get_borrow_history("")):
            try:
                await bad()
            except ValidationError as error:
                errors.append(error)
        await c.close()
        try:
            await c.get_interest_history()
        except MarginError as error:
            errors.append(error)

    kinds = {type(e).__name__ for e in errors}
    assert kinds >= {
        "AuthenticationError",
        "ApiError",
        "RateLimitError",
        "TransportError",
        "ProtocolError",
        "OutcomeUnknownError",
        "TimestampError",
        "ValidationError",
        "ClientClosedError",
    }
    for error in errors:
        assert_clean(_describe(error))
    assert events
    for event in events:
        assert_clean(repr(event))
        assert_clean(str(event))
    assert any(r.levelno == logging.DEBUG for r in records)  # DEBUG logging did run
    assert_clean(_log_text(records))


async def test_auth_failure_run_leaks_nothing(mock: aioresponses) -> None:
    """The exchange's own error message could echo a header; ours must not add any."""
    mock.post(
        BASE + BORROW_PATH,
        status=401,
        payload={"code": "400004", "msg": "Invalid KC-API-PASSPHRASE"},
    )
    events: list[ResponseEvent] = []
    with capture_logs() as records:
        async with MarginClient(creds(), on_response=events.append) as c:
            with pytest.raises(MarginError) as info:
                await c.borrow("USDT", "10")
    assert records
    assert_clean(_describe(info.value))
    assert_clean(_log_text(records))
    for event in events:
        assert_clean(repr(event))
