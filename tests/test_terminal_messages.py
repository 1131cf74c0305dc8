"""What ``margin-async`` says, in the user's words: help per command, refusals with the
flags typed, no Python or aiohttp spellings, a busy port, a partial file, the saved
sandbox output as a credentials file, and what happens without the ``cli`` extra.

In process where the screen does not matter (fast); as a subprocess where a pipeline is
the point. Only loopback fakes, never the real exchange.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import attrs
import pytest
from test_cli import COMMAND, TIMEOUT, _clean_env, free_port, jsonl
from test_terminal import WITHOUT_RICH

from margin_async.cli import EXIT_NETWORK, EXIT_OK, EXIT_USAGE, main
from margin_async.cli import _extra as extra
from margin_async.cli import _output as output
from margin_async.cli import _progress as progress
from margin_async.cli._credentials import load_credentials_file
from margin_async.cli._errors import in_words
from margin_async.cli._progress import Display

SUBCOMMANDS = ("borrow", "repay", "leverage", "history", "sandbox", "demo")


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_command_help_is_its_own(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = _help(capsys, command)
    assert text.startswith(f"usage: margin-async {command} ")
    assert "exit status:" not in text  # the top-level epilog is not repeated ...
    assert text.rstrip().endswith("exit statuses: margin-async --help")  # ... it is named
    whole = _help(capsys)
    assert "exit status:" in whole and "credentials:" in whole and "output:" in whole


def test_help_speaks_of_the_command_it_belongs_to(capsys: pytest.CaptureFixture[str]) -> None:
    repay = _help(capsys, "repay")
    assert "high-frequency repayment" in repay and "borrowing" not in repay
    assert "margin-async repay USDT 10" in repay
    history = _help(capsys, "history")
    assert 'pip install "margin-async[cli]"' in history and "output:" in history
    assert "margin-async sandbox > sandbox.env" in _help(capsys, "sandbox")


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("x.xlsx", "unknown extension .xlsx"),
        ("x.json", "unknown extension .json"),
        ("x", "no extension"),
    ],
)
def test_an_output_name_without_a_known_format_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, output: str, why: str
) -> None:
    path = tmp_path / output
    assert main(["history", "borrow", "--sandbox", "--currency", "BTC", "-o", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"margin-async: error: --output {path}: {why}, so no format "
        "(use .jsonl, .ndjson, .csv, or give --format)\n"
    )
    assert not path.exists()  # refused before anything was written
    args = ["history", "borrow", "--sandbox", "--currency", "BTC", "-o", str(path)]
    assert main([*args, "--format", "csv"]) == EXIT_OK
    assert len(path.read_text().splitlines()) == 1 + 100


def test_a_busy_port_is_taken_not_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["sandbox", "--port", str(port)]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"margin-async: error: port {port} on 127.0.0.1 is taken; "
        "choose another --port (0 for any free port)\n"
    )


def test_a_closed_http_port_is_said_without_tls_or_python_spellings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KEY", "SECRET", "PASSPHRASE"):
        monkeypatch.setenv(f"KUCOIN_API_{name}", f"{name.lower()}-0123456789")
    url = f"http://127.0.0.1:{free_port()}"
    args = ["history", "interest", "--base-url", url, "--attempts", "1"]
    assert main(args) == EXIT_NETWORK
    assert capsys.readouterr().err == (
        f"margin-async: error: cannot connect to {url}: connection refused\n"
    )


def test_sdk_messages_in_words() -> None:
    aiohttp_text = (
        "cannot connect to http://127.0.0.1:9: Cannot connect to host 127.0.0.1:9 "
        "ssl:default [Connect call failed ('127.0.0.1', 9)]"
    )
    assert in_words(aiohttp_text) == "cannot connect to http://127.0.0.1:9"
    dns = (
        "cannot connect to https://no.such.host: Cannot connect to host no.such.host:443 "
        "ssl:<ssl.SSLContext object at 0x7f> [Name or service not known]"
    )
    assert in_words(dns) == "cannot connect to https://no.such.host: name or service not known"
    errno_text = "Cannot connect to host h:1 ssl:False [[Errno 113] No route to host]"
    assert in_words(errno_text) == ": no route to host"
    assert in_words("must be greater than 1, got Decimal('1')") == "must be greater than 1, got 1"
    assert in_words("the borrow was not sent") == "the borrow was not sent"


def test_the_saved_sandbox_output_is_a_credentials_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sandbox.env"
    with path.open("w") as saved:
        os.chmod(path, 0o600)
        server = subprocess.Popen(
            [*COMMAND, "sandbox", "--seed-records", "10"],
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=saved,
            stderr=subprocess.PIPE,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "MARGIN_ASYNC_BASE_URL" not in path.read_text():
            assert server.poll() is None and time.monotonic() < deadline, path.read_text()
            time.sleep(0.05)
        _, url = load_credentials_file(str(path))
        assert url is not None and url.startswith("http://127.0.0.1:")
        # As saved: comments, export lines and the base URL; no --base-url needed.
        args = ["history", "borrow", "--currency", "USDT", "--credentials", str(path)]
        assert main(args) == EXIT_OK
        assert len(jsonl(capsys.readouterr().out)) == 10 + 1  # and the sandbox's own borrow
        # --base-url still wins over the file's.
        elsewhere = f"http://127.0.0.1:{free_port()}"
        assert main([*args, "--base-url", elsewhere, "--attempts", "1"]) == EXIT_NETWORK
        assert capsys.readouterr().err == (
            f"margin-async: error: cannot connect to {elsewhere}: connection refused\n"
        )
    finally:
        server.terminate()
        server.wait(timeout=TIMEOUT)


# -- the progress display's words (in process) --------------------------------------------


@attrs.frozen
class _Wait:
    reason: str
    seconds: float
    label: str | None = None


def test_the_display_says_what_it_waits_for_and_how_long() -> None:
    display = Display(enabled=False)
    with display.stream("borrow history") as line:
        line.advance(500, total=5000)
        assert line.status().endswith(" records/s")
        display.waiting(_Wait("rate limit", 11.2))
        assert line.status() == "waiting 12 s for the rate limit"
        display.waiting(_Wait("retry backoff", 0.5))  # shorter: the longer wait stays
        assert line.status() == "waiting 12 s for the rate limit"
    other = Display(enabled=False)
    other.waiting(_Wait("retry backoff", 2.0))
    with other.stream("x") as line:
        assert line.status() == "waiting 2 s before retrying"
    assert line.records == 0
    with pytest.raises(KeyboardInterrupt), display.stream("repay history") as stopped:
        raise KeyboardInterrupt
    assert stopped.status() == "stopped"


# -- without the cli extra: pipelines lose nothing ----------------------------------------


def _without_rich(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WITHOUT_RICH, *args],
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_without_the_extra_pipelines_are_unchanged() -> None:
    # rich cannot be imported at all here: no code path of a pipeline may need it.
    piped = _without_rich("history", "interest", "--sandbox", "--currency", "BTC")
    assert (piped.returncode, piped.stderr) == (0, "")  # no terminal: nothing to say
    assert len(jsonl(piped.stdout)) == 100


@pytest.mark.parametrize("asked", ["--progress", "--format table"])
def test_without_the_extra_what_is_asked_for_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    for module in (extra, output, progress):
        monkeypatch.setattr(module, "has_rich", lambda: False)
    assert main(["history", "interest", "--sandbox", *asked.split()]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f'margin-async: error: {asked} needs the cli extra: pip install "margin-async[cli]"\n'
    )
