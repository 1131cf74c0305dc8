"""Logs and the on_response hook: what an operator sees of each attempt, and what not."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from margin_async import Credentials, MarginClient, ResponseEvent, RetryPolicy
from margin_async.testing import FakeKuCoin


async def test_debug_log_has_one_line_per_attempt_without_query_values(
    fake: FakeKuCoin, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject("5xx", route="GET /api/v3/margin/borrow")
    retry = RetryPolicy(base_delay=0.01)
    with caplog.at_level(logging.DEBUG, logger="margin_async"):
        async with MarginClient(creds, base_url=fake.url, retry=retry) as client:
            await client.get_borrow_history("USDT", order_no="SECRET-ORDER-42")
    lines = [r.getMessage() for r in caplog.records if "attempt=" in r.getMessage()]
    assert len(lines) == 2
    first, second = lines
    assert first.startswith("GET /api/v3/margin/borrow attempt=1 status=502")
    assert "error=" in first
    assert second.startswith("GET /api/v3/margin/borrow attempt=2 status=200 code=200000")
    assert "latency_ms=" in second
    assert "ratelimit_remaining=3985" in second  # 4000 - 15, the refused try was not charged
    retries = [r for r in caplog.records if r.levelno == logging.INFO and "resend" in r.message]
    assert len(retries) == 1
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "SECRET-ORDER-42" not in everything
    assert "USDT" not in everything  # no query values at all
    for secret in (creds.api_secret, creds.api_passphrase):
        assert secret not in everything


async def test_on_response_reports_every_attempt(fake: FakeKuCoin, creds: Credentials) -> None:
    events: list[ResponseEvent] = []
    fake.inject("rate_limit", route="POST /api/v3/margin/borrow")
    async with MarginClient(
        creds, base_url=fake.url, on_response=events.append, label="alice"
    ) as client:
        await client.borrow("USDT", Decimal("1"), time_in_force="IOC")
    assert [(e.method, e.path, e.attempt, e.status, e.code) for e in events] == [
        ("POST", "/api/v3/margin/borrow", 1, 429, "429000"),
        ("POST", "/api/v3/margin/borrow", 2, 200, "200000"),
    ]
    assert all(e.label == "alice" and e.latency >= 0 for e in events)
    assert events[0].error is not None and events[1].error is None
    assert events[1].ratelimit_remaining is not None


async def test_a_failing_hook_never_breaks_a_call(
    fake: FakeKuCoin, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ResponseEvent) -> None:
        raise RuntimeError("metrics backend down")

    async with MarginClient(creds, base_url=fake.url, on_response=broken) as client:
        page = await client.get_interest_history()
    assert page.items == ()
    assert any("on_response hook raised" in r.getMessage() for r in caplog.records)


async def test_on_wait_reports_rate_limit_and_backoff_waits() -> None:
    from margin_async import RetryPolicy, WaitEvent
    from margin_async.testing import FakeKuCoin

    waits: list[WaitEvent] = []
    async with FakeKuCoin(rate_limit_quota=30, rate_limit_window_ms=300) as fake:
        creds = fake.add_account()
        fake.inject("5xx", route="GET /api/v3/margin/borrow")
        retry = RetryPolicy(attempts=3, base_delay=0.05, jitter=False)
        async with MarginClient(
            creds, base_url=fake.url, retry=retry, on_wait=waits.append, label="alice"
        ) as client:
            for _ in range(4):
                await client.get_borrow_history("USDT")
    reasons = {w.reason for w in waits}
    assert reasons == {"retry backoff", "rate limit"}
    assert all(w.label == "alice" and 0 < w.seconds <= 30 for w in waits)
