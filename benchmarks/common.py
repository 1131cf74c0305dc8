"""Shared pieces: run modes, interleaved rounds, result tables and target verdicts."""

from __future__ import annotations

import contextlib
import enum
import importlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from margin_async import _envelope as envelope

__all__ = [
    "FAST_JSON",
    "Mode",
    "Report",
    "Target",
    "fast_json",
    "fmt",
    "interleave",
    "median",
    "optional_import",
    "stdlib_json",
]

#: The ``fast`` extra's reply decoder (msgspec) when it is installed, else ``None``.
#: Every benchmark measures the default path, the standard library's json, unless a row
#: says otherwise (inside :func:`fast_json`): the targets are the default path's.
FAST_JSON: Callable[[bytes], Any] | None = envelope._fast_decoder()


@contextlib.contextmanager
def _decoder(decoder: Callable[[bytes], Any] | None) -> Iterator[None]:
    saved = envelope._fast_loads
    envelope._fast_loads = decoder
    try:
        yield
    finally:
        envelope._fast_loads = saved


def fast_json() -> contextlib.AbstractContextManager[None]:
    """Decode replies with the ``fast`` extra (msgspec) inside the block."""
    return _decoder(FAST_JSON)


def stdlib_json() -> contextlib.AbstractContextManager[None]:
    """Decode replies with the standard library's json inside the block (the default)."""
    return _decoder(None)


class Mode(enum.Enum):
    """How big a run is: ``smoke`` (seconds, for tests), ``quick`` (< 2 min), ``full``."""

    SMOKE = "smoke"
    QUICK = "quick"
    FULL = "full"

    def pick(self, smoke: int, quick: int, full: int) -> int:
        return {Mode.SMOKE: smoke, Mode.QUICK: quick, Mode.FULL: full}[self]

    def pickf(self, smoke: float, quick: float, full: float) -> float:
        return {Mode.SMOKE: smoke, Mode.QUICK: quick, Mode.FULL: full}[self]


@dataclass
class Target:
    """One target of the issue: ``met`` is ``None`` when it could not be measured."""

    text: str
    met: bool | None
    detail: str = ""

    def render(self) -> str:
        mark = {True: "MET", False: "MISSED", None: "N/A"}[self.met]
        return f"- **{mark}** {self.text}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Report:
    """One benchmark's result: a table, notes, and target verdicts."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        """The report as Markdown (readable as plain text too)."""
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", line(self.columns)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out += [line(row) for row in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {note}" for note in self.notes]
        if self.targets:
            out += ["", "Targets:", ""]
            out += [t.render() for t in self.targets]
        return "\n".join(out) + "\n"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    """A number with thousands separators (``nan`` as a dash)."""
    if value != value:  # nan
        return "–"
    return f"{value:,.{digits}f}"


def interleave(rounds: int, contenders: Sequence[Callable[[], float]]) -> list[list[float]]:
    """Run ``contenders`` in turn for ``rounds`` rounds (A, B, C, A, B, C, ...).

    Returns one list of measurements per contender, in the order given.
    """
    results: list[list[float]] = [[] for _ in contenders]
    for _ in range(rounds):
        for i, contender in enumerate(contenders):
            results[i].append(contender())
    return results


def optional_import(name: str) -> ModuleType | None:
    """Import a peer library if it is installed (the ``bench`` extra), else ``None``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
