"""The ``margin-async`` command, run as a real subprocess against loopback fakes only.

Every command here runs with ``--sandbox`` (an embedded fake), against a
``margin-async sandbox`` subprocess, or against a closed/stalled port on 127.0.0.1:
never the real exchange (the environment's KUCOIN_* variables are removed).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from margin_async import (
    ApiError,
    AuthenticationError,
    BorrowOrder,
    Credentials,
    MarginClient,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    RepayOrder,
    TimestampError,
    TransportError,
    ValidationError,
)
from margin_async._request import Request
from margin_async.cli import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_NETWORK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_RATE_LIMIT,
    EXIT_USAGE,
    exit_code,
    main,
)
from margin_async.cli._credentials import load_credentials_file
from margin_async.cli._history import time_arg
from margin_async.cli._output import CsvWriter, JsonLinesWriter
from margin_async.cli._sink import Sink
from margin_async.cli._table import TableWriter
from margin_async.cli._values import cell

# The console script installed beside the interpreter running the tests, not whichever
# one PATH finds first: a venv's python run without activating it (the floors venv's, say)
# would otherwise test another installation's CLI.
_EXE = shutil.which("margin-async", path=os.path.dirname(sys.executable))
#: The installed console script when there is one, else the module (same code).
COMMAND = [_EXE] if _EXE else [sys.executable, "-m", "margin_async.cli"]
TIMEOUT = 30
#: The columns of a record: its fields minus ``raw`` (the wire record, never printed).
BORROW_FIELDS = [f.name for f in attrs.fields(BorrowOrder) if f.name != "raw"]
REPAY_FIELDS = [f.name for f in attrs.fields(RepayOrder) if f.name != "raw"]


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that could point at a real account or exchange."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KUCOIN_") and k != "MARGIN_ASYNC_BASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env=_clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@attrs.frozen
class Sandbox:
    process: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.env["MARGIN_ASYNC_BASE_URL"]

    @property
    def credentials(self) -> Credentials:
        return Credentials(
            self.env["KUCOIN_API_KEY"],
            self.env["KUCOIN_API_SECRET"],
            self.env["KUCOIN_API_PASSPHRASE"],
            int(self.env["KUCOIN_API_KEY_VERSION"]),
        )


def start_sandbox(*args: str) -> Sandbox:
    process = subprocess.Popen(
        [*COMMAND, "sandbox", *args],
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    # The last export line is the URL; the output is flushed once it is all written.
    while "MARGIN_ASYNC_BASE_URL" not in env:
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise AssertionError(f"sandbox exited early: {process.communicate()[1]}")
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
        else:
            assert line.startswith("#"), line  # every line is valid shell
    return Sandbox(process, env)


def stop(sandbox: Sandbox, sig: signal.Signals = signal.SIGINT) -> int:
    sandbox.process.send_signal(sig)
    _, err = sandbox.process.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err
    return sandbox.process.returncode


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    server = start_sandbox()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            stop(server)


# -- help, version ------------------------------------------------------------------------


def test_help_documents_commands_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    for text in ("history", "borrow", "sandbox", "demo", "exit status", "130", "outcome unknown"):
        assert text in result.stdout
    assert "once it may have been sent, Ctrl-C exits 6" in result.stdout
    assert run("history", "--help").returncode == 0


def test_module_entry_point_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "margin_async.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("margin-async ")


# -- history with --sandbox: every format -------------------------------------------------


def test_history_jsonl_is_exact_json_lines() -> None:
    result = run("history", "borrow", "--sandbox", "--currency", "usdt", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    rows = jsonl(result.stdout)
    # 1000 seeded records plus the sandbox's own opening borrow of 10000 USDT.
    assert len(rows) == 1001
    assert list(rows[0]) == BORROW_FIELDS
    for row in rows:
        assert isinstance(row["size"], str) and isinstance(row["actual_size"], str)
        assert row["currency"] == "USDT"
    total = sum((Decimal(str(row["actual_size"])) for row in rows), Decimal(0))
    assert total == total.quantize(Decimal("0.0001"))  # exact: no float noise
    assert Decimal("10000") in {Decimal(str(row["actual_size"])) for row in rows}


def test_history_default_format_when_piped_is_jsonl() -> None:
    result = run("history", "interest", "--sandbox", "--currency", "BTC")
    assert result.returncode == 0, result.stderr
    assert len(jsonl(result.stdout)) == 100


def test_history_csv_parses_with_exact_amounts() -> None:
    result = run("history", "repay", "--sandbox", "--currency", "USDT", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 500
    assert list(rows[0]) == REPAY_FIELDS
    for row in rows:
        assert Decimal(row["size"]) > 0
        assert Decimal(row["principal"]) + Decimal(row["interest"]) <= Decimal(row["size"])


def test_history_table_has_aligned_columns() -> None:
    result = run(
        "history", "borrow", "--sandbox", "--currency", "BTC", "--format", "table",
        "--isolated", "--symbol", "btc-usdt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [name.upper() for name in BORROW_FIELDS]
    # 100 seeded isolated records plus the sandbox's isolated 1 BTC borrow.
    assert len(lines) == 1 + 101
    assert all("BTC-USDT" in line for line in lines[1:])
    assert lines[1].endswith("Z")  # times shown as UTC for people


def test_history_filters_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "interest.csv"
    result = run(
        "history", "interest", "--sandbox", "--currency", "USDT,btc", "--page-size", "100",
        "--since", "2000-01-01", "--until", "2100-01-01T00:00:00Z", "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 2000 + 100  # USDT and cross BTC interest
    assert {row["currency"] for row in rows} == {"USDT", "BTC"}


def test_history_by_order_no_and_progress() -> None:
    first = jsonl(run("history", "borrow", "--sandbox", "--currency", "USDT").stdout)[5]
    result = run(
        "history", "borrow", "--sandbox", "--currency", "USDT",
        "--order-no", str(first["order_no"]), "--progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert [row["order_no"] for row in rows] == [first["order_no"]]
    assert "1/1 records" in result.stderr and "done in" in result.stderr


# -- moving money with --sandbox ----------------------------------------------------------


def test_borrow_repay_leverage_with_yes() -> None:
    borrow = run("borrow", "USDT", "25.5", "--tif", "fok", "--sandbox", "--yes")
    assert borrow.returncode == 0, borrow.stderr
    [row] = jsonl(borrow.stdout)
    assert row["currency"] == "USDT" and row["actual_size"] == "25.5" and row["order_no"]

    repay = run("repay", "usdt", "10", "--sandbox", "-y", "--format", "table")
    assert repay.returncode == 0, repay.stderr
    header, line = repay.stdout.splitlines()
    assert header.split() == ["CURRENCY", "SIZE", "ORDER_NO", "ACTUAL_SIZE", "TIMESTAMP"]
    assert line.split()[:2] == ["USDT", "10"]

    isolated = run(
        "repay", "BTC", "0.5", "--isolated", "--symbol", "BTC-USDT", "--sandbox", "--yes",
        "--format", "csv",
    )  # fmt: skip
    assert isolated.returncode == 0, isolated.stderr
    assert next(csv.DictReader(io.StringIO(isolated.stdout)))["actual_size"] == "0.5"

    leverage = run("leverage", "3.5", "--sandbox")
    assert leverage.returncode == 0, leverage.stderr
    assert jsonl(leverage.stdout) == [{"leverage": "3.5", "mode": "cross", "symbol": ""}]


def test_borrow_without_yes_and_without_terminal_is_refused() -> None:
    result = run("borrow", "USDT", "10", "--sandbox")
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("margin-async: error: ")
    assert "--yes" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("answer", "status"), [("y\n", 0), ("n\n", 1)])
def test_borrow_asks_on_a_terminal(answer: str, status: int) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*COMMAND, "borrow", "USDT", "10", "--sandbox", "--format", "jsonl"],
            env=_clean_env(),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, answer.encode())
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        os.close(controller)
        os.close(terminal)
    assert "Borrow 10 USDT (IOC, cross) on the sandbox? [y/N]" in err
    assert process.returncode == status
    if status == 0:
        assert jsonl(out)[0]["actual_size"] == "10"
    else:
        assert out == "" and "nothing was sent" in err


# -- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("history", "borrow", "--sandbox"),  # currency required
        ("history", "interest", "--sandbox", "--page-size", "5"),
        ("history", "interest", "--sandbox", "--since", "yesterday-ish"),
        ("history", "interest", "--sandbox", "--since", "1700000000"),  # seconds, not ms
        ("history", "interest", "--sandbox", "--order-no", "x"),
        ("history", "repay", "--sandbox", "--currency", "USDT", "--symbol", "BTC-USDT"),
        ("borrow", "USDT", "-1", "--sandbox", "--yes"),
        ("borrow", "USDT", "10", "--tif", "GTC", "--sandbox", "--yes"),
        ("leverage", "3.555", "--sandbox"),
        ("nonsense",),
    ],
)
def test_usage_and_validation_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_api_refusal_exits_7() -> None:
    result = run("leverage", "50", "--sandbox")  # above the fake's maximum of 10
    assert result.returncode == EXIT_API
    assert result.stderr.startswith("margin-async: error: KuCoin error 130103")


def test_missing_credentials_is_a_usage_error() -> None:
    result = run("history", "interest", "--base-url", "http://127.0.0.1:9")
    assert result.returncode == EXIT_USAGE
    assert "KUCOIN_API_KEY" in result.stderr and "--sandbox" in result.stderr


def test_closed_port_exits_5() -> None:
    env = {"KUCOIN_API_KEY": "k", "KUCOIN_API_SECRET": "s", "KUCOIN_API_PASSPHRASE": "p"}
    url = f"http://127.0.0.1:{free_port()}"
    result = run("history", "interest", "--base-url", url, "--attempts", "2", env=env)
    assert result.returncode == EXIT_NETWORK
    assert result.stderr.count("\n") == 1  # one line
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run("history", "interest", "--base-url", url, "--attempts", "1", "--debug", env=env)
    assert debug.returncode == EXIT_NETWORK
    assert "Traceback" in debug.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_exits_130() -> None:
    # A listener that never answers: the command is mid-request when interrupted.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            [*COMMAND, "history", "interest", "--base-url", url],
            env=_clean_env(
                {"KUCOIN_API_KEY": "k", "KUCOIN_API_SECRET": "s", "KUCOIN_API_PASSPHRASE": "p"}
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = listener.accept()
        with connection:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def test_exit_code_per_error_class() -> None:
    request = Request("POST", "/api/v3/margin/borrow")
    assert exit_code(ValidationError("size", "bad")) == EXIT_USAGE
    assert exit_code(AuthenticationError("400005", "bad sign", 401)) == EXIT_AUTH
    assert exit_code(RateLimitError("429000", "slow down", 429)) == EXIT_RATE_LIMIT
    assert exit_code(TransportError("down")) == EXIT_NETWORK
    assert exit_code(OutcomeUnknownError("lost", request)) == EXIT_OUTCOME_UNKNOWN
    assert exit_code(ApiError("400100", "bad", 400)) == EXIT_API
    assert exit_code(TimestampError("400002", "clock", 401)) == EXIT_API
    assert exit_code(ProtocolError("html")) == EXIT_API
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(RuntimeError("bug")) == 1


# -- against a `margin-async sandbox` subprocess ------------------------------------------


def test_sandbox_exports_work_with_history(sandbox: Sandbox) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    result = run("history", "borrow", "--currency", "USDT", "--format", "jsonl", env=sandbox.env)
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)

    async def read() -> list[BorrowOrder]:
        async with MarginClient(sandbox.credentials, base_url=sandbox.url) as client:
            return await client.borrow_history("USDT").collect()

    orders = asyncio.run(read())
    assert [row["order_no"] for row in rows] == [o.order_no for o in orders]
    cli_total = sum((Decimal(str(row["actual_size"])) for row in rows), Decimal(0))
    assert cli_total == sum((o.actual_size for o in orders), Decimal(0))


def test_wrong_secret_exits_3_without_leaking_secrets(sandbox: Sandbox) -> None:
    env = {**sandbox.env, "KUCOIN_API_SECRET": "a-wrong-secret-value"}
    result = run("history", "borrow", "--currency", "USDT", "--debug", env=env)
    assert result.returncode == EXIT_AUTH
    assert "KuCoin error 40000" in result.stderr
    for secret in ("a-wrong-secret-value", sandbox.env["KUCOIN_API_PASSPHRASE"]):
        assert secret not in result.stderr and secret not in result.stdout


def _write_credentials(path: Path, sandbox: Sandbox, mode: int) -> None:
    creds = sandbox.credentials
    path.write_text(
        json.dumps(
            {
                "api_key": creds.api_key,
                "api_secret": creds.api_secret,
                "api_passphrase": creds.api_passphrase,
            }
        )
    )
    path.chmod(mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_credentials_file_must_be_private(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "kucoin.json"
    _write_credentials(path, sandbox, 0o644)
    args = ("history", "interest", "--credentials", str(path), "--base-url", sandbox.url)
    refused = run(*args)
    assert refused.returncode == EXIT_USAGE
    assert "chmod 600" in refused.stderr and "0644" in refused.stderr
    assert sandbox.credentials.api_secret not in refused.stderr

    path.chmod(0o600)
    accepted = run(*args)
    assert accepted.returncode == 0, accepted.stderr
    assert len(jsonl(accepted.stdout)) == 2000 + 100  # USDT and cross BTC interest


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_credentials_file_key_value_lines(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "kucoin.env"
    lines = [f"export {name}={value}" for name, value in sandbox.env.items()]
    path.write_text("# saved by hand\n" + "\n".join(lines) + "\nexport TZ=UTC\n")
    path.chmod(0o600)
    # The line is named, not shown: a line's text may be a secret.
    with pytest.raises(Exception, match=r"line 7: unknown key \(expected api_key") as refused:
        load_credentials_file(str(path))
    assert "TZ" not in str(refused.value)
    kept = [line for line in lines if "BASE_URL" not in line]
    path.write_text("\n".join(kept) + "\n")
    assert load_credentials_file(str(path)) == (sandbox.credentials, None)
    result = run("leverage", "2", "--credentials", str(path), "--base-url", sandbox.url)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sandbox_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    server = start_sandbox("--port", "0", "--seed-records", "10")
    assert stop(server, sig) == 0


def test_sandbox_serves_on_the_requested_port() -> None:
    port = free_port()
    server = start_sandbox("--port", str(port))
    try:
        assert server.url == f"http://127.0.0.1:{port}"
    finally:
        assert stop(server) == 0


# -- demo ---------------------------------------------------------------------------------


def test_demo_runs_and_summarises() -> None:
    result = run("demo", "--records", "2000")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress when stderr is piped
    table = result.stdout.split("HISTORY", 1)[1].splitlines()
    by_name = {line.split()[0]: line.split() for line in table[1:4]}
    assert by_name["borrow"][1] == "2001"  # seeded + the demo's own borrow
    assert by_name["repay"][1] == "1001"
    assert by_name["interest"][1] == "2001"  # seeded + one accrual


# -- in process: parsing and formatting ---------------------------------------------------


def test_time_arg_converts_text_and_leaves_judging_to_the_sdk() -> None:
    assert time_arg("1700000000000") == 1_700_000_000_000
    assert time_arg("1700000000") == 1_700_000_000  # seconds by mistake: the SDK refuses
    assert time_arg(" -5 ") == -5
    assert time_arg("2024-01-01") == datetime(2024, 1, 1, tzinfo=UTC)
    assert time_arg("2024-01-01T00:00:00.250") == datetime(2024, 1, 1, 0, 0, 0, 250_000, UTC)
    assert time_arg("2024-01-01T02:00:00+02:00") == datetime(2024, 1, 1, tzinfo=UTC)
    assert time_arg("2024-01-01T00:00:00Z") == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO date"):
        time_arg("yesterday-ish")


def test_writers_keep_amounts_exact() -> None:
    row = {"currency": "USDT", "size": "0.10000000", "created_time": 1_704_067_200_000}
    out = io.StringIO()
    JsonLinesWriter(Sink(out)).write(row)
    assert json.loads(out.getvalue())["size"] == "0.10000000"
    out = io.StringIO()
    writer = CsvWriter(Sink(out))
    writer.write(row)
    writer.write({**row, "size": "12"})
    assert out.getvalue().splitlines() == [
        "currency,size,created_time",
        "USDT,0.10000000,1704067200000",
        "USDT,12,1704067200000",
    ]
    out = io.StringIO()
    sink = Sink(out)
    table = TableWriter(sink, sample=1)
    table.write(row)
    table.write({**row, "size": "12"})
    table.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["CURRENCY", "SIZE", "CREATED_TIME"]
    assert "2024-01-01 00:00:00.000Z" in lines[1]
    assert lines[1].index("0.10000000") + len("0.10000000") == lines[2].index("12") + 2
    assert len(lines) == 3 and sink.records == 2  # one table: one header


def test_main_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The same paths in-process, so that coverage sees them.
    assert main(["history", "interest", "--sandbox", "--currency", "BTC", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 101
    assert main(["leverage", "4", "--sandbox", "--format", "table"]) == 0
    assert "LEVERAGE" in capsys.readouterr().out
    assert main(["history", "borrow", "--sandbox"]) == EXIT_USAGE
    assert "needs --currency" in capsys.readouterr().err
    path = tmp_path / "creds.txt"
    path.write_text("api_key=a\napi_secret=b\n")
    path.chmod(0o600)
    assert main(["history", "interest", "--credentials", str(path)]) == EXIT_USAGE
    assert "lacks api_passphrase" in capsys.readouterr().err
    assert main(["demo", "--records", "100", "--no-progress"]) == 0
    assert "exact_sum".upper() in capsys.readouterr().out


def test_a_time_past_the_calendar_prints_as_milliseconds() -> None:
    assert cell("created_time", 10**17) == str(10**17)
    assert cell("created_time", 1729657580449) == "2024-10-23 04:26:20.449Z"
