"""What one run of the command knows beyond its arguments: the secrets it must never
print, and where its borrow/repay stands (read after Ctrl-C, once the loop is gone)."""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import sys
from collections.abc import Iterator

import attrs

from margin_async import Credentials

__all__ = ["PROG", "Money", "Movement", "RunState", "logging_to_stderr"]

PROG = "margin-async"
_REDACTED = "[redacted]"
# A "secret" this short cannot be told from ordinary text: hiding it would garble every
# message ("margin-a[redacted]ync" for a secret "s"), and no exchange issues one.
_MIN_SECRET = 4

_log = logging.getLogger("margin_async")
_asyncio_log = logging.getLogger("asyncio")


class Money(enum.Enum):
    """Where the borrow/repay of this run stands, for an interrupt to report."""

    #: Not started: an interrupt now sends nothing (exit 130).
    NOT_STARTED = "not started"
    #: Started, outcome not known: it may have been sent and applied (exit 6).
    IN_FLIGHT = "in flight"
    #: Its outcome is known and was reported (a result written, or a refusal raised).
    SETTLED = "settled"


@attrs.frozen
class Movement:
    """The borrow or repay a run is about to make, and how to look it up afterwards."""

    #: ``"borrow"`` or ``"repay"``.
    name: str
    #: The history command that shows it, or ``None`` when there is nothing to look up
    #: (a ``--sandbox`` exchange ends with the command).
    lookup: str | None

    def advice(self) -> str:
        """What to do about an outcome that is unknown."""
        if self.lookup is None:
            return "the --sandbox exchange ended with this command, so there is nothing to check"
        return f"check the history ({self.lookup}) before trying again"


@attrs.define
class RunState:
    """State of one ``main`` run that outlives the event loop."""

    money: Money = Money.NOT_STARTED
    #: Set by a command that moves money, before anything is sent.
    movement: Movement | None = None
    #: Said after an error or an interrupt: what was left unfinished ("x.csv is partial").
    unfinished: str | None = None
    #: Whether the terminal's cursor is known to be at the start of a line (a progress
    #: display just ended its lines), so a message needs no newline before it.
    line_start: bool = False
    #: Set when SIGTERM stopped the run (it is reported as an interrupt, by that name).
    terminated: bool = False
    _forms: set[str] = attrs.field(factory=set, init=False)
    _noted: set[str] = attrs.field(factory=set, init=False)

    def add_secret(self, secret: str) -> None:
        """Never print ``secret`` (nor its JSON- or repr-escaped spellings)."""
        if len(secret) >= _MIN_SECRET:
            self._forms |= {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}

    def note(self, text: str) -> None:
        """Say ``text`` on stderr, once per run however often it is noted."""
        if text not in self._noted:
            self._noted.add(text)
            sys.stderr.write(f"{PROG}: {text}\n")
            sys.stderr.flush()

    def add_credentials(self, creds: Credentials) -> None:
        """Never print the secret, the passphrase or the signed passphrase header.

        The API key is no secret (it is in ``repr(Credentials)`` and in the exchange's
        own messages), so it is left alone.
        """
        self.add_secret(creds.api_secret)
        self.add_secret(creds.api_passphrase)
        # The KC-API-PASSPHRASE header, reusable on its own: a reply may echo it back.
        mac = hmac.new(creds.api_secret.encode(), creds.api_passphrase.encode(), hashlib.sha256)
        self.add_secret(base64.b64encode(mac.digest()).decode())

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[redacted]``."""
        # Longest first: an escaped spelling can contain the raw one.
        for form in sorted(self._forms, key=len, reverse=True):
            text = text.replace(form, _REDACTED)
        return text


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is at the moment."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _ScrubbingFormatter(logging.Formatter):
    """Formats a record (and its traceback), then removes the run's secrets from it."""

    def __init__(self, state: RunState) -> None:
        super().__init__(f"{PROG}: %(levelname)s: %(name)s: %(message)s")
        self._state = state

    def format(self, record: logging.LogRecord) -> str:
        return self._state.scrub(super().format(record))


@contextlib.contextmanager
def logging_to_stderr(debug: bool, state: RunState) -> Iterator[None]:
    """margin_async's log on stderr (DEBUG with --debug, else warnings only) while the
    command runs; the loggers are restored afterwards, as ``main`` may run in-process."""
    # sys.stderr as it is when a record is written: a live progress display puts its own
    # there, which prints the record above the display instead of across it.
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(_ScrubbingFormatter(state))
    # asyncio's own reports ("Task exception was never retrieved") can quote an error
    # message too: they go through the same scrubbing handler, warnings only.
    levels = {_log: logging.DEBUG if debug else logging.WARNING, _asyncio_log: logging.WARNING}
    saved = [(logger, logger.level, logger.propagate) for logger in levels]
    for logger, level in levels.items():
        logger.addHandler(handler)
        logger.setLevel(level)
        # Not also through the root logger: each message once, in our format.
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
