"""Where and how records are written: table, JSON lines or CSV, on stdout or a file.

Amounts are written as the exact decimal strings of :func:`margin_async.to_dict` in
every format (never floats), so a pipeline can sum them as ``Decimal`` without loss.
Progress on the terminal is :mod:`margin_async.cli.progress`'s job.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TextIO

from margin_async.cli.errors import UsageError

__all__ = [
    "FORMATS",
    "CsvWriter",
    "Format",
    "JsonLinesWriter",
    "RecordWriter",
    "TableWriter",
    "choose_format",
    "make_writer",
    "open_output",
    "plain",
    "render_table",
    "write_rows",
]

Format = Literal["table", "jsonl", "csv"]
#: The output formats, in the order ``--help`` lists them.
FORMATS: Final[tuple[Format, ...]] = ("table", "jsonl", "csv")

# Rows a table waits for before it fixes its column widths: enough for the widths to be
# right in practice, few enough that the first rows of a long stream show at once.
_TABLE_SAMPLE = 200
# Fields whose values are epoch milliseconds; the table shows them as UTC times.
_TIME_FIELDS = frozenset({"created_time", "timestamp"})
# Beyond this exponent a number is shown as typed: 1e999999999 has a billion digits.
_MAX_PLAIN_EXPONENT = 100


def plain(text: str) -> str:
    """A number typed by a person, in plain notation (``1e5`` -> ``100000``); anything
    that is not a number of sensible size is returned as it is."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return text
    if not value.is_finite() or abs(value.adjusted()) > _MAX_PLAIN_EXPONENT:
        return text
    return format(value, "f")


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
            self._line(cells, header=False)
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
            self._line(cells, header=False)
        self._pending.clear()

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


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[TextIO]:
    """``--output FILE`` opened for writing, or stdout (``None`` or ``-``)."""
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        # newline="" lets the csv module write its own line endings.
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        yield handle


def choose_format(args: argparse.Namespace, out: TextIO) -> Format:
    """``--format``, else from the output file's extension, else table on a terminal."""
    chosen: Format | None = getattr(args, "format", None)
    if chosen is not None:
        return chosen
    output = getattr(args, "output", None)
    if output:
        suffix = Path(output).suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
    return "table" if out.isatty() else "jsonl"


def write_rows(args: argparse.Namespace, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a few records (a command's result) as ``--format``/``--output`` say."""
    with open_output(getattr(args, "output", None)) as out:
        writer = make_writer(choose_format(args, out), out)
        for row in rows:
            writer.write(row)
        writer.close()
