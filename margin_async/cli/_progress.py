"""The progress display of a run on the terminal (stderr), drawn by ``rich``.

While it runs, the display owns the screen: whatever a command writes for that terminal
(records, tables, log lines) is printed above it by :class:`~margin_async.cli._sink.Sink`,
never across it, and the display is stopped (its last state left on its own lines)
before any message that ends the run. It shows records as they are written, and what it
waits for and for how long: ``waiting 12 s for the rate limit`` (the SDK's ``on_wait``
events), ``waiting 3 s for the exchange`` (a request without an answer yet).

Without ``rich`` (the ``cli`` extra) there is no display: see :mod:`margin_async.cli._extra`.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

import attrs

from margin_async.cli._extra import NOTE, has_rich, needs_rich
from margin_async.cli._state import RunState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["Display", "Stream", "WaitLike", "wants_progress"]

# A request unanswered this long is shown as a wait for the exchange.
_SLOW_S = 1.5
#: What each of the SDK's wait reasons is said as.
_REASONS = {"rate limit": "for the rate limit", "retry backoff": "before retrying"}


class WaitLike(Protocol):
    """The SDK's ``WaitEvent`` as the display reads it (no import: it may not exist yet)."""

    @property
    def reason(self) -> str: ...
    @property
    def seconds(self) -> float: ...


def wants_progress(args: argparse.Namespace) -> bool | None:
    """``--progress`` (True), ``--no-progress`` (False), or the default (None)."""
    forced: bool | None = getattr(args, "progress", None)
    return forced


@attrs.define
class _Wait:
    """The longest wait announced so far, until its end."""

    until: float = 0.0
    reason: str = ""


@attrs.define(eq=False)
class Stream:
    """One stream's line in the display: records written, of how many, since when."""

    _display: Display
    _task: TaskID | None
    records: int = 0
    #: Ended by an error or an interrupt (the display then says "stopped").
    stopped: bool = False
    #: What the command says of its progress instead of the pace and the exchange's
    #: silence (``sync``: the accounts and their lag; a quiet exchange is normal there).
    detail: str | None = None
    started: float = attrs.field(factory=time.monotonic)
    last: float = attrs.field(factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds from the start of the stream to its end (or to now)."""
        return (time.monotonic() if self.ended is None else self.ended) - self.started

    def advance(self, records: int, *, total: int | None = None) -> None:
        """Count ``records`` more written (once they are out), of ``total`` if known."""
        self.records += records
        self.last = time.monotonic()
        self._display.update(self, total)

    def status(self) -> str:
        """What the stream is doing now: waiting (for what, how long), else its
        :attr:`detail` or its pace."""
        if self.stopped:
            return "stopped"
        now = time.monotonic()
        wait = self._display.wait
        if wait.until > now:
            return f"waiting {math.ceil(wait.until - now)} s {wait.reason}"
        if self.detail is not None:
            return self.detail
        # Since the last page, or the end of the last announced wait, whichever is later.
        idle = now - max(self.last, wait.until)
        if idle >= _SLOW_S:
            # The SDK reports its own waits (on_wait): what is left is the exchange.
            return f"waiting {math.floor(idle)} s for the exchange"
        elapsed = now - self.started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return f"{rate:,.0f} records/s"


class Display:
    """The run's progress display: a context manager that starts and stops it.

    ``enabled`` is decided by :meth:`for_run`; a disabled display does nothing, and its
    streams only count.
    """

    def __init__(self, *, enabled: bool, state: RunState | None = None) -> None:
        self.enabled = enabled
        self.wait = _Wait()
        self._state = state
        self._progress: Progress | None = None

    @classmethod
    def for_run(cls, args: argparse.Namespace, state: RunState) -> Display:
        """``--progress``/``--no-progress``, else shown when stderr is a terminal and the
        output does not go into a pipe: the reader of a pipe (``| head``, ``| jq``) may
        well print on the same terminal, where no display can keep it above itself.

        Without ``rich``: ``--progress`` is refused, and a default display becomes the
        note of :mod:`~margin_async.cli._extra` (once per run).
        """
        forced = wants_progress(args)
        if forced:
            needs_rich("--progress")
        to_file = getattr(args, "output", None) not in (None, "-")
        default = sys.stderr.isatty() and (to_file or not _into_pipe(sys.stdout))
        enabled = default if forced is None else forced
        if enabled and not has_rich():
            state.note(NOTE)
            enabled = False
        return cls(enabled=enabled, state=state)

    @property
    def console(self) -> Console | None:
        """The console of the running display (``None`` when none runs)."""
        return None if self._progress is None else self._progress.console

    def __enter__(self) -> Display:
        if self.enabled:
            self._progress = _start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the display, its last state left on its own lines (idempotent)."""
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.stop()
            if self._state is not None:
                self._state.line_start = True

    def waiting(self, event: WaitLike) -> None:
        """The SDK's ``on_wait`` callback: a request starts waiting ``event.seconds``."""
        until = time.monotonic() + max(0.0, event.seconds)
        if until > self.wait.until:
            reason = _REASONS.get(event.reason, f"for the {event.reason}")
            self.wait = _Wait(until, reason)

    @contextmanager
    def stream(self, label: str) -> Iterator[Stream]:
        """A line for one stream (``"borrow history"``), finished when the block ends."""
        progress = self._progress
        task = None if progress is None else progress.add_task(label, total=None)
        line = Stream(self, task)
        if progress is not None and task is not None:
            progress.update(task, status=line.status)
        try:
            yield line
        except BaseException:
            line.stopped = True
            raise
        finally:
            line.ended = time.monotonic()
        if progress is not None and task is not None:
            # Done: the bar full at the records written, the elapsed time frozen.
            progress.update(task, total=line.records, completed=line.records)
            progress.stop_task(task)

    def update(self, line: Stream, total: int | None) -> None:
        """Show ``line``'s count (called by :meth:`Stream.advance`)."""
        if self._progress is not None and line._task is not None:
            self._progress.update(line._task, completed=line.records, total=total)


def _into_pipe(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe or a socket (another program reads it)."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return False  # not a file descriptor at all (a test's capture, for instance)
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _start() -> Progress:
    from margin_async.cli._columns import progress_display

    progress = progress_display()
    progress.start()
    return progress
