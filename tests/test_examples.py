"""Every script in examples/ runs against an embedded fake exchange (``--sandbox``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAS_PANDAS = importlib.util.find_spec("pandas") is not None


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    # No KUCOIN_* or base URL from the environment: --sandbox must be all it needs.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KUCOIN_") and k != "MARGIN_ASYNC_BASE_URL"
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--sandbox", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "borrow_and_repay.py",
        "many_accounts.py",
        "pandas_dataframe.py",
        "stream_to_jsonl.py",
    }


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


@pytest.mark.skipif(HAS_PANDAS, reason="pandas is installed")
def test_pandas_dataframe_without_pandas_prints_a_hint() -> None:
    result = run_example("pandas_dataframe.py")
    assert result.returncode == 0
    assert "pip install pandas" in result.stderr
