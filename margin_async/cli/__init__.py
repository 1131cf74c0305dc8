"""The ``margin-async`` command: borrow, repay, leverage and history from the shell.

Every command runs against the real exchange (credentials from ``--credentials FILE``
or the ``KUCOIN_API_*`` environment) or, with ``--sandbox``, against an embedded
:class:`~margin_async.testing.FakeKuCoin` seeded with history. ``margin-async sandbox``
serves such a fake for other programs; ``margin-async demo`` shows the SDK at work.

The package is a client of the public API only: it imports names from
``margin_async``, ``margin_async.testing`` and ``margin_async.sync``, nothing else of the
SDK, and leaves the judging of every SDK argument to the SDK (a ``ValidationError`` exits
2, said with the flag the person typed). One job per module:

- :mod:`~margin_async.cli._app`: ``main``: parse, run, exit status, Ctrl-C, one-line errors
- :mod:`~margin_async.cli._parser`: the parser, common options, subcommand registration
- :mod:`~margin_async.cli._errors`: exit statuses, ``UsageError``, SDK parameter -> flag
- :mod:`~margin_async.cli._state`: the run's secrets (scrubbed from all output) and money state
- :mod:`~margin_async.cli._credentials`: ``--credentials FILE`` and ``KUCOIN_API_*``
- :mod:`~margin_async.cli._exchange`: the client of the real exchange or of ``--sandbox``
- :mod:`~margin_async.cli._money`: ``borrow``, ``repay``, ``leverage``
- :mod:`~margin_async.cli._history`: ``history borrow|repay|interest``
- :mod:`~margin_async.cli._sandbox`: ``sandbox``, and the seeded account of ``--sandbox``
- :mod:`~margin_async.cli._sync`: ``sync``'s options (the mirror is :mod:`margin_async.sync`)
- :mod:`~margin_async.cli._sync_accounts`: the accounts ``sync`` mirrors, their credentials
- :mod:`~margin_async.cli._sync_run`: one ``sync`` run: the mirror, signals, its progress line
- :mod:`~margin_async.cli._signals`: a graceful stop on SIGINT/SIGTERM (``sandbox``, ``sync``)
- :mod:`~margin_async.cli._demo`: ``demo``
- :mod:`~margin_async.cli._output`: JSON lines / CSV writers, ``--output``, ``--format``
- :mod:`~margin_async.cli._values`: values as written: plain-notation amounts, UTC times
- :mod:`~margin_async.cli._table`: tables, laid out by rich and streamed a page at a time
- :mod:`~margin_async.cli._sink`: where output goes: a stream, or above the progress display
- :mod:`~margin_async.cli._progress`: the progress display on stderr (what it waits for)
- :mod:`~margin_async.cli._columns`: the rich columns of that display
- :mod:`~margin_async.cli._extra`: the optional ``cli`` extra (rich), and what is said without it

On a terminal a progress display (rich) owns the screen while it runs: whatever is
written for that terminal is printed above it, never across it, and it is stopped before
a run's last message. ``pip install "margin-async[cli]"`` adds rich; without it JSON
lines and CSV are written exactly the same, and see :mod:`~margin_async.cli._extra` for
what a terminal gets instead.

Adding a subcommand: write a module with ``register(commands: Commands) -> None``
that calls ``commands.add(name, help, run, arguments={...})`` (``run`` is
``async def run(args, state)``; ``arguments`` maps the SDK parameters it passes on to
their flags, for messages), adds its options to the parser it gets back, and opens its
client with :func:`margin_async.cli._exchange.open_client` (``on_wait=display.waiting``
for a command with a :class:`~margin_async.cli._progress.Display`; output through
:func:`margin_async.cli._output.open_output`, so it goes above that display). Then append its
``register`` to :data:`margin_async.cli._app.COMMANDS`::

    def register(commands: Commands) -> None:
        hello = commands.add("hello", "say hello", _run)
        hello.add_argument("--name", default="world")
"""

from __future__ import annotations

from margin_async.cli._app import main
from margin_async.cli._errors import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_RATE_LIMIT,
    EXIT_TERMINATED,
    EXIT_USAGE,
    exit_code,
)

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_RATE_LIMIT",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "exit_code",
    "main",
]
