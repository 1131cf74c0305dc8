"""A per-account weight budget, fed by the exchange's ``gw-ratelimit-*`` headers.

Each request is charged its weight before it is sent; when the budget left in the
current window cannot cover it, the caller waits for the window to reset instead of
collecting a 429. Concurrent requests of one account share one budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

__all__ = ["RateBudget"]

# A reply's reset moment can differ from an earlier one's by network jitter; within this
# many seconds two replies are taken to describe the same window.
_SAME_WINDOW = 0.5
# Wait this much past the announced reset so the next window has surely begun.
_RESET_MARGIN = 0.05


class RateBudget:
    """Weight budget of one account (UID) in the exchange's "Spot" pool.

    Until a first reply has told the quota, requests are let through one at a time.
    """

    __slots__ = ("_in_flight", "_learned", "_limit", "_remaining", "_reset_at")

    def __init__(self) -> None:
        self._limit: int | None = None
        self._remaining: int | None = None
        #: monotonic time at which the current window resets
        self._reset_at: float | None = None
        #: weight charged for requests whose reply has not arrived yet
        self._in_flight = 0
        self._learned: asyncio.Event | None = None

    @property
    def limit(self) -> int | None:
        """The quota of a window, as last announced (``None`` until known)."""
        return self._limit

    @property
    def remaining(self) -> int | None:
        """Weight left in the current window, as last announced (``None`` until known)."""
        return self._remaining

    def seconds_until_reset(self) -> float:
        """Seconds until the current window resets (0 if unknown or past)."""
        if self._reset_at is None:
            return 0.0
        return max(0.0, self._reset_at - time.monotonic())

    async def acquire(self, weight: int) -> None:
        """Charge ``weight``, first waiting for a window reset if the budget is short."""
        if weight <= 0:
            return
        while True:
            now = time.monotonic()
            if self._reset_at is not None and now >= self._reset_at:
                # The window has reset: the full quota is back until a reply says more.
                self._remaining = self._limit
                self._reset_at = None
            if self._remaining is not None and self._remaining - self._in_flight >= weight:
                break
            if self._reset_at is not None:
                await asyncio.sleep(self._reset_at - now + _RESET_MARGIN)
            elif self._in_flight == 0:
                # Nothing to learn from (no quota known yet, or a weight above a whole
                # window): send, and let the exchange's reply teach the budget.
                break
            else:
                # The figures will come with the replies in flight: wait for one.
                if self._learned is None:
                    self._learned = asyncio.Event()
                await self._learned.wait()
        self._in_flight += weight

    def release(
        self, weight: int, headers: Mapping[str, str] | None, received_at: float | None = None
    ) -> None:
        """Settle a request's charge with what its reply said (``headers`` may lack them).

        ``received_at`` is the ``time.monotonic()`` at which the reply's headers arrived.
        """
        if weight <= 0:
            return
        self._in_flight -= weight
        learned = headers is not None and self.observe(headers, received_at)
        if not learned and self._remaining is not None:
            # No figures (a gateway page, or no reply): assume the weight was spent.
            self._remaining = max(0, self._remaining - weight)
        if self._learned is not None:
            self._learned.set()
            self._learned = None

    def observe(self, headers: Mapping[str, str], received_at: float | None = None) -> bool:
        """Learn limit / remaining / reset from reply headers; ``False`` if absent or bad."""
        try:
            limit = int(headers["gw-ratelimit-limit"])
            remaining = int(headers["gw-ratelimit-remaining"])
            reset_ms = int(headers["gw-ratelimit-reset"])
        except (KeyError, ValueError):
            return False
        if limit < 0 or remaining < 0 or reset_ms < 0:
            return False
        at = time.monotonic() if received_at is None else received_at
        reset_at = at + reset_ms / 1000
        self._limit = limit
        if (
            self._reset_at is None
            or self._remaining is None
            or reset_at > self._reset_at + _SAME_WINDOW
        ):
            # The first figures, or a later window.
            self._remaining = remaining
            self._reset_at = reset_at
        elif reset_at >= self._reset_at - _SAME_WINDOW:
            # Replies can arrive out of order: within one window the smallest figure is
            # the newest.
            self._remaining = min(self._remaining, remaining)
        # else: a late reply from an earlier window says nothing about this one.
        return True
