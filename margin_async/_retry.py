"""When a failed request may be sent again, and how long to wait first."""

from __future__ import annotations

import enum
import math
import random

import attrs

from margin_async._errors import ValidationError
from margin_async._request import Request, Safety

__all__ = ["Failure", "RetryPolicy"]


class Failure(enum.Enum):
    """What is known about a failed attempt, which decides whether it may be resent."""

    #: The connection was never established: the exchange cannot have seen the request.
    NOT_SENT = "not sent"
    #: The exchange refused it before processing (HTTP 429, or 400002 bad timestamp).
    REFUSED = "refused"
    #: Sent, but no usable answer (timeout, reset, HTTP 5xx): it may have been applied.
    AMBIGUOUS = "ambiguous"


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValidationError(attribute.name, f"must be a finite number >= 0, got {value!r}")


def _boolean(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be True or False, got {value!r}")


def _attempts(_: object, __: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("attempts", f"must be an int >= 1, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """Retry settings: exponential backoff with full jitter.

    ``attempts`` counts the first try (4 means up to three resends). The n-th resend
    waits a random time in ``[0, min(max_delay, base_delay * 2**(n-1))]`` seconds, or
    exactly that bound when ``jitter`` is off; a rate-limit reset announced by the
    exchange is waited for instead when it is longer.

    Reads and leverage are resent after any failure; borrow and repay only when the
    request provably never reached the exchange or was refused before processing.
    """

    attempts: int = attrs.field(default=4, validator=_attempts)
    #: Seconds before the first resend (before jitter).
    base_delay: float = attrs.field(default=0.25, validator=_positive)
    #: Upper bound of any backoff wait, seconds.
    max_delay: float = attrs.field(default=8.0, validator=_positive)
    jitter: bool = attrs.field(default=True, validator=_boolean)

    def delay(self, resend: int) -> float:
        """Seconds to wait before the ``resend``-th resend (1 for the first)."""
        # The exponent is capped: a float 2.0 ** 1024 overflows (OverflowError), and
        # 2 ** 64 times any positive base is already past any sensible max_delay.
        bound = min(self.max_delay, self.base_delay * 2.0 ** min(resend - 1, 64))
        return random.uniform(0, bound) if self.jitter else bound

    @staticmethod
    def may_resend(request: Request, failure: Failure) -> bool:
        """Whether ``request`` may be sent again after ``failure`` (attempts aside)."""
        if request.safety is Safety.RETRYABLE:
            return True
        return failure is not Failure.AMBIGUOUS
