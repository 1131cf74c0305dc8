"""What the session reports about each attempt and each wait, for logs, metrics and
progress displays."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["ResponseEvent", "ResponseHook", "WaitEvent", "WaitHook"]


@attrs.frozen
class ResponseEvent:
    """One finished attempt of one request (successful or not).

    Carries no secret and no query values: ``path`` is the bare path.
    """

    method: str
    path: str
    #: 1 for the first try, 2 for the first resend, ...
    attempt: int
    #: HTTP status, or ``None`` when no reply arrived (connection failure, timeout).
    status: int | None
    #: The envelope's ``code`` (``"200000"`` on success), when the reply had one.
    code: str | None
    #: Seconds from sending to the end of the reply (or the failure).
    latency: float
    #: ``gw-ratelimit-remaining`` of the reply, when present.
    ratelimit_remaining: int | None
    #: Short description of the failure, ``None`` on success.
    error: str | None = None
    #: Label of the client (e.g. its account name in a pool), if it was given one.
    label: str | None = None
    #: ``gw-ratelimit-reset`` of the reply (ms until the quota's window resets), when
    #: present.
    ratelimit_reset_ms: int | None = None


#: A callable invoked synchronously after every attempt; it must not block.
ResponseHook = Callable[[ResponseEvent], None]


@attrs.frozen
class WaitEvent:
    """A request is about to wait before it is sent.

    ``reason`` is ``"rate limit"`` (the account's weight budget is spent until the window
    resets) or ``"retry backoff"`` (a pause before resending); ``seconds`` is how long;
    ``label`` names the client (``MarginClient(label=...)``), as in :class:`ResponseEvent`.
    """

    reason: str
    seconds: float
    label: str | None = None


#: Called (synchronously, on the event loop) when a request starts waiting.
WaitHook = Callable[[WaitEvent], None]
