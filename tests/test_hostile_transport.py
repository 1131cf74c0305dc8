"""Replies that cost too much or say absurd things: bounded time and memory, always a
MarginError; and no secret in any excerpt of a reply. Each failed on the old code."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses
from helpers import (
    BASE,
    FAST,
    INTEREST_PATH,
    PASSPHRASE,
    SECRET,
    SIGNED_PASSPHRASE,
    client,
    interest_item,
    ok,
    page,
)

from margin_async import (
    Credentials,
    MarginClient,
    MarginError,
    ProtocolError,
    RateLimitError,
    ResponseEvent,
    RetryPolicy,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve one handler for every path on loopback; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def account() -> Credentials:
    return Credentials("5c2db93503aa674c74a31742", SECRET, PASSPHRASE)


# -- size ------------------------------------------------------------------------------


async def test_a_gzip_bomb_is_refused_within_the_decoded_cap(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    # 64 MiB of JSON whitespace compresses to about 64 KB: Content-Length is small.
    inflated = b'{"code":"200000","data":' + b" " * (64 * 2**20) + b"null}"
    bomb = gzip.compress(inflated, compresslevel=9)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            body=bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    url = await serve(handler)
    async with MarginClient(account(), base_url=url, retry=FAST) as c:
        tracemalloc.start()
        try:
            with pytest.raises(ProtocolError, match="too large"):
                await c.get_interest_history()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(bomb) < 2**20
    assert peak < 40 * 2**20  # the cap is 16 MiB decoded; the old code held all 64 MiB


# -- rate-limit headers ----------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the session's backoffs and the budget's waits, and pass them on a virtual
    clock (the session's and the budget's ``time.monotonic``) instead of sleeping."""
    delays: list[float] = []
    real_sleep = asyncio.sleep
    skipped = 0.0

    async def sleep(seconds: float) -> None:
        nonlocal skipped
        delays.append(seconds)
        skipped += max(seconds, 0.0)
        await real_sleep(0)

    clock = SimpleNamespace(
        monotonic=lambda: time.monotonic() + skipped,
        perf_counter=time.perf_counter,
        time_ns=time.time_ns,
    )
    for module in ("margin_async._session", "margin_async._ratelimit"):
        monkeypatch.setattr(f"{module}.asyncio.sleep", sleep)
        monkeypatch.setattr(f"{module}.time", clock)
    return delays


async def test_a_429_with_only_a_reset_waits_that_long(
    mock: aioresponses, sleeps: list[float]
) -> None:
    url = BASE + INTEREST_PATH + "?currentPage=1&pageSize=50"
    mock.get(url, status=429, payload={"code": "429000"}, headers={"gw-ratelimit-reset": "700"})
    mock.get(url, payload=ok(page([interest_item()])))
    retry = RetryPolicy(attempts=2, base_delay=0.01, jitter=False)
    async with client(retry=retry) as c:
        await c.get_interest_history()
    # The old code resent at once (4 attempts in 3 ms): the wait must cover the reset.
    assert sum(sleeps) >= 0.7


@pytest.mark.parametrize("reset", ["1733000000000", "99999999999999999", "86400000"])
async def test_an_absurd_reset_never_freezes_the_account(
    mock: aioresponses, sleeps: list[float], reset: str
) -> None:
    url = BASE + INTEREST_PATH + "?currentPage=1&pageSize=50"
    headers = {
        "gw-ratelimit-limit": "4000",
        "gw-ratelimit-remaining": "0",
        "gw-ratelimit-reset": reset,
    }
    mock.get(url, payload=ok(page([interest_item()])), headers=headers)
    mock.get(url, status=429, payload={"code": "429000"}, headers={"gw-ratelimit-reset": reset})
    mock.get(url, payload=ok(page([interest_item()])), repeat=True)
    async with client(retry=RetryPolicy(attempts=2), timeout=60) as c:
        await c.get_interest_history()  # remaining 0 until "an epoch from now"
        await asyncio.wait_for(c.get_interest_history(), timeout=5)  # a 429 says the same
        await asyncio.wait_for(c.get_interest_history(), timeout=5)
    assert sleeps  # it did wait for the window,
    assert all(delay <= 30.1 for delay in sleeps)  # but never longer than the window


