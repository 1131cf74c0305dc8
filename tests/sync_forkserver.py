"""Runs ``margin-async sync`` commands in forked children of one process that imported
margin_async once: a crash test can start (and SIGKILL) a sync process many times without
paying the interpreter's start-up each time.

Protocol on stdin/stdout, one JSON array per line:

* ``["run", LOG_PATH, ARG, ...]`` forks a child running ``sync ARG ...`` (stdout and
  stderr appended to LOG_PATH); answers ``[PID]``.
* ``["wait", PID]`` waits for that child; answers ``[EXIT_CODE]`` (``-9`` if SIGKILLed).

Each child is a separate process with its own event loop, connections and threads, created
after the fork; the server itself never starts a loop or a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import margin_async.testing  # noqa: F401 - imported once here, not in every child
from margin_async.cli import main as cli_main

with contextlib.suppress(ImportError):  # the SQLite tests need no driver
    import asyncpg  # noqa: F401


def _child(log: str, args: list[str]) -> None:
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    code = 1
    try:
        code = cli_main(["sync", *args])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request[0] == "run":
            pid = os.fork()
            if pid == 0:
                _child(request[1], request[2:])
            answer = [pid]
        elif request[0] == "wait":
            _, status = os.waitpid(int(request[1]), 0)
            answer = [os.waitstatus_to_exitcode(status)]
        else:
            answer = [f"unknown request {request[0]!r}"]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
