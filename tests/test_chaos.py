"""Chaos: every fault kind at 10%, identical borrows and repays from several tasks, random
cancellations. Whatever happens, each success a caller saw is exactly one application in
the fake's ledger, and every application nobody saw as a success belongs to a call that
ended unknown (an OutcomeUnknownError, or a cancellation after sending).

The counts are printed (``pytest -s``); the assertions are invariants, never timings.
"""

from __future__ import annotations

import asyncio
import collections
import random
from typing import Any

import pytest

from margin_async import (
    ApiError,
    MarginClient,
    MarginError,
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    TransportError,
)
from margin_async.testing import FakeKuCoin

KINDS = (
    "5xx",
    "rate_limit",
    "drop_before",
    "apply_then_5xx",
    "apply_then_drop",
    "apply_then_stall",
    "latency",
)
OPERATIONS = 500
TASKS = 5


@pytest.fixture(autouse=True)
def fast_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    import margin_async._reconcile as reconcile

    real = reconcile.find_order

    async def quick(*args: Any, **kwargs: Any) -> Any:
        kwargs["interval"] = 0.01
        return await real(*args, **kwargs)

    monkeypatch.setattr("margin_async._reconcile.find_order", quick)


async def test_chaos_never_counts_an_application_twice_or_misses_one() -> None:
    rng = random.Random(20261201)
    tally: collections.Counter[str] = collections.Counter()
    successes: list[tuple[str]] = []
    stolen: list[tuple[str]] = []
    # A quota the calls cannot exhaust: this test is about faults, not pacing.
    async with FakeKuCoin(rate_limit_quota=10**7) as fake:
        creds = fake.add_account()
        fake.set_liquidity("USDT", "100000000")
        fake.set_latency(0.01)  # so that a cancellation can land while a call is in flight
        # Reads (the reconciliations' history reads) fail at random too.
        fake.set_fault_rate(0.10, kinds=("5xx", "drop_before", "rate_limit", "latency"), seed=3)
        retry = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)
        async with MarginClient(creds, base_url=fake.url, retry=retry, timeout=0.5) as client:
            # Identical calls queue in the SDK one at a time anyway; queueing them here
            # too lets the test see which applications happened during which call.
            locks = {"borrow": asyncio.Lock(), "repay": asyncio.Lock()}

            async def one() -> None:
                operation = "borrow" if rng.random() < 0.6 else "repay"
                async with locks[operation]:
                    before = len(fake.ledger(creds.api_key))
                    outcome = await attempt(operation)
                    during = fake.ledger(creds.api_key)[before:]
                tally[outcome if isinstance(outcome, str) else "success"] += 1
                if not isinstance(outcome, str):
                    successes.append(outcome)
                    mine = {e.order_no for e in during if e.kind == operation}
                    if outcome[0] not in mine:
                        stolen.append(outcome)  # an order some other call created

            async def attempt(operation: str) -> str | tuple[str]:
                path = "/api/v3/margin/" + operation
                if rng.random() < 0.10:
                    fake.inject(rng.choice(KINDS), route="POST " + path, stall=1.0)
                call = (
                    client.borrow("USDT", "10", time_in_force="IOC")
                    if operation == "borrow"
                    else client.repay("USDT", "10")
                )
                try:
                    if rng.random() < 0.20:
                        result = await asyncio.wait_for(call, timeout=rng.uniform(0, 0.04))
                    else:
                        result = await call
                except TimeoutError:
                    return "cancelled"
                except OutcomeUnknownError:
                    return "unknown"
                except (TransportError, RateLimitError) as exc:
                    # Only raised for money when nothing can have been applied (never
                    # connected, or refused before processing).
                    return f"not applied: {type(exc).__name__}"
                except ApiError as exc:
                    return f"refused: {exc.code}"
                except MarginError as exc:  # pragma: no cover - would be a finding
                    return f"other: {type(exc).__name__}: {exc}"
                return (result.order_no,)

            async def worker() -> None:
                for _ in range(OPERATIONS // TASKS):
                    await one()

            await asyncio.gather(*(worker() for _ in range(TASKS)))
        fake.clear_faults()
        ledger = fake.ledger(creds.api_key)

    applied = [entry.order_no for entry in ledger]
    claimed = [order_no for (order_no,) in successes]
    unclaimed = set(applied) - set(claimed)
    print(
        f"\nchaos: {OPERATIONS} calls: "
        + ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
        + f"; ledger {len(applied)} applications, {len(unclaimed)} not claimed by a success"
    )
    assert sum(tally.values()) == OPERATIONS
    assert not any(key.startswith("other") for key in tally)
    # One application per success: no success names an order twice, one never applied,
    # or one that another call created.
    assert len(claimed) == len(set(claimed))
    assert set(claimed) <= set(applied)
    assert stolen == []
    # Every other application belongs to a call whose outcome its caller knows is unknown.
    assert len(unclaimed) <= tally["unknown"] + tally["cancelled"]
    assert tally["success"] > OPERATIONS // 2  # the chaos still lets most calls through
