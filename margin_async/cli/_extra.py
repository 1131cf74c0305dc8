"""The optional ``cli`` extra (``rich``): whether it is installed, and what to say when not.

``pip install margin-async`` stays lean; ``pip install "margin-async[cli]"`` adds rich
for the progress display and tables. Without it the CLI still writes JSON lines and CSV
exactly as with it (pipelines lose nothing), and says how to get the extra where it
would have made a difference:

- ``--format table`` or ``--progress`` asked for explicitly: refused (exit 2), with the
  ``pip install`` command;
- a table or a progress display that would have been the default (stdout or stderr is a
  terminal): JSON lines and no progress instead, and one note on stderr saying so
  (:data:`NOTE`), once per run.
"""

from __future__ import annotations

import functools
import importlib.util

from margin_async.cli._errors import UsageError

__all__ = ["INSTALL_EXTRA", "NOTE", "has_rich", "needs_rich"]

#: The command that adds the extra, as a person types it.
INSTALL_EXTRA = 'pip install "margin-async[cli]"'
#: Said once on stderr when a terminal would have had a table or a progress display.
NOTE = f"note: tables and progress need the cli extra: {INSTALL_EXTRA}"


@functools.cache
def has_rich() -> bool:
    """Whether ``rich`` can be imported (the ``cli`` extra is installed)."""
    try:
        return importlib.util.find_spec("rich") is not None
    except (ImportError, ValueError):
        return False


def needs_rich(what: str) -> None:
    """Refuse ``what`` (``"--format table"``), asked for explicitly, without the extra."""
    if not has_rich():
        raise UsageError(f"{what} needs the cli extra: {INSTALL_EXTRA}")
