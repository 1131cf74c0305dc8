"""Fault injection for the fake exchange: scripted one-shot faults and random ones."""

from __future__ import annotations

import random
from collections.abc import Iterable
from http import HTTPStatus
from typing import Final, Literal, get_args

import attrs

from margin_async.testing._checks import check_int, check_seconds

__all__ = [
    "AFTER_KINDS",
    "BEFORE_KINDS",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "gateway_page",
]

#: Every kind of fault :meth:`FaultPlan.inject` and :meth:`FaultPlan.set_rate` know.
FaultKind = Literal[
    "5xx",
    "rate_limit",
    "drop_before",
    "apply_then_5xx",
    "apply_then_drop",
    "apply_then_stall",
    "latency",
]
_KINDS: Final = frozenset(get_args(FaultKind))
#: Faults answered before the request is looked at (nothing applied, no weight charged).
BEFORE_KINDS: Final = frozenset({"5xx", "rate_limit", "drop_before"})
#: Faults applied after the request was fully processed (money may have moved).
AFTER_KINDS: Final = frozenset({"apply_then_5xx", "apply_then_drop", "apply_then_stall"})
_RANDOM_STATUSES: Final = (502, 503, 504)
_MAX_TIMES: Final = 10**9
_MAX_RESET_MS: Final = 10**18 - 1


@attrs.define
class Fault:
    """One scripted fault.

    ``route`` is ``"METHOD /path"`` or ``None`` (any signed API route); ``remaining`` is
    how many more matching requests it hits; ``status`` the HTTP status of a 5xx page;
    ``stall`` seconds an ``apply_then_stall`` holds the reply; ``latency`` seconds a
    ``latency`` fault adds; ``reset_ms`` the ``gw-ratelimit-reset`` of an injected 429.
    """

    kind: FaultKind
    route: str | None = None
    remaining: int = 1
    status: int = 502
    stall: float = 30.0
    latency: float = 0.05
    reset_ms: int = 100

    def matches(self, route: str, signed: bool) -> bool:
        """Whether a request on ``route`` is one this fault targets."""
        return route == self.route if self.route is not None else signed


def _check_kind(kind: object) -> FaultKind:
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_KINDS)}")
    return kind  # type: ignore[return-value]


class FaultPlan:
    """The faults still to serve: a FIFO of scripted ones, then an optional random rate."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._probability = 0.0
        self._kinds: tuple[FaultKind, ...] = ()
        self._rng = random.Random(0)
        self._latency = 0.05

    def inject(
        self,
        kind: str,
        *,
        route: str | None = None,
        times: int = 1,
        status: int = 502,
        stall: float = 30.0,
        latency: float = 0.05,
        reset_ms: int = 100,
    ) -> None:
        """Queue ``times`` faults of ``kind`` for requests matching ``route``."""
        checked = _check_kind(kind)
        check_int(times, "times", 1, _MAX_TIMES)
        check_int(status, "status", 500, 599)
        if route is not None and (
            not isinstance(route, str)
            or len(route.split(" ")) != 2
            or not route.split(" ")[1].startswith("/")
        ):
            raise ValueError(f"route must look like 'POST /api/v3/margin/borrow', got {route!r}")
        fault = Fault(
            checked,
            route,
            times,
            status,
            check_seconds(stall, "stall"),
            check_seconds(latency, "latency"),
            # Any reset up to what a header can carry: an absurd one is a reply the
            # client under test must survive, so the fake serves it on request.
            check_int(reset_ms, "reset_ms", 0, _MAX_RESET_MS),
        )
        self._queue.append(fault)

    def set_rate(
        self, probability: float, kinds: Iterable[str], *, seed: int, latency: float
    ) -> None:
        """Give each read request a ``probability`` chance of one fault drawn from ``kinds``."""
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise TypeError(f"probability must be a number, got {probability!r}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        if isinstance(kinds, str):
            raise TypeError("kinds must be an iterable of kinds, not one str")
        checked = tuple(_check_kind(kind) for kind in kinds)
        if probability > 0 and not checked:
            raise ValueError("kinds must not be empty")
        check_int(seed, "seed", -(2**63), 2**63 - 1)
        latency = check_seconds(latency, "latency")
        self._probability = probability
        self._kinds = checked
        self._rng = random.Random(seed)
        self._latency = latency

    def clear(self) -> None:
        """Drop every queued fault and switch random faults off."""
        self._queue.clear()
        self._probability = 0.0

    @property
    def pending(self) -> int:
        """How many scripted faults are still queued (counting ``times``)."""
        return sum(fault.remaining for fault in self._queue)

    def take(self, route: str, *, signed: bool, read: bool) -> Fault | None:
        """The fault this request gets, if any (a scripted one is consumed)."""
        for index, fault in enumerate(self._queue):
            if fault.matches(route, signed):
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self._queue[index]
                return fault
        if read and self._probability > 0 and self._rng.random() < self._probability:
            kind = self._rng.choice(self._kinds)
            return Fault(kind, status=self._rng.choice(_RANDOM_STATUSES), latency=self._latency)
        return None


def gateway_page(status: int) -> bytes:
    """An HTML error page like the exchange's gateway serves (``text/html``)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Server Error"
    title = f"{status} {reason}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")
