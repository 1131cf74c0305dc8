"""mkdocs hooks (``hooks:`` in mkdocs.yml).

* Every public name (``margin_async.__all__``, ``margin_async.testing.__all__`` and the
  pytest plugin's fixtures) must be rendered by a ``::: identifier`` block of an API
  reference page (``docs/reference/``) and have a docstring; each one that is not is a
  warning, so ``mkdocs build --strict`` fails.
* ``<!-- cli-help: ARGS -->`` in a page is replaced by the output of
  ``margin-async ARGS --help``, so the CLI guide shows the command's real options.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import griffe

_log = logging.getLogger("mkdocs.hooks.margin_async")
_ROOT = Path(__file__).resolve().parents[2]
_DIRECTIVE = re.compile(r"^:::[ \t]+([\w.]+)", re.MULTILINE)
_CLI_HELP = re.compile(r"^<!-- cli-help:([^>]*?)-->$", re.MULTILINE)

#: The modules whose ``__all__`` is the public surface (DESIGN.md), and the plugin.
PUBLIC_MODULES = ("margin_async", "margin_async.testing", "margin_async.testing.pytest_plugin")

#: Public names known to lack a docstring, each with the fix asked for. A name listed here
#: that has one now is a warning too, so the list only shrinks.
KNOWN_UNDOCUMENTED: dict[str, str] = {}

_rendered: set[str] = set()


def public_names() -> list[str]:
    """Every public name, as ``module.name``, read from each module's ``__all__`` in the
    source (importing the plugin would need pytest, which the docs extra does not bring)."""
    names: list[str] = []
    for module in PUBLIC_MODULES:
        path = _ROOT.joinpath(*module.split("."))
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        names.extend(f"{module}.{name}" for name in _dunder_all(source))
    return names


def _dunder_all(source: Path) -> list[str]:
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                exported: list[str] = ast.literal_eval(node.value)
                return exported
    raise ValueError(f"{source} has no literal __all__")


def reference_identifiers(reference_dir: Path) -> set[str]:
    """The identifiers of the ``:::`` blocks of the reference pages."""
    found: set[str] = set()
    for page in reference_dir.rglob("*.md"):
        found.update(_DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return found


def missing_from_reference(identifiers: set[str]) -> list[str]:
    """Public names no ``:::`` block renders (a module's block renders its members)."""
    return [
        name
        for name in public_names()
        if not any(name == i or name.startswith(i + ".") for i in identifiers)
    ]


def on_pre_build(config: Any) -> None:
    _rendered.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri.startswith("reference/"):
        _rendered.update(_DIRECTIVE.findall(markdown))
    return _CLI_HELP.sub(lambda m: _cli_help(m.group(1).split()), markdown)


def on_post_build(config: Any) -> None:
    for name in missing_from_reference(_rendered):
        _log.warning("public name %s is not in the API reference (docs/reference/)", name)
    undocumented = set(_without_docstring())
    for name in sorted(undocumented - KNOWN_UNDOCUMENTED.keys()):
        _log.warning("public name %s has no docstring", name)
    for name in sorted(KNOWN_UNDOCUMENTED.keys() - undocumented):
        _log.warning("%s has a docstring now: remove it from KNOWN_UNDOCUMENTED", name)


def _without_docstring() -> list[str]:
    extensions = griffe.load_extensions(str(Path(__file__).with_name("sphinx_roles.py")))
    package = griffe.load("margin_async", search_paths=[str(_ROOT)], extensions=extensions)
    missing = []
    for name in public_names():
        obj = package[name.removeprefix("margin_async.")]
        target = obj.final_target if obj.is_alias else obj
        if target.docstring is None or not target.docstring.value.strip():
            missing.append(name)
    return missing


def _cli_help(args: list[str]) -> str:
    """``margin-async ARGS --help`` at a fixed width, as a text block."""
    env = {**os.environ, "COLUMNS": "88", "NO_COLOR": "1", "TERM": "dumb"}
    completed = subprocess.run(
        [sys.executable, "-m", "margin_async.cli", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        _log.warning("margin-async %s --help failed: %s", " ".join(args), completed.stderr)
    text = completed.stdout.replace("usage: __main__.py", "usage: margin-async")
    return f"```text\n$ margin-async {' '.join([*args, '--help'])}\n{text.rstrip()}\n```"
