"""Stopping gracefully on SIGINT and SIGTERM, for the commands that run until told to
stop (``sandbox``, ``sync --follow``).

Elsewhere Ctrl-C cancels the run and SIGTERM does the same (``_app``); a command that
has a clean way to stop installs :func:`stop_on_signals` while it runs, whose handlers
take the place of those (asyncio keeps one handler per signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

__all__ = ["stop_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Not on Windows (NotImplementedError), nor outside the main thread (RuntimeError,
# ValueError: a test running main() in a thread): there Ctrl-C still interrupts.
_UNSUPPORTED = (NotImplementedError, RuntimeError, ValueError)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGINT and SIGTERM set (instead of interrupting or killing) while
    the block runs; the handlers are removed after it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        with contextlib.suppress(*_UNSUPPORTED):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            with contextlib.suppress(*_UNSUPPORTED):
                loop.remove_signal_handler(sig)
