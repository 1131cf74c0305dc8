"""The test examples of the README (and of the testing guide) work, verbatim, in a fresh
project: no configuration, so pytest-asyncio's default strict mode; the plugin loaded by
its ``pytest11`` entry point (margin-async is installed, nothing else is); and no
deprecation warning from margin-async.

The examples are read from the documents themselves, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "testing.md"]
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def documented_tests(document: Path) -> list[str]:
    """The ``python`` blocks of ``document`` that define an async test function."""
    blocks = _FENCE.findall(document.read_text(encoding="utf-8"))
    return [block for block in blocks if re.search(r"^async def test_", block, re.MULTILINE)]


CASES = [
    pytest.param(doc, i, id=f"{doc.relative_to(ROOT)}-{i}")
    for doc in DOCUMENTS
    for i in range(len(documented_tests(doc)))
]


def test_every_document_shows_the_plugin_fixtures() -> None:
    for document in DOCUMENTS:
        examples = documented_tests(document)
        assert any("margin_client" in example for example in examples), document


@pytest.mark.parametrize(("document", "index"), CASES)
def test_example_passes_in_a_fresh_strict_mode_project(
    document: Path, index: int, tmp_path: Path
) -> None:
    (tmp_path / "test_example.py").write_text(documented_tests(document)[index], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    completed = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
            # Any DeprecationWarning raised from a margin_async module fails the run (the
            # ini form: "margin_async" is a regular expression, so it covers submodules).
            "-o", "filterwarnings=error::DeprecationWarning:margin_async",
            "test_example.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "mode=Mode.STRICT" in output or "mode=strict" in output.lower(), output
    assert " passed" in output and " failed" not in output, output
    assert "margin_async" not in output.partition("warnings summary")[2], output
