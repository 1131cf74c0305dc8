"""Tables for people, laid out by ``rich`` (the ``cli`` extra), streamed.

Records are printed a page at a time, each batch with the widths of all rows so far
(in terminal cells, so wide characters line up): a long history shows its first rows at
once and stays one table under one header. On a terminal rich fits the table to its
width; in a file or a pipe nothing is cut or folded. Times are UTC, numbers
right-aligned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.table import Column, Table

from margin_async.cli._sink import Sink
from margin_async.cli._values import cell

__all__ = ["TableWriter"]

# Rows held at most before a batch is printed, when no page ends first.
_SAMPLE = 200
# Blanks between two columns.
_GAP = 2


def _words(values: Sequence[str]) -> bool:
    """Whether a column's values are several words (a time: date and clock)."""
    filled = [v for v in values if v]
    return bool(filled) and all(" " in v for v in filled)


def _numbers(field: str, values: Sequence[str]) -> bool:
    """Whether a column holds amounts (right-aligned, so the digits line up); an order
    number of digits only is still an identifier."""
    if field.endswith("_no"):
        return False
    return bool(values) and all(_is_number(v) or not v for v in values)


def _is_number(text: str) -> bool:
    stripped = text.removeprefix("-")
    return bool(stripped) and stripped.replace(".", "", 1).isdigit()


class TableWriter:
    """Writes records as one table on a :class:`~margin_async.cli._sink.Sink`, in batches:
    at each :meth:`flush` (a page), every ``sample`` rows, and at :meth:`close`.

    The first batch fixes the header and the alignment; a column only ever widens (a
    wider value widens its batch and every later one), so numbers and order numbers are
    never cut. Too wide for the terminal, a column of times takes two lines per row
    ("2024-10-23" above "04:26:20.449Z"); only then does rich fold anything else.
    """

    def __init__(self, sink: Sink, *, sample: int = _SAMPLE) -> None:
        self._sink = sink
        self._sample = sample
        self._pending: list[list[str]] = []
        self._fields: list[str] | None = None
        self._widths: list[int] | None = None
        self._right: list[bool] = []

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one record."""
        if self._fields is None:
            self._fields = list(row)
        self._pending.append([cell(field, row.get(field)) for field in self._fields])
        if len(self._pending) >= self._sample:
            self._print()

    def flush(self) -> None:
        """Print the rows held."""
        if self._pending:
            self._print()

    def close(self) -> None:
        """Print the rows still held."""
        self.flush()

    def _print(self) -> None:
        assert self._fields is not None
        columns = list(zip(*self._pending, strict=True))
        natural = [
            max([cell_len(name), *(cell_len(v) for v in values)])
            for name, values in zip(self._fields, columns, strict=True)
        ]
        header = self._widths is None
        if self._widths is None:
            self._widths = natural
            self._right = [_numbers(f, v) for f, v in zip(self._fields, columns, strict=True)]
        else:
            self._widths = [max(a, b) for a, b in zip(self._widths, natural, strict=True)]
        table = Table(
            *(
                Column(
                    name.upper(), justify="right" if right else "left", width=width, overflow="fold"
                )
                for name, right, width in zip(
                    self._fields, self._right, self._fit(columns), strict=True
                )
            ),
            box=None,
            padding=(0, _GAP // 2),
            pad_edge=False,
            show_header=header,
            header_style="bold",
            highlight=False,
        )
        for cells in self._pending:
            table.add_row(*cells)
        self._sink.show(table)
        self._sink.records += len(self._pending)
        self._pending.clear()

    def _fit(self, columns: Sequence[Sequence[str]]) -> list[int]:
        """The widths to print with: as wide as needed, unless the terminal is narrower."""
        assert self._widths is not None and self._fields is not None
        console = self._sink.console()
        total = sum(self._widths) + _GAP * (len(self._widths) - 1)
        if not console.is_terminal or total <= console.width:
            return self._widths
        return [
            max(cell_len(name), *map(cell_len, " ".join(values).split()))
            if _words(values)
            else width
            for name, values, width in zip(self._fields, columns, self._widths, strict=True)
        ]
