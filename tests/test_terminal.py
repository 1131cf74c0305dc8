"""``margin-async`` on a pseudo-terminal, as a person sees it.

Each test runs the command on a pty of a fixed size (100x30), feeds everything it
writes to ``pyte`` (a VT100 terminal emulator, with scrollback) and asserts on the
screen: the lines a person reads, after the terminal has applied every cursor movement
and erase. Nothing here measures time: a test waits for a state of the screen, or for
the end of the command.

Commands run against ``--sandbox`` (an embedded fake) or a FakeKuCoin of the test's
own; never the real exchange (the environment's KUCOIN_* variables are removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from test_cli import COMMAND, TIMEOUT, _clean_env

from margin_async import Credentials
from margin_async.cli import EXIT_INTERRUPTED, EXIT_USAGE
from margin_async.testing import FakeKuCoin

pyte = pytest.importorskip("pyte")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")

COLUMNS, ROWS = 100, 30
#: A line of the progress display (its label, then a count of records), whatever it draws.
PROGRESS = re.compile(r"\b(borrow|repay|interest)\s+history\b.*\d records")
#: Text that only the records (or a table of them) contain, never the display.
DATA = re.compile(r"USDT|BTC|SUCCESS|order_no|ORDER_NO|CURRENCY|currency|\"")
#: Runs the CLI with rich hidden, as where the `cli` extra is not installed.
WITHOUT_RICH = [
    sys.executable,
    "-c",
    "import sys; sys.modules['rich'] = None; from margin_async.cli import main; "
    "sys.exit(main(sys.argv[1:]))",
]


class Terminal:
    """A command running on a pty, and the screen a person would see."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None):
        import fcntl
        import pty
        import struct
        import termios

        self.screen = pyte.HistoryScreen(COLUMNS, ROWS, history=20_000)
        self._stream = pyte.ByteStream(self.screen)
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        environment = _clean_env(env)
        environment["TERM"] = "xterm-256color"
        for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
            environment.pop(name, None)
        self._controller = controller
        self.process = subprocess.Popen(
            argv,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=environment,
            cwd=cwd,
            close_fds=True,
        )
        os.close(terminal)  # the child holds it: end of output is EIO on ours
        self._open = True

    def pump(self, wait: float = 0.05) -> bool:
        """Feed what the command wrote to the screen; False once it closed the pty."""
        if not self._open:
            return False
        ready, _, _ = select.select([self._controller], [], [], wait)
        if ready:
            try:
                data = os.read(self._controller, 65536)
            except OSError:
                data = b""
            if not data:
                self._open = False
                return False
            self._stream.feed(data)
        return True

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Pump until ``condition()`` holds (a state to reach, not a timing assert)."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if not self.pump() and not condition():
                raise AssertionError(f"ended before {what}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {TIMEOUT} s:\n{self.text()}")

    def shows(self, pattern: str) -> bool:
        """Whether the screen (scrollback included) shows ``pattern`` (a regex)."""
        return any(re.search(pattern, line) for line in self.lines())

    def type(self, text: str) -> None:
        """Type ``text`` on the keyboard."""
        os.write(self._controller, text.encode())

    def finish(self) -> int:
        """Wait for the command to end and its output to be on the screen; its status."""
        deadline = time.monotonic() + TIMEOUT
        while self.pump():
            assert time.monotonic() < deadline, f"still running:\n{self.text()}"
        return self.process.wait(timeout=TIMEOUT)

    def lines(self) -> list[str]:
        """Every line: the scrollback, then the screen (trailing blanks dropped)."""
        scrolled = [
            "".join(line[x].data for x in range(COLUMNS)).rstrip()
            for line in self.screen.history.top
        ]
        shown = [line.rstrip() for line in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return scrolled + shown

    def text(self) -> str:
        """The lines, for an assertion's message."""
        return "\n".join(self.lines())

    def close(self) -> None:
        """Kill the command if it still runs; release the pty."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        os.close(self._controller)


@contextlib.contextmanager
def terminal(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    command: Sequence[str] = COMMAND,
) -> Iterator[Terminal]:
    """``margin-async ARGS`` on a pty of 100x30."""
    term = Terminal([*command, *args], env, cwd)
    try:
        yield term
    finally:
        term.close()


def assert_never_mixed(term: Terminal, streams: int = 1) -> list[str]:
    """No line mixes the progress display with output; the display's last state (one
    line per stream) is left below everything else. Returns the lines."""
    lines = term.lines()
    progress = [i for i, line in enumerate(lines) if PROGRESS.search(line)]
    for i in progress:
        assert not DATA.search(lines[i]), f"line {i} mixes progress and output:\n{lines[i]}"
    assert len(progress) == streams, f"left-over progress lines:\n{term.text()}"
    data = [i for i, line in enumerate(lines) if DATA.search(line)]
    assert not data or max(data) < min(progress), term.text()
    return lines


# -- history: progress and output on one screen, every format ----------------------------


@pytest.mark.parametrize(
    "options",
    [("--format", "table"), ("--format", "jsonl"), ("--format", "csv", "--debug")],
    ids=["table", "jsonl", "csv-and-log-lines"],
)
def test_progress_and_records_never_share_a_line(options: tuple[str, ...]) -> None:
    # 10 pages: the display is redrawn below the records after every one of them (and
    # --debug logs every request while it runs).
    args = ("history", "borrow", "--sandbox", "--currency", "BTC", "--page-size", "10")
    with terminal(*args, *options) as term:
        assert term.finish() == 0, term.text()
    lines = assert_never_mixed(term)
    assert re.search(r"borrow history .*100/100 records\s+done in", lines[-1]), lines[-1]
    # Every record is on the screen once.
    found = re.findall(r"[0-9a-f]{24}", "\n".join(lines))
    assert len(found) == len(set(found)) == 100
    if "table" in options:
        assert lines[0].split()[:3] == ["ORDER_NO", "SYMBOL", "CURRENCY"]
        assert sum(line.startswith("ORDER_NO") for line in lines) == 1  # one table


def test_output_file_with_progress_on_the_terminal(tmp_path: Path) -> None:
    args = ("history", "interest", "--sandbox", "--currency", "BTC", "--page-size", "10")
    with terminal(*args, "--output", "interest.csv", cwd=tmp_path) as term:
        assert term.finish() == 0, term.text()
    assert assert_never_mixed(term) == [
        next(line for line in term.lines() if PROGRESS.search(line))
    ]
    assert "100/100 records" in term.lines()[-1]
    assert len((tmp_path / "interest.csv").read_text().splitlines()) == 1 + 100


def test_plain_notation_at_the_prompt_and_in_the_table() -> None:
    with terminal("borrow", "USDT", "1e3", "--sandbox") as term:
        term.wait_for(lambda: term.shows(r"\[y/N\]"), "the prompt")
        assert term.shows(r"^Borrow 1000 USDT \(IOC, cross\) on the sandbox\? \[y/N\]"), term.text()
        term.type("y\n")
        assert term.finish() == 0, term.text()
    lines = term.lines()
    assert "E+" not in term.text()
    header = next(i for i, line in enumerate(lines) if line.startswith("CURRENCY"))
    assert lines[header].split() == ["CURRENCY", "SIZE", "ORDER_NO", "ACTUAL_SIZE"]
    currency, size, order_no, actual = lines[header + 1].split()
    assert (currency, size, actual) == ("USDT", "1000", "1000")
    assert lines[header].index("ORDER_NO") == lines[header + 1].index(order_no)  # an id


# -- what the display waits for; an interrupted --output ----------------------------------


def _environment(creds: Credentials) -> dict[str, str]:
    return {
        "KUCOIN_API_KEY": creds.api_key,
        "KUCOIN_API_SECRET": creds.api_secret,
        "KUCOIN_API_PASSPHRASE": creds.api_passphrase,
    }


async def test_a_wait_for_the_exchange_is_shown_and_an_interrupt_says_the_file_is_partial(
    tmp_path: Path,
) -> None:
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=0, repays=0, interest=30)
        # Page 1 comes at once; every later page is still on its way when Ctrl-C comes.
        fake.inject("latency", latency=0.0)
        fake.inject("latency", latency=10.0 * TIMEOUT, times=5)
        args = ("history", "interest", "--currency", "USDT", "--page-size", "10")
        args += ("--base-url", fake.url, "--timeout", str(10 * TIMEOUT), "-o", "out.csv")
        with terminal(*args, env=_environment(creds), cwd=tmp_path) as term:
            waiting = r"interest history .* 10/30 records +waiting \d+ s for the exchange"
            await asyncio.to_thread(term.wait_for, lambda: term.shows(waiting), "a wait shown")
            term.process.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(term.finish) == EXIT_INTERRUPTED, term.text()
    # The display's last state, then the message on the next line: nothing else.
    assert len(term.lines()) == 2, term.text()
    stopped, message = term.lines()
    assert re.search(r"^interest history .* 10/30 records +stopped$", stopped), stopped
    assert message == "margin-async: interrupted; out.csv is partial (10 records written)"
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 1 + 10


async def test_a_rate_limit_wait_is_shown_with_its_length() -> None:
    # One page (weight 20) per 3-second window: the later pages wait for the next ones.
    async with FakeKuCoin(rate_limit_quota=30, rate_limit_window_ms=3000) as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=0, repays=0, interest=30)
        args = ("history", "interest", "--currency", "USDT", "--page-size", "10")
        args += ("--base-url", fake.url, "--format", "jsonl")
        with terminal(*args, env=_environment(creds)) as term:
            waiting = r"interest history .* [12]0/30 records +waiting [1-3] s for the rate limit$"
            await asyncio.to_thread(term.wait_for, lambda: term.shows(waiting), "the wait")
            assert await asyncio.to_thread(term.finish) == 0, term.text()
    assert fake.stats.rate_limited == 0  # waited, never refused
    lines = assert_never_mixed(term)
    assert re.search(r"30/30 records\s+done in", lines[-1]), lines[-1]
    assert "waiting" not in term.text()  # the wait's line was redrawn, not left behind


# -- without the cli extra ----------------------------------------------------------------


def test_without_the_extra_a_terminal_gets_json_lines_and_a_note() -> None:
    args = ("history", "borrow", "--sandbox", "--currency", "BTC")
    with terminal(*args, command=WITHOUT_RICH) as term:
        assert term.finish() == 0, term.text()
    lines = term.lines()
    assert lines[0] == (
        "margin-async: note: tables and progress need the cli extra: "
        'pip install "margin-async[cli]"'
    )
    assert sum(line.startswith('{"order_no":') for line in lines) == 100
    assert not any(PROGRESS.search(line) for line in lines)
    with terminal(*args, "--format", "table", command=WITHOUT_RICH) as term:
        assert term.finish() == EXIT_USAGE, term.text()
    assert term.lines() == [
        'margin-async: error: --format table needs the cli extra: pip install "margin-async[cli]"'
    ]


def test_a_pipe_read_on_the_same_terminal_gets_no_display() -> None:
    # head prints on the terminal itself: a display there could not keep its lines apart.
    history = [*COMMAND, "history", "borrow", "--sandbox", "--currency", "BTC"]
    pipeline = f"{shlex.join(history)} --page-size 10 | head -n 3"
    with terminal("-c", pipeline, command=["/bin/sh"]) as term:
        assert term.finish() == 0, term.text()
    records = re.findall(r"[0-9a-f]{24}", term.text())
    assert len(records) == 3, term.text()
    assert not any(PROGRESS.search(line) for line in term.lines()), term.text()
