"""pytest loads the ``margin_async`` plugin (entry point ``pytest11``) in every run of every
environment where margin-async is installed: loading it must import nothing heavy (no
aiohttp, no FakeKuCoin, no client) until a test uses one of its fixtures.

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: Modules that loading the plugin must not import.
HEAVY = ("aiohttp", "margin_async._client", "margin_async._session", "margin_async.testing._server")

_REPORT = """
import json, sys
heavy = sorted(
    m for m in sys.modules
    if any(m == h or m.startswith(h + ".") for h in {heavy!r})
)
print(json.dumps(heavy))
"""


def fresh_python(code: str, cwd: Path | None = None) -> list[str]:
    """Run ``code`` in a new interpreter (warnings are errors); return the heavy modules
    it left imported."""
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", code + _REPORT.format(heavy=HEAVY)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout.splitlines()[-1])
    return loaded


def test_importing_the_plugin_module_imports_nothing_heavy() -> None:
    loaded = fresh_python("import margin_async.testing.pytest_plugin")
    assert loaded == [], (
        f"importing margin_async.testing.pytest_plugin imported {loaded}; every module it "
        "needs on the way (margin_async/__init__.py and margin_async/testing/__init__.py "
        "included) must import these lazily"
    )


def test_loading_the_entry_point_as_pytest_does_imports_nothing_heavy() -> None:
    loaded = fresh_python(
        textwrap.dedent(
            """
            import pytest
            from importlib.metadata import entry_points
            [ep] = [e for e in entry_points(group="pytest11") if e.name == "margin_async"]
            plugin = ep.load()
            assert set(plugin.__all__) == {"fake_kucoin", "kucoin_credentials", "margin_client"}
            """
        )
    )
    assert loaded == []


def test_the_package_and_the_fakes_package_are_light_too() -> None:
    assert fresh_python("import margin_async.testing") == []


def test_the_fakes_package_still_exports_its_names() -> None:
    # The lazy names resolve to the real objects (and stay importable the usual way).
    loaded = fresh_python(
        textwrap.dedent(
            """
            import margin_async.testing as testing
            from margin_async.testing import FakeKuCoin, FakeStats, FaultKind
            from margin_async.testing import InterestCharge, LedgerEntry
            from margin_async.testing._server import FakeKuCoin as Home
            assert FakeKuCoin is Home and testing.FakeKuCoin is Home
            assert set(testing.__all__) <= set(dir(testing))
            try:
                testing.NoSuchName
            except AttributeError:
                pass
            else:
                raise AssertionError("an unknown name must raise AttributeError")
            """
        )
    )
    assert "margin_async.testing._server" in loaded


def test_a_pytest_run_that_uses_no_fixture_imports_nothing_heavy(tmp_path: Path) -> None:
    """A whole pytest run in a fresh project, the plugin loaded by its entry point."""
    (tmp_path / "test_light.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            def test_nothing_heavy():
                assert "margin_async.testing.pytest_plugin" in sys.modules
                heavy = {HEAVY!r}
                loaded = [
                    m for m in sys.modules
                    if any(m == h or m.startswith(h + ".") for h in heavy)
                ]
                assert loaded == []
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_light.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout
