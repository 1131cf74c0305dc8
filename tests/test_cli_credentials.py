"""Every way ``--credentials FILE`` can be refused says where and what, never the content.

Each case writes a secret-looking value into the file, runs the CLI as a subprocess and
checks that the value (or a recognisable piece of it) appears nowhere in its output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import run

from margin_async.cli import EXIT_USAGE

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")

SECRET = "s3cr3t-5f0c9d2e-7b1a-4c55-9e21-d00dfeedbeef"
#: Recognisable pieces: a message that cut the value short must not show these either.
PIECES = (SECRET, SECRET[:12], SECRET[-12:], "5f0c9d2e", "d00dfeedbeef")
GOOD = "api_key=key-1\napi_secret=the-secret\napi_passphrase=the-passphrase\n"


def _refused(tmp_path: Path, content: str | bytes, *, mode: int = 0o600) -> str:
    """Run a command with ``content`` as the credentials file; its stderr (exit 2)."""
    path = tmp_path / "kucoin.env"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    path.chmod(mode)
    result = run(
        "history", "interest", "--credentials", str(path), "--base-url", "http://127.0.0.1:9"
    )
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("margin-async: error: ")
    assert f"credentials file {path}" in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    for piece in PIECES:
        assert piece not in result.stderr
    return result.stderr


JSON_GOOD = '"api_key": "k", "api_secret": "s", "api_passphrase": "p"'
#: (what is wrong, the file's content, what the message says), one per refusal.
CASES = [
    # KEY=VALUE lines
    ("no-name", f"={SECRET}\n", "line 1: no key name before '='"),
    ("export-no-name", f"export ={SECRET}\n", "line 1: no key name before '='"),
    ("no-equals", f"{GOOD}{SECRET}\n", "line 4: expected KEY=VALUE"),
    ("unknown", f"# comment\n{SECRET}={SECRET}\n{GOOD}", "line 2: unknown key"),
    ("base64-alone", f"{SECRET}==\n{GOOD}", "line 1: unknown key"),
    ("space-in-name", f"api_secret {SECRET}=x\n{GOOD}", "line 1: unknown key"),
    (
        "twice",
        f"api_key=k\nsecret={SECRET}\napi_secret={SECRET}x\napi_passphrase=p\n",
        "line 3: api_secret is given twice (also at line 2)",
    ),
    ("version-text", f"{GOOD}key_version={SECRET}\n", "line 4: key_version must be 2 or 3"),
    ("version-5", f"{GOOD}key_version=5\n", "line 4: key_version must be 2 or 3"),
    ("version-superscript", f"{GOOD}key_version=²\n", "line 4: key_version must be 2 or 3"),
    (
        "bad-key",
        f"api_key={SECRET} x\napi_secret=s\napi_passphrase=p\n",
        "line 1: api_key must be printable ASCII",
    ),
    ("missing", f"api_secret={SECRET}\napi_passphrase={SECRET}\n", "lacks api_key"),
    ("empty", f"api_key=k\napi_secret=\napi_passphrase={SECRET}\n", "lacks api_secret"),
    # JSON
    (
        "json-syntax",
        '{"api_key": "k", "api_secret": "' + SECRET + '",\n "api_passphrase": }',
        "is not valid JSON (line 2)",
    ),
    ("json-number", '{"api_secret": 1' + "0" * 5000 + "}", "is not valid JSON"),
    ("json-nesting", '{"api_secret": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    (
        "json-unknown",
        '{"api_key": "k", "' + SECRET + '": "x", "api_secret": "s", "api_passphrase": "p"}',
        "JSON key 2: unknown key (expected api_key",
    ),
    (
        "json-list",
        '{"api_key": "k", "api_secret": ["' + SECRET + '"], "api_passphrase": "p"}',
        "JSON key 2: api_secret must be a string",
    ),
    (
        "json-bool",
        '{"api_key": "k", "api_secret": true, "api_passphrase": "' + SECRET + '"}',
        "JSON key 2: api_secret must be a string",
    ),
    (
        "json-twice",
        '{"api_key": "k", "secret": "s", "api_secret": "' + SECRET + '", "api_passphrase": "p"}',
        "JSON key 3: api_secret is given twice (also at JSON key 2)",
    ),
    (
        "json-version",
        "{" + JSON_GOOD + ', "key_version": "' + SECRET + '"}',
        "JSON key 4: key_version must be 2 or 3",
    ),
    (
        "json-bad-key",
        '{"api_key": "' + SECRET + '\\n", "api_secret": "s", "api_passphrase": "p"}',
        "JSON key 1: api_key must be printable ASCII",
    ),
    ("json-missing", '{"api_secret": "' + SECRET + '", "api_passphrase": "p"}', "lacks api_key"),
]


@pytest.mark.parametrize(
    ("content", "expected"), [pytest.param(c, e, id=name) for name, c, e in CASES]
)
def test_refusals_say_where_and_what_but_never_the_content(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert expected in _refused(tmp_path, content)


def test_unreadable_files_are_refused_without_content(tmp_path: Path) -> None:
    assert "not UTF-8 text" in _refused(tmp_path, f"api_secret={SECRET}\xff\n".encode("latin-1"))
    assert "chmod 600" in _refused(tmp_path, f"api_secret={SECRET}\n", mode=0o644)
    missing = run("history", "interest", "--credentials", str(tmp_path / "nope"))
    assert missing.returncode == EXIT_USAGE and "cannot read credentials file" in missing.stderr


@pytest.mark.parametrize(
    ("key", "version", "expected"),
    [
        ("k", SECRET, "KUCOIN_API_KEY_VERSION must be 2 or 3"),
        (f"{SECRET} x", "3", "KUCOIN_API_KEY must be printable ASCII"),
        ("k", "", "KUCOIN_API_KEY_VERSION must be 2 or 3"),
    ],
)
def test_environment_credentials_are_never_echoed(key: str, version: str, expected: str) -> None:
    result = run(
        "history",
        "interest",
        "--base-url",
        "http://127.0.0.1:9",
        env={
            "KUCOIN_API_KEY": key,
            "KUCOIN_API_SECRET": SECRET + "-secret",
            "KUCOIN_API_PASSPHRASE": SECRET + "-passphrase",
            "KUCOIN_API_KEY_VERSION": version,
        },
    )
    assert result.returncode == EXIT_USAGE
    assert expected in result.stderr
    for piece in PIECES:
        assert piece not in result.stderr and piece not in result.stdout
