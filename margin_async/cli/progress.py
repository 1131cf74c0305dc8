"""Progress of a long stream on the terminal (stderr): one line redrawn in place.

Kept apart from the record writers of :mod:`margin_async.cli.output` so a richer
display can replace it without touching the commands' output.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

__all__ = ["Progress", "show_progress"]


def show_progress(args: argparse.Namespace) -> bool:
    """``--progress``/``--no-progress``, else only when stderr is a terminal."""
    forced: bool | None = getattr(args, "progress", None)
    return sys.stderr.isatty() if forced is None else forced


def _count(n: float) -> str:
    return f"{n:,.0f}"


class Progress:
    """A one-line progress bar redrawn in place with ``\\r`` (no dependency).

    Shows records, pages and records per second, and a bar once the total is known.
    Redraws at most ``fps`` times a second so a fast stream is not slowed by the terminal.
    """

    _BAR = 24

    def __init__(self, out: TextIO, label: str, *, enabled: bool = True, fps: float = 10.0) -> None:
        self._out = out
        self._label = label
        self._enabled = enabled
        self._interval = 1.0 / fps
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0
        self.records = 0
        self.pages = 0
        self.total_records: int | None = None
        self.total_pages: int | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the bar was created."""
        return time.monotonic() - self._started

    @property
    def rate(self) -> float:
        """Records per second so far."""
        elapsed = self.elapsed
        return self.records / elapsed if elapsed > 0 else 0.0

    def page(self, records: int, *, total_records: int | None, total_pages: int | None) -> None:
        """Count one page of ``records`` items; the totals come from the API's counters."""
        self.pages += 1
        self.records += records
        if total_records is not None:
            self.total_records = total_records
        if total_pages is not None:
            self.total_pages = total_pages
        now = time.monotonic()
        if now - self._drawn_at >= self._interval:
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if not self._enabled:
            return
        self._draw()
        self._out.write("\n")
        self._out.flush()

    def clear(self) -> None:
        """Erase the bar (before an error message, for instance)."""
        if self._enabled and self._width:
            self._out.write("\r" + " " * self._width + "\r")
            self._out.flush()
            self._width = 0

    def _draw(self) -> None:
        if not self._enabled:
            return
        parts = [self._label]
        total = self.total_records
        if total:
            done = min(self.records / total, 1.0)
            filled = int(done * self._BAR)
            parts.append(f"[{'#' * filled}{'.' * (self._BAR - filled)}] {done:4.0%}")
            parts.append(f"{_count(self.records)}/{_count(total)} records")
        else:
            parts.append(f"{_count(self.records)} records")
        pages = f"{self.pages}/{self.total_pages}" if self.total_pages else str(self.pages)
        parts.append(f"{pages} pages")
        parts.append(f"{_count(self.rate)} rec/s")
        line = "  ".join(parts)
        # Pad over the previous, possibly longer, line instead of clearing the terminal.
        padding = " " * max(0, self._width - len(line))
        self._out.write("\r" + line + padding)
        self._out.flush()
        self._width = len(line)
