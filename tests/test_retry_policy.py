"""RetryPolicy: backoff bounds and which failures may be resent for which request."""

from __future__ import annotations

import pytest

from margin_async import RetryPolicy
from margin_async._request import Request, Safety
from margin_async._retry import Failure

READ = Request("GET", "/api/v3/margin/borrow", (("currency", "USDT"),), weight=15)
MONEY = Request("POST", "/api/v3/margin/borrow", body=b"{}", weight=15, safety=Safety.MONEY)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 4
    assert policy.jitter is True
    assert 0 < policy.base_delay <= policy.max_delay


def test_no_jitter_is_exact_exponential_with_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.25, max_delay=2.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_jitter_within_bounds() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for resend in range(1, 10):
        bound = min(1.0, 0.1 * 2 ** (resend - 1))
        draws = [policy.delay(resend) for _ in range(200)]
        assert all(0 <= d <= bound for d in draws)


def test_jitter_draws_uniformly_up_to_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return high / 2

    monkeypatch.setattr("margin_async._retry.random.uniform", uniform)
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert drawn == [(0, 1.0), (0, 2.0), (0, 3.0)]


def test_zero_delays() -> None:
    policy = RetryPolicy(attempts=5, base_delay=0, max_delay=0)
    assert all(policy.delay(n) == 0 for n in range(1, 5))
    assert RetryPolicy(base_delay=0).delay(3) == 0


def test_huge_resend_number_stays_capped() -> None:
    policy = RetryPolicy(attempts=5000, base_delay=0.25, max_delay=8.0, jitter=False)
    assert policy.delay(2000) == 8.0
    assert 0 <= RetryPolicy(attempts=5000).delay(4999) <= 8.0


@pytest.mark.parametrize(
    ("request_", "failure", "allowed"),
    [
        (READ, Failure.NOT_SENT, True),
        (READ, Failure.REFUSED, True),
        (READ, Failure.AMBIGUOUS, True),
        (MONEY, Failure.NOT_SENT, True),
        (MONEY, Failure.REFUSED, True),
        (MONEY, Failure.AMBIGUOUS, False),
    ],
    ids=lambda v: getattr(v, "name", None) or getattr(v, "method", None),
)
def test_may_resend_matrix(request_: Request, failure: Failure, allowed: bool) -> None:
    assert RetryPolicy.may_resend(request_, failure) is allowed
    assert RetryPolicy(attempts=1).may_resend(request_, failure) is allowed


def test_endpoint_safety() -> None:
    from margin_async._endpoints.borrow import HISTORY, borrow_request
    from margin_async._endpoints.leverage import leverage_request
    from margin_async._endpoints.repay import repay_request

    assert borrow_request("USDT", "1", "IOC").request.safety is Safety.MONEY
    assert repay_request("USDT", "1").request.safety is Safety.MONEY
    assert leverage_request("2").safety is Safety.RETRYABLE
    assert HISTORY.request(_filters(), 1, 10).safety is Safety.RETRYABLE


def _filters():  # type: ignore[no-untyped-def]
    from margin_async._endpoints._params import HistoryFilter

    return HistoryFilter(currency="USDT")


def test_frozen() -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RetryPolicy().attempts = 2  # type: ignore[misc]
