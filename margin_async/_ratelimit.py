"""A per-account weight budget, fed by the exchange's ``gw-ratelimit-*`` headers.

Each request is charged its weight before it is sent; when the budget left in the
current window cannot cover it, the caller waits for the window to reset instead of
collecting a 429. Concurrent requests of one account share one budget.

The first request goes alone, so that its reply can tell the real figures before a burst
spends them (the account's quota may be larger, or partly spent by another process). If
replies carry no figures, the budget assumes the documented quota (4000 per 30 s, VIP0)
in a window that starts with the first request, as the exchange's does, rather than
sending one request at a time. What it believes of a reset is clamped to the window: a
header that says "an epoch from now" must not freeze the account.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from margin_async._errors import ValidationError

__all__ = ["DEFAULT_QUOTA", "DEFAULT_WINDOW_S", "BudgetExhausted", "RateBudget"]

#: The "Spot" pool's quota at VIP0: weight per window.
DEFAULT_QUOTA = 4000
#: The "Spot" pool's window, seconds.
DEFAULT_WINDOW_S = 30.0
# A reply's reset moment can differ from an earlier one's by network jitter; within this
# many seconds two replies are taken to describe the same window.
_SAME_WINDOW = 0.5
# Wait this much past the announced reset so the next window has surely begun.
_RESET_MARGIN = 0.05


class BudgetExhausted(Exception):
    """The budget cannot cover a request before its deadline.

    ``wait`` is the seconds until the window resets (``None`` if it is not known).
    """

    def __init__(self, wait: float | None) -> None:
        super().__init__(wait)
        self.wait = wait


class RateBudget:
    """Weight budget of one account (UID) in the exchange's "Spot" pool.

    ``quota`` (weight) and ``window`` (seconds) are what is assumed until the exchange's
    headers say otherwise; ``window`` also bounds any reset the headers announce.
    """

    __slots__ = (
        "_announced",
        "_heard",
        "_in_flight",
        "_learned",
        "_limit",
        "_longest",
        "_remaining",
        "_reset_at",
        "_window",
    )

    def __init__(self, *, quota: int = DEFAULT_QUOTA, window: float = DEFAULT_WINDOW_S) -> None:
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 1:
            raise ValidationError("quota", f"must be an int >= 1, got {quota!r}")
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ValidationError("window", f"must be seconds > 0, got {window!r}")
        self._limit = quota
        self._remaining = quota
        self._window = float(window)
        #: Whether the figures come from the exchange (else they are assumed).
        self._announced = False
        #: Whether any reply (or failure) has settled a request yet.
        self._heard = False
        #: monotonic time at which the current window resets (``None``: no window open)
        self._reset_at: float | None = None
        #: weight charged for requests whose reply has not arrived yet
        self._in_flight = 0
        #: the longest reset announced so far, seconds (about the exchange's window)
        self._longest = 0.0
        self._learned: asyncio.Event | None = None

    @property
    def limit(self) -> int | None:
        """The quota of a window, as last announced (``None`` until known)."""
        return self._limit if self._announced else None

    @property
    def remaining(self) -> int | None:
        """Weight left in the current window, as last announced (``None`` until known)."""
        return self._remaining if self._announced else None

    def seconds_until_reset(self) -> float:
        """Seconds until the current window resets (0 if unknown or past)."""
        if self._reset_at is None:
            return 0.0
        return max(0.0, self._reset_at - time.monotonic())

    async def acquire(
        self,
        weight: int,
        deadline: float | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        """Charge ``weight``, first waiting for a window reset if the budget is short.

        ``deadline`` (a ``time.monotonic()`` value) bounds the wait: when the budget
        cannot cover ``weight`` before it, :class:`BudgetExhausted` is raised at once.
        ``on_wait`` is told how many seconds it is about to wait for a reset.
        """
        if weight <= 0:
            return
        while True:
            now = time.monotonic()
            if self._reset_at is not None and now >= self._reset_at:
                # The window has reset: the full quota is back until a reply says more.
                self._remaining = self._limit
                self._reset_at = None
            if not self._heard:
                if self._in_flight == 0:
                    break  # the first request goes alone; its reply teaches the rest
            elif self._remaining - self._in_flight >= weight:
                break
            if self._heard and self._reset_at is not None:
                wait = self._reset_at - now + _RESET_MARGIN
                if deadline is not None and now + wait > deadline:
                    raise BudgetExhausted(wait)
                if on_wait is not None:
                    on_wait(wait)
                await asyncio.sleep(wait)
            elif self._in_flight == 0:
                # A weight above a whole window: send, and let the exchange decide.
                break
            else:
                # The figures will come with the replies in flight: wait for one.
                if self._learned is None:
                    self._learned = asyncio.Event()
                try:
                    async with asyncio.timeout_at(_loop_time(deadline)):
                        await self._learned.wait()
                except TimeoutError:
                    raise BudgetExhausted(None) from None
        if self._reset_at is None and not self._announced:
            # Figures assumed, not told: the exchange's window starts with the account's
            # first request. (Once told, the next reply says when the window resets.)
            self._reset_at = time.monotonic() + self._window
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
        self._heard = True
        learned = headers is not None and self.observe(headers, received_at)
        if not learned:
            # No figures (a gateway page, or no reply): assume the weight was spent.
            self._remaining = max(0, self._remaining - weight)
        if self._learned is not None:
            self._learned.set()
            self._learned = None

    def refused(self, retry_after: float | None) -> None:
        """The exchange answered 429: nothing is left until the window resets.

        ``retry_after`` is the announced reset in seconds (clamped to the window); without
        it nothing is known of the window, and the retry policy's backoff decides instead.
        """
        if retry_after is None:
            return
        self._heard = True
        self._remaining = 0
        self._reset_at = time.monotonic() + min(max(retry_after, 0.0), self._window)

    def observe(self, headers: Mapping[str, str], received_at: float | None = None) -> bool:
        """Learn limit / remaining / reset from reply headers; ``False`` if absent or bad.

        A reset longer than the window is believed only up to the window.
        """
        try:
            limit = _header_int(headers["gw-ratelimit-limit"])
            remaining = _header_int(headers["gw-ratelimit-remaining"])
            reset_ms = _header_int(headers["gw-ratelimit-reset"])
        except (KeyError, ValueError):
            return False
        at = time.monotonic() if received_at is None else received_at
        reset = min(reset_ms / 1000, self._window)
        reset_at = at + reset
        self._limit = limit
        # The longest reset announced is about the exchange's window: a reply from the next
        # window announces a reset about that much later than this one's, while a reply
        # read late (the event loop stalled) only looks later by the stall.
        self._longest = max(self._longest, reset)
        later = max(_SAME_WINDOW, self._longest / 2)
        if (
            not self._announced
            or self._reset_at is None
            or at >= self._reset_at
            or reset_at > self._reset_at + later
        ):
            # The first figures, or a later window.
            self._remaining = remaining
            self._reset_at = reset_at
        elif reset_at >= self._reset_at - _SAME_WINDOW:
            # The same window. Replies can arrive out of order, or be read late: the
            # smallest figure is the newest, and the earliest reset the best estimate
            # (reading a reply late only pushes its reset later).
            self._remaining = min(self._remaining, remaining)
            self._reset_at = min(self._reset_at, reset_at)
        self._announced = True
        self._heard = True
        return True


def _header_int(value: str) -> int:
    """A header's non-negative integer; ``ValueError`` for anything else (or absurd)."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18):
        raise ValueError(value)
    return int(value)


def _loop_time(deadline: float | None) -> float | None:
    """``deadline`` (monotonic) on the running loop's clock."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())
