"""Where a command's output goes: a text stream (stdout, ``--output FILE``), or, while a
progress display runs on the same terminal, the lines above that display.

A :class:`Sink` takes text (JSON lines, CSV) and ``rich`` renderables (tables). Above a
running display, text is held until :meth:`Sink.flush` (the end of a page) and then
printed by the display's console in one piece, above the display: the display and the
output never share a line, and the display is redrawn once per page, not per record.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from margin_async.cli._progress import Display

__all__ = ["Sink", "sink_for"]

# A terminal-less output has no width: a table is as wide as its columns need.
_UNBOUNDED: Final = 1_000_000
# Text held for the terminal is printed at the latest past this many characters.
_HOLD = 1 << 18


class Sink:
    """Output to ``stream`` (or above ``console``'s live display when it is given)."""

    def __init__(self, stream: TextIO, console: Console | None = None) -> None:
        self.stream = stream
        self._above = console
        self._held: list[str] = []
        self._size = 0
        self._console = console
        #: Records written so far (counted by the record writers).
        self.records = 0

    def isatty(self) -> bool:
        """Whether the output is for a person at a terminal."""
        return self._above is not None or self.stream.isatty()

    def write(self, text: str) -> int:
        """Write ``text`` (held until :meth:`flush` above a display)."""
        if self._above is None:
            return self.stream.write(text)
        self._held.append(text)
        self._size += len(text)
        if self._size > _HOLD:
            self.flush()
        return len(text)

    def flush(self) -> None:
        """Print the complete lines held for the display (a part line stays held)."""
        if self._above is None or not self._held:
            return
        text = "".join(self._held)
        cut = text.rfind("\n") + 1
        self._held = [text[cut:]] if cut < len(text) else []
        self._size = len(text) - cut
        if cut:
            # As typed: no markup, no highlighting, no wrapping (the terminal wraps).
            self._above.out(text[:cut], end="", highlight=False)

    def show(self, renderable: RenderableType) -> None:
        """Print a ``rich`` renderable (a table), after any text held before it."""
        self.flush()
        console = self.console()
        if console.is_terminal:
            console.print(renderable)
            return
        # A file or a pipe: the same text without the blanks that pad its last column.
        with console.capture() as captured:
            console.print(renderable)
        self.stream.write("\n".join(line.rstrip() for line in captured.get().split("\n")))

    def console(self) -> Console:
        """A ``rich`` console on this output: the terminal's width, else unbounded."""
        if self._console is None:
            from rich.console import Console

            terminal = self.stream.isatty()
            self._console = Console(
                file=self.stream,
                width=None if terminal else _UNBOUNDED,
                force_terminal=terminal,
                soft_wrap=False,
            )
        return self._console


def sink_for(stream: TextIO, display: Display | None) -> Sink:
    """The sink of ``stream``: above ``display`` when it runs and ``stream`` is the
    terminal's stdout, else the stream itself."""
    console = None if display is None else display.console
    if console is not None and stream is sys.stdout and stream.isatty():
        return Sink(stream, console)
    return Sink(stream)