async def test_a_budget_wait_counts_against_the_timeout(mock: aioresponses) -> None:
    url = BASE + INTEREST_PATH + "?currentPage=1&pageSize=50"
    headers = {
        "gw-ratelimit-limit": "4000",
        "gw-ratelimit-remaining": "0",
        "gw-ratelimit-reset": "20000",
    }
    mock.get(url, payload=ok(page([interest_item()])), headers=headers, repeat=True)
    async with client(retry=RetryPolicy(attempts=1), timeout=0.5) as c:
        await c.get_interest_history()
        # 20 s to the reset, 0.5 s of timeout: refused at once, nothing sent. (The old
        # code waited the 20 s outside any timeout.)
        with pytest.raises(RateLimitError, match="not sent") as caught:
            await asyncio.wait_for(c.get_interest_history(), timeout=5)
    assert caught.value.retry_after is not None and 19 < caught.value.retry_after <= 21
    assert len(mock.requests[("GET", _url(url))]) == 1


def _url(url: str) -> Any:
    from yarl import URL

    return URL(url)


async def test_without_rate_headers_a_walk_still_runs_pages_side_by_side(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    in_flight = 0
    most = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        current = int(request.query["currentPage"])
        items = [interest_item(createdTime=1729657580449 - current * 100 - i) for i in range(10)]
        body = ok(page(items, current_page=current, page_size=10, total_num=100, total_page=10))
        return web.Response(body=json.dumps(body), content_type="application/json")

    url = await serve(handler)
    async with MarginClient(account(), base_url=url) as c:
        records = await c.interest_history(page_size=10, prefetch=4).collect()
    assert len(records) == 100
    assert most > 1  # the old budget sent one request at a time without the headers


# -- secrets in excerpts ---------------------------------------------------------------


def _echo_page(request: web.Request) -> str:
    # The secret headers first, so that they fall inside any short excerpt.
    echoed = sorted(request.headers.items(), key=lambda kv: kv[0] != "KC-API-PASSPHRASE")
    lines = "\n".join(f"{k}: {v}" for k, v in echoed)
    return f"<pre>{lines}</pre><h1>Bad Gateway</h1>"


@pytest.mark.parametrize("style", ["html-502", "json-msg", "html-404", "json-escaped"])
async def test_a_reply_that_echoes_headers_leaks_no_secret(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture, style: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        passphrase = request.headers.get("KC-API-PASSPHRASE", "")
        if style == "html-502":
            return web.Response(status=502, text=_echo_page(request), content_type="text/html")
        if style == "html-404":
            return web.Response(status=404, text=_echo_page(request), content_type="text/html")
        message = f"bad passphrase {passphrase}, secret {SECRET}, {PASSPHRASE}"
        text = json.dumps({"code": "400100", "msg": message})
        if style == "json-escaped":
            text = text.replace("/", "\\/")
        return web.Response(status=400, text=text, content_type="application/json")

    events: list[ResponseEvent] = []
    url = await serve(handler)
    async with MarginClient(account(), base_url=url, retry=FAST, on_response=events.append) as c:
        with caplog.at_level(logging.DEBUG, logger="margin_async"):
            for call in (c.get_interest_history(), c.borrow("USDT", "10")):
                with pytest.raises(MarginError) as caught:
                    await call
                texts = [str(caught.value)]
                cause = caught.value.__cause__
                while cause is not None:
                    texts.append(str(cause))
                    cause = cause.__cause__
                for text in texts:
                    _assert_clean(text)
    for record in caplog.records:
        _assert_clean(record.getMessage())
    for event in events:
        _assert_clean(repr(event))
    assert events  # the hook saw the replies


def _assert_clean(text: str) -> None:
    for secret in (SECRET, PASSPHRASE, SIGNED_PASSPHRASE, SIGNED_PASSPHRASE.replace("/", "\\/")):
        assert secret not in text, text


async def test_a_large_error_page_is_cut_to_a_short_excerpt(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    # A large error page (15 MiB, under the cap) becomes a message a person can read.
    body = b"<html>" + b"x" * (15 * 2**20) + b"</html>"

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=502, body=body, content_type="text/html")

    url = await serve(handler)
    async with MarginClient(account(), base_url=url, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(MarginError) as caught:
            await c.get_interest_history()
    assert len(str(caught.value)) < 400


def test_a_short_secret_does_not_garble_messages() -> None:
    from margin_async._redact import REDACTED, Redactor

    redact = Redactor(["s", "pass", "longer-secret"])
    assert redact("margin-async sees pass and longer-secret") == (
        f"margin-async sees {REDACTED} and {REDACTED}"
    )
