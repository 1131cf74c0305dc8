"""Output of the ``margin-async`` command: table, JSON lines and CSV writers, and a
one-line progress bar.

Amounts are written as the exact decimal strings of :func:`margin_async.convert.to_dict`
in every format (never floats), so a pipeline can sum them as ``Decimal`` without loss.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TextIO

__all__ = [
    "FORMATS",
    "CsvWriter",
    "Format",
    "JsonLinesWriter",
    "Progress",
    "RecordWriter",
    "TableWriter",
    "make_writer",
    "render_table",
]

Format = Literal["table", "jsonl", "csv"]
#: The output formats, in the order ``--help`` lists them.
FORMATS: Final[tuple[Format, ...]] = ("table", "jsonl", "csv")

# Rows a table waits for before it fixes its column widths: enough for the widths to be
# right in practice, few enough that the first rows of a long stream show at once.
_TABLE_SAMPLE = 200
# Fields whose values are epoch milliseconds; the table shows them as UTC times.
_TIME_FIELDS = frozenset({"created_time", "timestamp"})


class RecordWriter(Protocol):
    """Writes flat records (``to_dict`` output) to a text stream, one at a time."""

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record."""

    def close(self) -> None:
        """Write whatever is buffered (the stream itself is left open)."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _human(field: str, value: Any) -> str:
    if field in _TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value // 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)  # past what a calendar can show (year 9999): the raw ms
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{value % 1000:03d}Z"
    return _text(value)


def _is_number(text: str) -> bool:
    # Exact decimal strings and integers are right-aligned so the digits line up.
    stripped = text.removeprefix("-")
    return bool(stripped) and stripped.replace(".", "", 1).isdigit()


class JsonLinesWriter:
    """One compact JSON object per line; amounts stay strings (exact)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record as a JSON line."""
        self._out.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Nothing is buffered."""


class CsvWriter:
    """A header line (the first record's field names), then one row per record."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._writer: csv.DictWriter[str] | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record (and the header before the first)."""
        if self._writer is None:
            self._writer = csv.DictWriter(self._out, fieldnames=list(row), lineterminator="\n")
            self._writer.writeheader()
        self._writer.writerow({key: _text(value) for key, value in row.items()})

    def close(self) -> None:
        """Nothing is buffered."""


class TableWriter:
    """Aligned columns for people; times as UTC, amounts right-aligned.

    The first rows are held back to size the columns, then every row streams at once; a
    later, wider value widens only its own row rather than holding the whole stream.
    """

    def __init__(self, out: TextIO, *, sample: int = _TABLE_SAMPLE) -> None:
        self._out = out
        self._sample = sample
        self._pending: list[list[str]] = []
        self._fields: list[str] | None = None
        self._widths: list[int] | None = None
        self._numeric: list[bool] = []

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one record."""
        if self._fields is None:
            self._fields = list(row)
        cells = [_human(field, row.get(field)) for field in self._fields]
        if self._widths is not None:
            self._emit(cells)
            return
        self._pending.append(cells)
        if len(self._pending) >= self._sample:
            self._flush_pending()

    def close(self) -> None:
        """Write the rows still held back (all of them, for a short table)."""
        if self._widths is None and self._fields is not None:
            self._flush_pending()

    def _flush_pending(self) -> None:
        assert self._fields is not None
        columns = list(zip(*self._pending, strict=True)) if self._pending else []
        self._widths = [
            max([len(name), *(len(cell) for cell in column)])
            for name, column in zip(self._fields, columns, strict=True)
        ] or [len(name) for name in self._fields]
        self._numeric = [
            bool(column) and all(_is_number(cell) or not cell for cell in column)
            for column in columns
        ] or [False] * len(self._fields)
        self._line([name.upper() for name in self._fields], header=True)
        for cells in self._pending:
            self._emit(cells)
        self._pending.clear()

    def _emit(self, cells: Sequence[str]) -> None:
        self._line(cells, header=False)

    def _line(self, cells: Sequence[str], *, header: bool) -> None:
        assert self._widths is not None
        parts = []
        for cell, width, numeric in zip(cells, self._widths, self._numeric, strict=True):
            parts.append(cell.rjust(width) if numeric and not header else cell.ljust(width))
        self._out.write("  ".join(parts).rstrip() + "\n")


def make_writer(fmt: Format, out: TextIO) -> RecordWriter:
    """The writer of ``fmt`` on ``out``."""
    if fmt == "jsonl":
        return JsonLinesWriter(out)
    if fmt == "csv":
        return CsvWriter(out)
    return TableWriter(out)


def render_table(rows: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """Write a whole (short) table at once."""
    writer = TableWriter(out)
    for row in rows:
        writer.write(row)
    writer.close()


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
