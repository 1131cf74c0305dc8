"""``margin-async sync`` end to end through the main command, as a person runs it
(test_sync_command.py covers the command in depth, test_sync*.py the mirror)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path


def test_sync_once_through_the_main_command(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    command = [sys.executable, "-m", "margin_async.cli", "sync", "--sandbox", "--once"]
    result = subprocess.run(
        [*command, "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as connection:
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("borrow_orders", "repay_orders", "interest_records")
        }
    assert all(count > 0 for count in counts.values()), counts
    again = subprocess.run(
        [*command, "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as connection:
        after = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in counts
        }
    # A replay adds no order (the sandbox's seeded orders are the same each run; its
    # interest accrues anew, so only new charges may arrive).
    assert after["borrow_orders"] == counts["borrow_orders"]
    assert after["repay_orders"] == counts["repay_orders"]
    assert after["interest_records"] >= counts["interest_records"]


def test_sync_help_is_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "margin_async.cli", "sync", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--db URL" in result.stdout
    assert "--once" in result.stdout and "--follow" in result.stdout
