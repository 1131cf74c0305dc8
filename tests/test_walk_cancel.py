"""Leaving a walk early inside ``async with client``: the pages in flight are cancelled by
the time the client is closed at the latest (at the ``break`` itself on CPython), not
when the abandoned generator is garbage-collected; no request is sent after the close."""

from __future__ import annotations

import asyncio
import os

import pytest

from margin_async import ClientClosedError, Credentials, MarginClient
from margin_async.testing import FakeKuCoin

BORROW_ROUTE = "GET /api/v3/margin/borrow"
INTEREST_ROUTE = "GET /api/v3/margin/interest"


def _sdk_tasks() -> list[asyncio.Task[object]]:
    """Tasks running the SDK's own code (not the fake exchange's, not the test's)."""
    here = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        name = "" if code is None else code.co_filename
        inside = f"{os.sep}margin_async{os.sep}" in name
        if task is not here and inside and f"{os.sep}testing{os.sep}" not in name:
            found.append(task)
    return found


async def _nothing_sent_after(fake: FakeKuCoin, route: str, sent: int) -> None:
    await asyncio.sleep(0.4)  # longer than the fake's latency: a late request would land
    assert fake.stats.requests[route] == sent


@pytest.fixture
async def slow(fake: FakeKuCoin, creds: Credentials) -> FakeKuCoin:
    fake.seed_history(creds.api_key, "USDT", borrows=300, interest=300)
    fake.set_latency(0.3)
    return fake


async def test_break_cancels_pages_in_flight_before_the_client_is_closed(
    slow: FakeKuCoin, creds: Credentials
) -> None:
    async with MarginClient(creds, base_url=slow.url) as client:
        async for _ in client.borrow_history("USDT", page_size=10, prefetch=4):
            await asyncio.sleep(0.05)  # let pages 2-5 reach the fake
            break
        assert slow.stats.requests[BORROW_ROUTE] == 5
        in_flight = _sdk_tasks()
    sent = slow.stats.requests[BORROW_ROUTE]
    assert in_flight, "the walk had no pages in flight: the test proves nothing"
    assert all(task.done() for task in in_flight)
    assert _sdk_tasks() == []
    await _nothing_sent_after(slow, BORROW_ROUTE, sent)


async def test_an_error_in_the_loop_cancels_pages_in_flight(
    slow: FakeKuCoin, creds: Credentials
) -> None:
    in_flight: list[asyncio.Task[object]] = []
    with pytest.raises(LookupError):
        async with MarginClient(creds, base_url=slow.url) as client:
            async for _ in client.borrow_history("USDT", page_size=10, prefetch=4):
                await asyncio.sleep(0.05)
                in_flight = _sdk_tasks()
                raise LookupError("the consumer failed")
    sent = slow.stats.requests[BORROW_ROUTE]
    assert in_flight
    assert all(task.done() for task in in_flight)
    assert _sdk_tasks() == []
    await _nothing_sent_after(slow, BORROW_ROUTE, sent)


async def test_break_out_of_pages_cancels_at_once(slow: FakeKuCoin, creds: Credentials) -> None:
    """On CPython the abandoned iterator is freed at the ``break``: its fetches are
    cancelled then, before anything else runs."""
    async with MarginClient(creds, base_url=slow.url) as client:
        async for _ in client.borrow_history("USDT", page_size=10, prefetch=3).pages():
            await asyncio.sleep(0.05)
            in_flight = _sdk_tasks()
            break
        assert in_flight
        assert all(task.cancelling() or task.done() for task in in_flight)


async def test_break_out_of_a_follow_backlog_cancels_its_pages(
    slow: FakeKuCoin, creds: Credentials
) -> None:
    async with MarginClient(creds, base_url=slow.url) as client:
        follower = client.interest_history("USDT", page_size=10, prefetch=4).follow()
        async for _ in follower:
            await asyncio.sleep(0.05)
            in_flight = _sdk_tasks()
            break
    sent = slow.stats.requests[INTEREST_ROUTE]
    assert in_flight
    assert all(task.done() for task in in_flight)
    assert _sdk_tasks() == []
    await _nothing_sent_after(slow, INTEREST_ROUTE, sent)


async def test_a_walk_kept_open_across_the_close_says_the_client_closed(
    slow: FakeKuCoin, creds: Credentials
) -> None:
    client = MarginClient(creds, base_url=slow.url)
    pages = client.borrow_history("USDT", page_size=10, prefetch=2).pages()
    first = await anext(pages)
    assert first.current_page == 1
    await client.close()
    with pytest.raises(ClientClosedError):
        await anext(pages)
    assert _sdk_tasks() == []


async def test_closing_the_client_while_a_walk_waits_for_a_page(
    slow: FakeKuCoin, creds: Credentials
) -> None:
    """The consumer is waiting for page 2 when another task closes the client: it gets
    ClientClosedError, not a CancelledError it never asked for."""
    client = MarginClient(creds, base_url=slow.url)
    reached: list[int] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for page in client.borrow_history("USDT", page_size=10, prefetch=3).pages():
            reached.append(page.current_page)
            first.set()

    consumer = asyncio.create_task(consume())
    await first.wait()
    await asyncio.sleep(0.05)  # waiting for page 2 now
    await client.close()
    with pytest.raises(ClientClosedError):
        await consumer
    assert reached == [1]
    assert _sdk_tasks() == []
