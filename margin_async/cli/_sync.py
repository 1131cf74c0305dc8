"""``margin-async sync``: the exactly-once database mirror (:mod:`margin_async.sync`).

The command itself lives with the mirror (``margin_async.sync._command``, which also runs
alone as ``python -m margin_async.sync``); this module mounts it in ``margin-async`` with
the CLI's connection options, exit codes and secret scrubbing.
"""

from __future__ import annotations

import argparse

from margin_async.cli._parser import Commands
from margin_async.cli._state import RunState
from margin_async.sync._command import EPILOG, HELP, add_arguments
from margin_async.sync._command import run as run_sync

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``sync`` to ``commands``."""
    parser = commands.add("sync", HELP, _run, epilog=EPILOG)
    add_arguments(parser, connection=False)


async def _run(args: argparse.Namespace, state: RunState) -> None:
    # Each account's secrets are scrubbed from anything the run prints, as for the
    # CLI's own commands.
    await run_sync(args, on_credentials=state.add_credentials)
