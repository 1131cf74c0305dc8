"""The docs site: every public name is in the API reference, and every page of the nav
exists. (``mkdocs build --strict`` in CI checks the rest: broken references, public
names without a docstring; see docs/_ext/hooks.py.)"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: The public surface (DESIGN.md): what these modules export.
PUBLIC_MODULES = ("margin_async", "margin_async.testing", "margin_async.testing.pytest_plugin")
_DIRECTIVE = re.compile(r"^:::[ \t]+([\w.]+)", re.MULTILINE)
GUIDES = [
    "quickstart.md",
    "streaming.md",
    "many-accounts.md",
    "follow.md",
    "testing.md",
    "cli.md",
    "reliability.md",
]


def reference_identifiers() -> set[str]:
    found: set[str] = set()
    for page in (DOCS / "reference").rglob("*.md"):
        found.update(_DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return found


def public_names() -> list[str]:
    names: list[str] = []
    for module in PUBLIC_MODULES:
        exported: list[str] = importlib.import_module(module).__all__
        names.extend(f"{module}.{name}" for name in exported)
    return names


@pytest.mark.parametrize("name", public_names())
def test_public_name_is_in_the_api_reference(name: str) -> None:
    identifiers = reference_identifiers()
    assert any(name == i or name.startswith(i + ".") for i in identifiers), (
        f"{name} is public but no '::: {name}' block of docs/reference/ renders it"
    )


def test_the_reference_renders_only_public_names() -> None:
    """Each block names a public name (or the plugin module): the pages show the surface
    users may rely on, under the names they import."""
    public = set(public_names()) | {"margin_async.testing.pytest_plugin"}
    assert reference_identifiers() <= public


def test_every_page_of_the_nav_exists_and_every_guide_is_in_it() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r"^\s+- (?:[^:\n]+: )?([\w/.-]+\.md)$", config, re.MULTILINE)
    assert pages, "no pages found in mkdocs.yml's nav"
    for page in pages:
        assert (DOCS / page).is_file(), page
    for guide in GUIDES:
        assert guide in pages, guide


def test_the_reliability_guide_says_what_to_do_about_an_unknown_outcome() -> None:
    text = (DOCS / "reliability.md").read_text(encoding="utf-8")
    for heading in (
        "## What is retried, and what is not",
        "## `OutcomeUnknownError`: what it means and what to do",
    ):
        assert heading in text
    assert "reconcil" in text
