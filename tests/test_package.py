"""The package's build configuration: one version source, an sdist that carries the
tests and the docs, and the docs extra. (CI also builds the sdist and the wheel, checks
them with ``twine check --strict`` and lists the sdist: see .ci/run.)"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import margin_async

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_has_one_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "margin_async/_version.py"
    # The installed distribution's metadata says what margin_async/_version.py says.
    assert importlib.metadata.version("margin-async") == margin_async.__version__


def test_no_other_file_spells_the_version() -> None:
    version = re.escape(margin_async.__version__)
    spelled = [
        str(path.relative_to(ROOT))
        for path in [ROOT / "pyproject.toml", *(ROOT / "margin_async").rglob("*.py")]
        if re.search(rf"[\"']{version}[\"']", path.read_text(encoding="utf-8"))
    ]
    assert spelled == ["margin_async/_version.py"]


def test_the_sdist_includes_the_tests_and_the_docs() -> None:
    include = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    for needed in ("/margin_async", "/tests", "/docs", "/mkdocs.yml", "/examples", "/README.md"):
        assert needed in include
        assert (ROOT / needed.lstrip("/")).exists(), needed


def test_the_wheel_is_the_package_alone() -> None:
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["margin_async"]


def test_the_docs_extra_has_what_mkdocs_yml_uses() -> None:
    docs = PYPROJECT["project"]["optional-dependencies"]["docs"]
    names = {re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0] for requirement in docs}
    assert names == {"mkdocs-material", "mkdocstrings[python]"}
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "name: material" in config
    assert "- mkdocstrings:" in config


#: The public modules (DESIGN.md): what ``margin_async`` and ``margin_async.testing``
#: export, the public type aliases, the mirror's API, the console script's package and
#: the pytest plugin's entry point. Everything else is private by name.
PUBLIC_MODULES = {
    "margin_async",
    "margin_async.types",
    "margin_async.testing",
    "margin_async.testing.pytest_plugin",
    "margin_async.sync",
    "margin_async.cli",
    "margin_async.cli.__main__",
}


def test_every_other_module_is_private_by_name() -> None:
    package = ROOT / "margin_async"
    public = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not any(part.startswith("_") and part != "__main__" for part in parts[1:]):
            public.append(name)
    assert sorted(public) == sorted(PUBLIC_MODULES)
