"""Every script in examples/ runs as its docstring says, against an embedded fake
exchange (``--sandbox``), and ends like the CLI when the reader of its output goes away."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HAS_PANDAS = importlib.util.find_spec("pandas") is not None
#: What ``margin-async`` exits with when its reader goes away (margin_async/cli/_errors.py).
EXIT_BROKEN_PIPE = 141
#: The scripts (``_script.py`` is their shared ending, not an example).
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def example_env() -> dict[str, str]:
    # No KUCOIN_* or base URL from the environment: --sandbox must be all it needs.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KUCOIN_") and k != "MARGIN_ASYNC_BASE_URL"
    }


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--sandbox", *args],
        env=example_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sandbox_commands(name: str) -> list[str]:
    """The ``python examples/NAME --sandbox ...`` lines of the script's docstring."""
    docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(encoding="utf-8")))
    assert docstring is not None, name
    lines = [line.strip() for line in docstring.splitlines()]
    return [
        line
        for line in lines
        if line.startswith(f"python examples/{name} ") and "--sandbox" in line
    ]


def assert_quiet_failure_free(stderr: str) -> None:
    """No traceback, and no "Exception ignored" from a failed flush at exit."""
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "Error" not in stderr, stderr


def writes_stdout(name: str) -> bool:
    """Whether the script's --sandbox run prints anything on stdout here."""
    return name != "pandas_dataframe.py" or HAS_PANDAS


def test_every_example_is_covered() -> None:
    assert SCRIPTS == [
        "borrow_and_repay.py",
        "many_accounts.py",
        "pandas_dataframe.py",
        "stream_to_jsonl.py",
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_docstring_commands_run_as_written(name: str) -> None:
    """Each ``--sandbox`` command of the docstring, verbatim (pipes included) in bash."""
    commands = sandbox_commands(name)
    assert commands, f"{name}: its docstring shows no --sandbox command"
    for command in commands:
        assert command.startswith("python ")
        line = shlex.quote(sys.executable) + command.removeprefix("python")
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=ROOT,
            env=example_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # Piped into head, the script may still be writing when head has had enough.
        allowed = {0, EXIT_BROKEN_PIPE} if "|" in command else {0}
        assert result.returncode in allowed, (command, result.returncode, result.stderr)
        assert_quiet_failure_free(result.stderr)
        assert bool(result.stdout) == writes_stdout(name), command


@pytest.mark.parametrize("name", SCRIPTS)
def test_piped_into_head(name: str) -> None:
    """``python examples/NAME --sandbox | head -n 3``: at most 3 lines, no traceback, and
    the script exits 0 (all written before head left) or 141, as the CLI does."""
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "--sandbox"],
        env=example_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as script:
        assert script.stdout is not None
        head = subprocess.run(
            ["head", "-n", "3"], stdin=script.stdout, capture_output=True, text=True, check=True
        )
        script.stdout.close()  # head is gone: only it held the read end
        _, stderr = script.communicate(timeout=120)
    assert script.returncode in {0, EXIT_BROKEN_PIPE}, stderr
    assert_quiet_failure_free(stderr)
    assert len(head.stdout.splitlines()) == (3 if writes_stdout(name) else 0)
    if name == "stream_to_jsonl.py":  # 5,000 lines: far more than a pipe holds
        assert script.returncode == EXIT_BROKEN_PIPE
        assert all(json.loads(line)["order_no"] for line in head.stdout.splitlines())


@pytest.mark.parametrize("name", SCRIPTS)
def test_reader_gone_before_the_first_write(name: str) -> None:
    """The reader left before anything was written: the first write (or the final flush)
    breaks, and the script ends quietly with 141, never a traceback or status 120."""
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "--sandbox"],
        env=example_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as script:
        assert script.stdout is not None
        script.stdout.close()
        assert script.stderr is not None
        stderr = script.stderr.read()
        script.wait(timeout=120)
    assert script.returncode == (EXIT_BROKEN_PIPE if writes_stdout(name) else 0), stderr
    assert_quiet_failure_free(stderr)


def test_stream_to_jsonl() -> None:
    result = run_example("stream_to_jsonl.py")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5000
    assert all(isinstance(row["actual_size"], str) for row in rows)
    assert sum((Decimal(row["actual_size"]) for row in rows), Decimal(0)) > 0
    assert "5000 borrow records written" in result.stderr


def test_stream_to_jsonl_output_file(tmp_path: Path) -> None:
    out = tmp_path / "borrows.jsonl"
    result = run_example("stream_to_jsonl.py", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert len(out.read_text().splitlines()) == 5000


def test_many_accounts() -> None:
    result = run_example("many_accounts.py", "--count", "20")
    assert result.returncode == 0, result.stderr
    assert "broken: failed: KuCoin error 40000" in result.stdout
    expected = sum(100 + 37 * i for i in range(20))
    assert f"{expected} records from 20 accounts" in result.stdout


def test_borrow_and_repay() -> None:
    result = run_example("borrow_and_repay.py", "--size", "12.5")
    assert result.returncode == 0, result.stderr
    assert "borrowed 12.5 USDT" in result.stdout
    assert "in history: SUCCESS" in result.stdout
    assert "repaid 12.5 USDT" in result.stdout


@pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed")
def test_pandas_dataframe() -> None:
    result = run_example("pandas_dataframe.py")
    assert result.returncode == 0, result.stderr
    assert "3000 records over" in result.stdout
    assert "total interest" in result.stdout


def test_pandas_dataframe_without_pandas_says_how_to_get_it() -> None:
    """Whether or not pandas is installed here: ``import pandas`` is made to fail."""
    script = EXAMPLES / "pandas_dataframe.py"
    code = (
        "import runpy, sys\n"
        "sys.modules['pandas'] = None  # import pandas -> ImportError\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        f"sys.argv = [{str(script)!r}, '--sandbox']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=example_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "This example needs pandas: pip install pandas\n"
