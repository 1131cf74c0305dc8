"""How every example ends, the way the ``margin-async`` command line does.

When the reader of the output goes away (``python examples/stream_to_jsonl.py --sandbox
| head``), the next write raises ``BrokenPipeError``: the example stops quietly, with no
traceback, and exits 141 (128 + SIGPIPE, as shell tools and ``margin-async`` do).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

#: The reader of the output went away: 128 + SIGPIPE, like ``margin-async``.
EXIT_BROKEN_PIPE = 141


def run_example(main: Callable[[], int | None]) -> NoReturn:
    """Run ``main`` and exit with its status (``None`` is 0), or 141 if stdout broke."""
    try:
        status = main()
        sys.stdout.flush()  # inside the try: a buffered write may be the one that breaks
    except BrokenPipeError:
        # Point stdout at devnull, or the interpreter's own flush at exit fails again
        # ("Exception ignored ... BrokenPipeError") and turns the status into 120.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    sys.exit(status)
