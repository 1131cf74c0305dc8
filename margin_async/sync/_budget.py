"""Headroom: the share of an account's rate limit that the mirror leaves to others.

KuCoin limits each account (UID) to a quota of request weight per 30 s window (4000 at
VIP0), shared by everything using that account: the mirror, and the bots that borrow and
repay. The mirror must not starve them. For each account, it sends a history request
only while both hold:

* its own weight stays within ``(1 - headroom) * quota``, each request counting from
  when it is sent until ``window`` seconds after its reply (so that no exchange window,
  whatever its phase and the latency, holds more);
* the ``gw-ratelimit-remaining`` last reported for the account, less what the mirror
  spent since, stays at or above ``headroom * quota`` (others are spending too).

Otherwise it waits (the SDK's own rate budget still guards every request against 429s).
With the defaults (``quota=4000``, ``headroom=0.25``), the mirror spends at most 3000
weight per 30 s per account (150 interest pages, 75,000 records) and backs off whenever
fewer than 1000 remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from margin_async.sync._errors import SyncConfigError

__all__ = ["DEFAULT_HEADROOM", "DEFAULT_QUOTA", "DEFAULT_WINDOW_S", "WEIGHTS", "Headroom"]

#: The "Spot" pool's quota at VIP0, weight per window.
DEFAULT_QUOTA = 4000
#: The window of the quota, seconds.
DEFAULT_WINDOW_S = 30.0
#: Share of the quota left to others by default.
DEFAULT_HEADROOM = 0.25
#: Weight of one history request, per kind (KuCoin's documentation).
WEIGHTS = {"borrow": 15, "repay": 15, "interest": 20}
_HEAVIEST = max(WEIGHTS.values())
# While the exchange reports too little remaining, look again after this share of the window.
_RECHECK = 0.1
# Past an announced reset, so that the next window has surely begun (seconds).
_MARGIN = 0.05


class Headroom:
    """The mirror's budget for one account (see the module docstring).

    A request counts against the allowance from when it is sent until ``window``
    seconds after its reply arrived: the exchange charged it somewhere in between, so
    whatever the latency and the phase of the exchange's window, no window of it can
    hold more of the mirror's weight than the allowance.
    """

    __slots__ = ("_allowance", "_reserve", "_seen", "_seen_until", "_uses", "_wake", "_window")

    def __init__(self, *, quota: int, headroom: float, window: float) -> None:
        check(quota=quota, headroom=headroom, window=window)
        self._allowance = math.floor(quota * (1 - headroom))
        self._reserve = math.ceil(quota * headroom)
        self._window = float(window)
        #: [counted until (monotonic; None while in flight), weight] per request.
        self._uses: list[list[Any]] = []
        self._wake = asyncio.Event()
        #: Remaining last reported by the exchange, less the mirror's weight since, and
        #: when (monotonic) that report's window resets (``None``: it did not say).
        self._seen: int | None = None
        self._seen_until: float | None = None

    @property
    def allowance(self) -> int:
        """Weight the mirror may spend per window."""
        return self._allowance

    @property
    def reserve(self) -> int:
        """Weight the mirror leaves to others."""
        return self._reserve

    def observe(self, remaining: int, reset_ms: int | None = None) -> None:
        """A reply of this account said ``gw-ratelimit-remaining: remaining`` (and
        ``gw-ratelimit-reset: reset_ms``, when given)."""
        self._seen = remaining
        self._seen_until = None
        if reset_ms is not None:
            self._seen_until = time.monotonic() + min(reset_ms / 1000, self._window)

    @contextlib.asynccontextmanager
    async def use(self, weight: int) -> AsyncIterator[None]:
        """Wait until a request of ``weight`` may be sent; send it inside the block."""
        use = await self._acquire(weight)
        try:
            yield
        finally:
            use[0] = time.monotonic() + self._window
            wake, self._wake = self._wake, asyncio.Event()
            wake.set()

    async def _acquire(self, weight: int) -> list[Any]:
        while True:
            now = time.monotonic()
            self._uses = uses = [u for u in self._uses if u[0] is None or u[0] > now]
            if sum(u[1] for u in uses) + weight > self._allowance:
                ends = [u[0] for u in uses if u[0] is not None]
                wake = self._wake
                # Until the first use ends, or a request in flight is answered.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(ends) - now if ends else None):
                        await wake.wait()
                continue
            if self._seen_until is not None and now >= self._seen_until:
                self._seen = self._seen_until = None  # that window has reset
            if self._seen is not None and self._seen - weight < self._reserve:
                # Others are spending this account's quota: leave them the reserve, until
                # the window resets (if the exchange said when), else look again soon.
                # The figure is stale once waited on, so the next request looks again.
                until, self._seen, self._seen_until = self._seen_until, None, None
                wait = self._window * _RECHECK if until is None else until - now + _MARGIN
                await asyncio.sleep(wait)
                continue
            use: list[Any] = [None, weight]
            uses.append(use)
            if self._seen is not None:
                self._seen -= weight
            return use


def check(*, quota: int, headroom: float, window: float) -> None:
    """Refuse settings that leave the mirror no room (a :class:`SyncConfigError`)."""
    if isinstance(quota, bool) or not isinstance(quota, int) or quota < 1:
        raise SyncConfigError(
            "quota", f"must be the account's weight quota (int >= 1), got {quota!r}"
        )
    if isinstance(headroom, bool) or not isinstance(headroom, int | float) or not 0 <= headroom < 1:
        raise SyncConfigError("headroom", f"must be a fraction in [0, 1), got {headroom!r}")
    if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
        raise SyncConfigError("window", f"must be seconds > 0, got {window!r}")
    if math.floor(quota * (1 - headroom)) < _HEAVIEST:
        raise SyncConfigError(
            "headroom",
            f"leaves the mirror {math.floor(quota * (1 - headroom))} weight per window, less "
            f"than one history request ({_HEAVIEST}); lower the headroom or raise the quota",
        )
