"""RateBudget: learning from gw-ratelimit-* headers and waiting for a window reset.

Resets are tens of milliseconds; the tests assert order and state, never durations.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from margin_async._ratelimit import RateBudget


def h(limit: int | str, remaining: int | str, reset: int | str) -> dict[str, str]:
    return {
        "gw-ratelimit-limit": str(limit),
        "gw-ratelimit-remaining": str(remaining),
        "gw-ratelimit-reset": str(reset),
    }


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_unknown_until_told() -> None:
    b = RateBudget()
    assert (b.limit, b.remaining, b.seconds_until_reset()) == (None, None, 0.0)


async def test_learns_from_headers() -> None:
    b = RateBudget()
    b.observe(h(4000, 3985, 29_000))
    assert (b.limit, b.remaining) == (4000, 3985)
    assert 0 < b.seconds_until_reset() <= 29


async def test_release_learns_from_reply() -> None:
    b = RateBudget()
    await b.acquire(15)
    b.release(15, h(4000, 3985, 29_000))
    assert (b.limit, b.remaining) == (4000, 3985)


async def test_acquire_within_budget_does_not_wait() -> None:
    b = RateBudget()
    b.observe(h(100, 30, 30_000))
    task = asyncio.create_task(b.acquire(15))
    await asyncio.sleep(0)
    assert task.done()
    # A second one still fits (15 in flight + 15 <= 30); a third does not.
    second = asyncio.create_task(b.acquire(15))
    third = asyncio.create_task(b.acquire(15))
    await settle()
    assert second.done()
    assert not third.done()
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third


async def test_acquire_waits_for_the_reset() -> None:
    b = RateBudget()
    b.observe(h(100, 10, 50))
    order: list[str] = []

    async def heavy() -> None:
        await b.acquire(15)
        order.append("acquired")

    task = asyncio.create_task(heavy())
    await settle()
    assert not task.done()  # 10 left, 15 needed: waits for the window to reset
    order.append("waiting")
    await asyncio.wait_for(task, timeout=5)
    assert order == ["waiting", "acquired"]
    assert b.remaining == 100  # the full quota is back after the reset
    assert b.seconds_until_reset() == 0  # the next reply tells when the new window ends


async def test_exhausted_window_blocks_until_reset_even_for_light_requests() -> None:
    b = RateBudget()
    b.observe(h(4000, 0, 60))
    task = asyncio.create_task(b.acquire(1))
    await settle()
    assert not task.done()
    await asyncio.wait_for(task, timeout=5)
    assert b.remaining == 4000


async def test_out_of_order_replies_keep_the_minimum() -> None:
    b = RateBudget()
    b.observe(h(4000, 3000, 20_000))
    b.observe(h(4000, 3100, 19_990))  # an older reply arriving late
    assert b.remaining == 3000
    b.observe(h(4000, 2900, 19_980))
    assert b.remaining == 2900


async def test_new_window_replaces_remaining() -> None:
    b = RateBudget()
    b.observe(h(4000, 100, 1_000))
    b.observe(h(4000, 3990, 29_990))  # the reset is 29 s later: a new window
    assert b.remaining == 3990
    b = RateBudget()
    now = time.monotonic()
    b.observe(h(4000, 100, 1_000), now)
    b.observe(h(4000, 3990, 29_990), now + 1.0)  # read after that window reset: a new one
    assert b.remaining == 3990
    assert b.seconds_until_reset() > 20
    b.observe(h(6000, 5990, 29_980), now + 1.01)  # a new limit (VIP upgrade) is taken at once
    assert (b.limit, b.remaining) == (6000, 3990)  # within the window, the smaller figure


async def test_a_reply_read_late_does_not_pass_for_a_new_window() -> None:
    # The event loop stalled: a reply written early in the window (more remaining) is
    # read late, so its reset looks 0.8 s later than the window's. It used to be taken
    # for a new window, and the timely replies after it for an old one: the budget spent
    # on the stale figure and collected 429s.
    b = RateBudget()
    t = time.monotonic()
    b.observe(h(600, 600, 3_000), t)  # the window resets at t + 3
    b.observe(h(600, 300, 2_000), t + 1.0)
    b.observe(h(600, 500, 2_800), t + 1.0)  # written at t + 0.2, read at t + 1.0
    b.observe(h(600, 280, 1_900), t + 1.1)
    assert b.remaining == 280
    assert b.seconds_until_reset() <= t + 3 - time.monotonic() + 0.001


async def test_after_a_late_reply_of_the_old_window_the_new_one_is_still_seen() -> None:
    # Just after the window reset, a reply written before it (5 left, reset in 5 ms) is
    # read first; the next window's replies (reset about a window later) must replace its
    # figures, not be taken for the same window: the budget would then believe a full
    # quota at that 5 ms "reset" while the new window is half spent.
    b = RateBudget()
    t = time.monotonic()
    b.observe(h(500, 485, 1_000), t)
    b.observe(h(500, 5, 5), t + 0.99)
    b.observe(h(500, 485, 1_000), t + 0.991)  # the next window's first reply
    assert b.remaining == 485
    assert b.seconds_until_reset() > 0.5


@pytest.mark.parametrize("reset", [30_001, 60_000, 1_733_000_000_000, 10**17])
async def test_an_absurd_reset_is_believed_only_up_to_the_window(reset: int) -> None:
    # An epoch (or any value past the window) in gw-ratelimit-reset froze the account.
    b = RateBudget()
    b.observe(h(4000, 0, reset))
    assert 29 < b.seconds_until_reset() <= 30
    b.refused(float(reset))
    assert 29 < b.seconds_until_reset() <= 30


async def test_a_wait_past_the_deadline_fails_at_once() -> None:
    import time

    from margin_async._ratelimit import BudgetExhausted

    b = RateBudget()
    b.observe(h(4000, 0, 20_000))
    with pytest.raises(BudgetExhausted) as caught:
        await b.acquire(15, deadline=time.monotonic() + 1)
    assert caught.value.wait is not None and 19 < caught.value.wait <= 20.1
    assert b.remaining == 0  # nothing was charged


async def test_a_late_reply_from_an_earlier_window_is_ignored() -> None:
    b = RateBudget()
    b.observe(h(4000, 3985, 29_990))  # the new window's first reply arrived first
    b.observe(h(4000, 15, 10))  # then a reply from the end of the previous window
    assert b.remaining == 3985
    assert b.seconds_until_reset() > 20


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"gw-ratelimit-remaining": "10"},
        {"gw-ratelimit-limit": "4000", "gw-ratelimit-remaining": "10"},
        h("abc", 10, 1000),
        h(4000, "", 1000),
        h(4000, 10, "soon"),
        h(4000, "1.5", 1000),
        {"Content-Type": "text/html"},
    ],
)
async def test_missing_or_garbled_headers_ignored(headers: dict[str, str]) -> None:
    fresh = RateBudget()
    fresh.observe(headers)
    assert (fresh.limit, fresh.remaining) == (None, None)
    known = RateBudget()
    known.observe(h(4000, 3000, 20_000))
    known.observe(headers)
    assert (known.limit, known.remaining) == (4000, 3000)


async def test_unknown_quota_assumes_the_documented_one() -> None:
    # Without any gw-ratelimit-* header the budget must not serialise a walk: it starts
    # from the documented quota (4000 per 30 s) and lets requests run side by side.
    b = RateBudget()
    await b.acquire(15)  # the first goes alone: its reply may tell the real figures
    b.release(15, {"Content-Type": "application/json"})  # it did not
    for _ in range(8):
        await asyncio.wait_for(b.acquire(15), timeout=1)
    for _ in range(8):
        b.release(15, None)
    assert (b.limit, b.remaining) == (None, None)  # nothing announced yet
    assert 0 < b.seconds_until_reset() <= 30  # the window opened with the first request


async def test_without_headers_the_assumed_quota_is_enforced_locally() -> None:
    b = RateBudget(quota=45, window=0.05)
    await b.acquire(15)
    b.release(15, None)
    await b.acquire(15)
    await b.acquire(15)
    third = asyncio.create_task(b.acquire(15))
    await settle()
    assert not third.done()  # 45 of 45 charged: waits for the local window to reset
    b.release(15, None)
    b.release(15, None)
    await asyncio.wait_for(third, timeout=5)


async def test_unknown_quota_lets_the_first_request_through_alone() -> None:
    b = RateBudget()
    await b.acquire(10)
    second = asyncio.create_task(b.acquire(10))
    await settle()
    assert not second.done()  # waits for the first reply to tell the quota
    b.release(10, h(4000, 3990, 30_000))
    await asyncio.wait_for(second, timeout=5)


async def test_unknown_quota_and_no_figures_still_progresses() -> None:
    b = RateBudget()
    await b.acquire(10)
    second = asyncio.create_task(b.acquire(10))
    await settle()
    b.release(10, None)  # the first attempt got no reply at all
    await asyncio.wait_for(second, timeout=5)


async def test_release_without_reply_assumes_spent() -> None:
    b = RateBudget()
    b.observe(h(100, 50, 30_000))
    await b.acquire(20)
    b.release(20, None)
    assert b.remaining == 30


async def test_gateway_page_without_figures_counts_as_spent() -> None:
    b = RateBudget()
    b.observe(h(100, 50, 30_000))
    await b.acquire(20)
    b.release(20, {"Content-Type": "text/html"})
    assert b.remaining == 30


async def test_zero_weight_never_waits() -> None:
    b = RateBudget()
    b.observe(h(100, 0, 30_000))
    await asyncio.wait_for(b.acquire(0), timeout=1)
    b.release(0, None)
    assert b.remaining == 0


async def test_heavier_than_a_window_is_let_through() -> None:
    b = RateBudget()
    b.observe(h(10, 10, 0))  # window already over: full quota of 10, no reset known
    await asyncio.wait_for(b.acquire(50), timeout=1)


async def test_cancelled_waiter_leaves_budget_consistent() -> None:
    b = RateBudget()
    b.observe(h(100, 10, 30_000))
    waiter = asyncio.create_task(b.acquire(50))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(b.acquire(10), timeout=1)  # nothing was charged by the waiter
