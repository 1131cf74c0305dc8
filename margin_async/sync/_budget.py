"""Headroom: the share of an account's rate limit that the mirror leaves to others.

KuCoin limits each account (UID) to a quota of request weight per 30 s window (4000 at
VIP0), shared by everything using that account: the mirror, and the bots that borrow and
repay. The mirror must not starve them. For each account, it sends a history request
only while both hold:

* its own weight over the last ``window`` seconds (a sliding window, so every exchange
  window is covered whatever its phase) stays within ``(1 - headroom) * quota``;
* the ``gw-ratelimit-remaining`` last reported for the account, less what the mirror
  spent since, stays at or above ``headroom * quota`` (others are spending too).

Otherwise it waits (the SDK's own rate budget still guards every request against 429s).
With the defaults (``quota=4000``, ``headroom=0.25``), the mirror spends at most 3000
weight per 30 s per account (150 interest pages, 75,000 records) and backs off whenever
fewer than 1000 remain.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

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


class Headroom:
    """The mirror's budget for one account (see the module docstring)."""

    __slots__ = ("_allowance", "_reserve", "_seen", "_sent", "_spent", "_window")

    def __init__(self, *, quota: int, headroom: float, window: float) -> None:
        check(quota=quota, headroom=headroom, window=window)
        self._allowance = math.floor(quota * (1 - headroom))
        self._reserve = math.ceil(quota * headroom)
        self._window = float(window)
        self._sent: deque[tuple[float, int]] = deque()  # (monotonic time, weight)
        self._spent = 0  # weight in _sent
        #: Remaining last reported by the exchange, less the mirror's weight since.
        self._seen: int | None = None

    @property
    def allowance(self) -> int:
        """Weight the mirror may spend per window."""
        return self._allowance

    @property
    def reserve(self) -> int:
        """Weight the mirror leaves to others."""
        return self._reserve

    def observe(self, remaining: int) -> None:
        """A reply of this account said ``gw-ratelimit-remaining: remaining``."""
        self._seen = remaining

    async def spend(self, weight: int) -> None:
        """Wait until ``weight`` may be sent, and count it."""
        while True:
            now = time.monotonic()
            sent = self._sent
            while sent and sent[0][0] <= now - self._window:
                self._spent -= sent.popleft()[1]
            if self._spent + weight > self._allowance:
                await asyncio.sleep(sent[0][0] + self._window - now)
                continue
            if self._seen is not None and self._seen - weight < self._reserve:
                # Others are spending this account's quota: leave them the reserve. The
                # figure is stale once waited on, so the next request looks again.
                self._seen = None
                await asyncio.sleep(self._window * _RECHECK)
                continue
            sent.append((now, weight))
            self._spent += weight
            if self._seen is not None:
                self._seen -= weight
            return


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
