"""Test sessions for CI: the suite on the newest dependencies and on the declared floors.

``nox -s tests`` installs what ``pip install -e ".[dev]"`` gives a user today (aiohttp
3.14.x); ``nox -s tests-floors`` installs the lowest versions ``pyproject.toml`` admits
for every direct dependency (aiohttp 3.10, attrs 23.1, cattrs 23.2, and the test tools'
floors). Both run the README's test command.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "tests-floors"]

#: The README's test command.
TEST_COMMAND = ("python", "-m", "pytest", "--cov=margin_async")
#: Prints the versions a run got, so that its log says what was tested.
VERSIONS = (
    "from importlib.metadata import version; "
    "print(', '.join(f'{n} {version(n)}' for n in "
    "('aiohttp', 'attrs', 'cattrs', 'aioresponses', 'pytest', 'hypothesis')))"
)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The suite on the newest releases of every dependency."""
    session.install("--upgrade", "-e", ".[dev]")
    session.run("python", "-c", VERSIONS)
    session.run(*TEST_COMMAND, *session.posargs)


@nox.session(python="3.11", name="tests-floors")
def tests_floors(session: nox.Session) -> None:
    """The suite on the lowest versions pyproject.toml declares."""
    session.install("--resolution", "lowest-direct", "-e", ".[dev]")
    session.run("python", "-c", VERSIONS)
    session.run(*TEST_COMMAND, *session.posargs)
