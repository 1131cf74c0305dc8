"""The shape of ``margin_async.cli``: a client of the public API only, small modules,
subcommands registered from outside, and the SDK's validation said with the CLI's flags.

Commands run as real subprocesses against ``--sandbox`` (an embedded fake) only.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_cli import TIMEOUT, _clean_env, jsonl, run

import margin_async
import margin_async.cli
import margin_async.sync
import margin_async.testing
from margin_async.cli import EXIT_OK, EXIT_USAGE

CLI_DIR = Path(margin_async.cli.__file__).parent
MODULES = sorted(CLI_DIR.glob("*.py"))
#: What the CLI may import of the SDK: the public names of these modules.
PUBLIC = {
    "margin_async": set(margin_async.__all__),
    "margin_async.testing": set(margin_async.testing.__all__),
    "margin_async.sync": set(margin_async.sync.__all__),
}


def _sdk_imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every import of ``margin_async`` in ``path``
    (relative imports resolved), its own package's modules left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = ["margin_async", "cli"][: 2 - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return [
        (module, names, line)
        for module, names, line in found
        if module.split(".")[0] == "margin_async"
        and module != "margin_async.cli"
        and not module.startswith("margin_async.cli.")
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_cli_imports_only_public_names(path: Path) -> None:
    for module, names, line in _sdk_imports(path):
        where = f"{path.name}:{line}"
        assert module in PUBLIC, f"{where} imports {module}: only margin_async(.testing|.sync)"
        assert names, f"{where}: `import {module}` (import public names from it instead)"
        private = set(names) - PUBLIC[module]
        assert not private, f"{where} imports {sorted(private)} from {module}: not in __all__"


def test_the_import_check_sees_private_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from margin_async._session import DEFAULT_BASE_URL\n"
        "from margin_async import _version\n"
        "from .._errors import ValidationError\n"
        "from .output import plain\n"
        "import margin_async._convert\n"
    )
    assert [(m, n) for m, n, _ in _sdk_imports(bad)] == [
        ("margin_async._session", ["DEFAULT_BASE_URL"]),
        ("margin_async", ["_version"]),
        ("margin_async._errors", ["ValidationError"]),
        ("margin_async._convert", []),
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_cli_module_is_long(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 300


def test_console_script_resolves_to_the_package_main() -> None:
    [script] = [
        ep
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.name == "margin-async"
    ]
    assert script.value == "margin_async.cli:main"
    assert script.load() is margin_async.cli.main


def test_a_subcommand_registered_from_another_module() -> None:
    # As issue 13's `sync` will: a register(commands) function, appended to COMMANDS.
    script = textwrap.dedent(
        """
        import sys
        from margin_async import ValidationError
        from margin_async.cli import main
        from margin_async.cli._app import COMMANDS
        from margin_async.cli._errors import Arg

        async def run(args, state):
            if args.limit < 10:
                raise ValidationError("page_size", f"must be from 10 to 500, got {args.limit}")
            print(f"hello {args.limit}")

        def register(commands):
            hello = commands.add(
                "hello", "say hello", run, arguments={"page_size": Arg("limit", "--limit")}
            )
            hello.add_argument("--limit", type=int, default=10)

        sys.exit(main(sys.argv[1:], commands=(*COMMANDS, register)))
        """
    )

    def hello(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    ok = hello("hello", "--limit", "20")
    assert (ok.returncode, ok.stdout, ok.stderr) == (EXIT_OK, "hello 20\n", "")
    refused = hello("hello", "--limit", "5")
    assert refused.returncode == EXIT_USAGE
    assert refused.stderr == "margin-async: error: --limit must be from 10 to 500, got 5\n"
    listed = hello("--help")
    assert "hello" in listed.stdout and "history" in listed.stdout


# -- the SDK judges; the CLI says it with the flags ---------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("history", "interest", "--page-size", "5"),
            "--page-size must be from 10 to 500, got 5",
        ),
        (
            ("history", "interest", "--since", "1700000000"),
            "--since 1700000000 looks like seconds; pass epoch milliseconds",
        ),
        (
            ("history", "interest", "--since", "2024-02-01", "--until", "2024-01-01"),
            "--since is after --until (1706745600000 > 1704067200000)",
        ),
        (("history", "borrow"), "history borrow needs --currency (e.g. --currency USDT)"),
        (
            ("history", "repay", "--currency", "USDT", "--isolated"),
            "history repay needs --symbol (e.g. --symbol BTC-USDT)",
        ),
        (
            ("history", "repay", "--currency", "USDT", "--symbol", "BTC-USDT"),
            "--symbol is only used with --isolated",
        ),
        (("history", "interest", "--currency", "ß"), "--currency 'ß' is not a currency code"),
        (("history", "interest", "--currency", "USDT,,BTC"), "--currency must be a currency"),
        (("history", "interest", "--attempts", "0"), "--attempts must be an int >= 1, got 0"),
        (("leverage", "3.555"), "LEVERAGE allows at most two decimals, got '3.555'"),
        (
            ("borrow", "USDT", "-1", "--yes"),
            "SIZE must be a positive amount, got '-1'; the borrow was not sent",
        ),
        (
            ("repay", "USDT", "1", "--isolated", "--symbol", "BTCUSDT", "--yes"),
            "--symbol must look like 'BTC-USDT', got 'BTCUSDT'; the repay was not sent",
        ),
    ],
)
def test_sdk_refusals_name_the_flags(args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--sandbox")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"margin-async: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    for python_name in ("page_size", "start_time", "end_time", "is_isolated", "size:"):
        assert python_name not in result.stderr


def test_the_sdk_rules_win_where_the_cli_disagreed() -> None:
    # An ISO date before 1973 is a date, not "epoch seconds by mistake" (the CLI turned
    # it into a small millisecond count that the SDK then took for seconds).
    early = run("history", "interest", "--sandbox", "--since", "1970-01-02", "--format", "jsonl")
    assert early.returncode == 0, early.stderr
    assert len(jsonl(early.stdout)) == 2000 + 100
    # "ß" is not a currency code (the CLI upper-cased it to "SS" and asked for that);
    # the SDK's 20-character limit holds for the CLI too.
    for code in ("ß", "A" * 21):
        refused = run("history", "interest", "--sandbox", "--currency", code)
        assert refused.returncode == EXIT_USAGE, refused.stderr


def test_numbers_are_written_in_plain_notation() -> None:
    borrow = run("borrow", "usdt", "1e1", "--sandbox", "--yes")
    assert borrow.returncode == 0, borrow.stderr
    [row] = jsonl(borrow.stdout)
    assert (row["currency"], row["size"], row["actual_size"]) == ("USDT", "10", "10")
    leverage = run("leverage", "1e1", "--sandbox")
    assert jsonl(leverage.stdout) == [{"leverage": "10", "mode": "cross", "symbol": ""}]


def test_invalid_key_version_in_the_environment_is_not_missing_credentials() -> None:
    env = {
        "KUCOIN_API_KEY": "key-1",
        "KUCOIN_API_SECRET": "secret-0123456789",
        "KUCOIN_API_PASSPHRASE": "passphrase-0123456789",
        "KUCOIN_API_KEY_VERSION": "7",
    }
    result = run("history", "interest", "--base-url", "http://127.0.0.1:9", env=env)
    assert result.returncode == EXIT_USAGE
    assert "no credentials" not in result.stderr
    assert "environment: KUCOIN_API_KEY_VERSION must be 2 or 3, got 7\n" in result.stderr


def test_base_url_refusal_names_its_source() -> None:
    env = {
        "KUCOIN_API_KEY": "key-1",
        "KUCOIN_API_SECRET": "secret-0123456789",
        "KUCOIN_API_PASSPHRASE": "passphrase-0123456789",
    }
    flag = run("history", "interest", "--base-url", "ftp://x", env=env)
    assert flag.returncode == EXIT_USAGE
    assert "error: --base-url must be an http(s) URL" in flag.stderr
    variable = run("history", "interest", env={**env, "MARGIN_ASYNC_BASE_URL": "nonsense"})
    assert variable.returncode == EXIT_USAGE
    assert "error: $MARGIN_ASYNC_BASE_URL must be an http(s) URL" in variable.stderr


def test_sandbox_and_demo_do_not_take_connection_options() -> None:
    for command in ("sandbox", "demo"):
        result = run(command, "--help")
        assert result.returncode == 0
        assert "--debug" in result.stdout and "--attempts" not in result.stdout
