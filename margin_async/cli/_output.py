"""Where and how records are written: table, JSON lines or CSV, on stdout or a file.

Amounts are written as the exact decimal strings of :func:`margin_async.to_dict` in
every format (never floats), so a pipeline can sum them as ``Decimal`` without loss.
The format is ``--format``, else the ``--output`` file's extension (an unknown one is
refused), else a table on a terminal (with the ``cli`` extra) and JSON lines elsewhere.
Tables are :mod:`margin_async.cli._table`'s; progress is :mod:`margin_async.cli._progress`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from margin_async.cli._errors import UsageError
from margin_async.cli._extra import NOTE, has_rich, needs_rich
from margin_async.cli._sink import Sink, sink_for
from margin_async.cli._state import RunState
from margin_async.cli._values import text

if TYPE_CHECKING:
    from margin_async.cli._progress import Display

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "CsvWriter",
    "Format",
    "JsonLinesWriter",
    "RecordWriter",
    "choose_format",
    "make_writer",
    "open_output",
    "render_table",
    "show_rows",
    "write_rows",
]

Format = Literal["table", "jsonl", "csv"]
#: The output formats, in the order ``--help`` lists them.
FORMATS: Final[tuple[Format, ...]] = ("table", "jsonl", "csv")
#: The ``--output`` extensions that name a format (any other needs ``--format``).
EXTENSIONS: Final[dict[str, Format]] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


class RecordWriter(Protocol):
    """Writes flat records (``to_dict`` output) to a :class:`~margin_async.cli._sink.Sink`
    (and counts them there, in ``Sink.records``, once they are out)."""

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record."""

    def flush(self) -> None:
        """Send what is written so far on (the end of a page)."""

    def close(self) -> None:
        """Write whatever is held back (the sink itself is left open)."""


class JsonLinesWriter:
    """One compact JSON object per line; amounts stay strings (exact)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record as a JSON line."""
        self._sink.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
        self._sink.records += 1

    def flush(self) -> None:
        """Send the lines on (above a progress display, they were held)."""
        self._sink.flush()

    def close(self) -> None:
        """Send the lines on."""
        self._sink.flush()


class CsvWriter:
    """A header line (the first record's field names), then one row per record."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._writer: csv.DictWriter[str] | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one record (and the header before the first)."""
        if self._writer is None:
            self._writer = csv.DictWriter(self._sink, fieldnames=list(row), lineterminator="\n")
            self._writer.writeheader()
        self._writer.writerow({key: text(value) for key, value in row.items()})
        self._sink.records += 1

    def flush(self) -> None:
        """Send the rows on (above a progress display, they were held)."""
        self._sink.flush()

    def close(self) -> None:
        """Send the rows on."""
        self._sink.flush()


def make_writer(fmt: Format, sink: Sink) -> RecordWriter:
    """The writer of ``fmt`` on ``sink``."""
    if fmt == "jsonl":
        return JsonLinesWriter(sink)
    if fmt == "csv":
        return CsvWriter(sink)
    from margin_async.cli._table import TableWriter  # rich: only for a table

    return TableWriter(sink)


def render_table(rows: Iterable[Mapping[str, Any]], sink: Sink) -> None:
    """Write a whole (short) table at once."""
    from margin_async.cli._table import TableWriter

    writer = TableWriter(sink)
    for row in rows:
        writer.write(row)
    writer.close()


def show_rows(rows: Iterable[Mapping[str, Any]], sink: Sink, state: RunState) -> None:
    """A short table for people; without the ``cli`` extra, JSON lines (and the note)."""
    if has_rich():
        render_table(rows, sink)
        return
    state.note(NOTE)
    writer = JsonLinesWriter(sink)
    for row in rows:
        writer.write(row)
    writer.close()


@contextlib.contextmanager
def open_output(
    path: str | None, state: RunState, display: Display | None = None
) -> Iterator[Sink]:
    """``--output FILE`` opened for writing, else stdout (``None`` or ``-``), above
    ``display`` when it runs on the terminal. A run that ends early leaves a file that
    :attr:`RunState.unfinished` calls partial."""
    if path is None or path == "-":
        sink = sink_for(sys.stdout, display)
        try:
            yield sink
        finally:
            sink.flush()
        return
    try:
        # newline="" lets the csv module write its own line endings.
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        sink = Sink(handle)
        try:
            yield sink
        except BaseException:
            state.unfinished = f"{path} is partial ({sink.records:,} records written)"
            raise


def choose_format(args: argparse.Namespace, state: RunState) -> Format:
    """``--format``, else the ``--output`` file's extension, else a table on a terminal.

    An extension that names no format is refused; without the ``cli`` extra, a table
    asked for is refused and a terminal's default table becomes JSON lines (and a note).
    """
    chosen: Format | None = getattr(args, "format", None)
    output: str | None = getattr(args, "output", None)
    if chosen is None and output not in (None, "-"):
        assert output is not None
        suffix = Path(output).suffix.lower()
        chosen = EXTENSIONS.get(suffix)
        if chosen is None:
            what = f"unknown extension {suffix}" if suffix else "no extension"
            known = ", ".join(EXTENSIONS)
            raise UsageError(
                f"--output {output}: {what}, so no format (use {known}, or give --format)"
            )
    if chosen == "table":
        needs_rich("--format table")
    if chosen is not None:
        return chosen
    if not sys.stdout.isatty():
        return "jsonl"
    if has_rich():
        return "table"
    state.note(NOTE)
    return "jsonl"


def write_rows(
    args: argparse.Namespace, state: RunState, rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write a few records (a command's result) as ``--format``/``--output`` say."""
    fmt = choose_format(args, state)
    with open_output(getattr(args, "output", None), state) as sink:
        writer = make_writer(fmt, sink)
        for row in rows:
            writer.write(row)
        writer.close()
