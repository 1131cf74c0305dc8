"""The ``sync`` command (``margin-async sync``, :mod:`margin_async.cli._sync`), its
accounts and credentials files, exit codes, signals and output; in process and as a
subprocess, against the embedded sandbox or a loopback FakeKuCoin only."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sync_helpers import SYNC, clean_env, query, run_sync

from margin_async import Credentials
from margin_async.cli import EXIT_API, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exit_code, main
from margin_async.cli._app import COMMANDS
from margin_async.cli._errors import UsageError
from margin_async.cli._parser import Command, build_parser
from margin_async.cli._state import RunState
from margin_async.cli._sync_accounts import account_credentials
from margin_async.cli._sync_run import run
from margin_async.sync import (
    AccountSpec,
    LeaseLostError,
    StoreError,
    SyncConfigError,
    load_accounts,
)
from margin_async.testing import FakeKuCoin

SECRET = "s3cr3t-never-printed"


def counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("borrow_orders", "repay_orders", "interest_records")
        }
    finally:
        db.close()


def test_sandbox_once_is_quiet_when_piped(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    done = run_sync(["--sandbox", "--db", f"sqlite:///{db}", "--once"], clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    # The sandbox: cross USDT and BTC, isolated BTC-USDT, 1000 borrows per currency.
    assert counts(db) == {"borrow_orders": 2200, "repay_orders": 1200, "interest_records": 4200}


async def test_run_scrubs_the_secrets_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        for name, value in clean_env(creds).items():
            if name.startswith("KUCOIN_"):
                monkeypatch.setenv(name, value)
        argv = ["sync", "--db", f"sqlite:///{tmp_path / 'm.db'}", "--once", "--no-progress"]
        args = build_parser(COMMANDS).parse_args([*argv, "--base-url", fake.url])
        args.currency = ["USDT"]
        state = RunState()
        await run(args, state)
    assert state.scrub(f"x {creds.api_secret} {creds.api_passphrase} y") == (
        "x [redacted] [redacted] y"
    )


def test_progress_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    argv = ["sync", "--sandbox", "--db", f"sqlite:///{db}", "--once", "--progress"]
    argv += ["--currency", "usdt", "--kinds", "interest,borrow", "--sandbox-records", "100"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    # The CLI's display (its last state: one line, the records written), then a summary.
    assert re.search(r"sync .*300/300 records", err), err
    assert err.endswith("sync: 1/1 accounts up to date, 300 records\n")
    assert counts(db) == {"borrow_orders": 100, "repay_orders": 0, "interest_records": 200}


def test_sandbox_accounts_file_mirrors_every_label(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[defaults]\ncurrencies = ["USDT"]\n\n'
        '[[accounts]]\nlabel = "alpha"\nenv = { api_key = "A_KEY", api_secret = "A_SECRET", '
        'api_passphrase = "A_PASS" }\n\n'
        '[[accounts]]\nlabel = "beta"\ncredentials = "beta.env"\nkinds = ["interest"]\n'
        'isolated = ["eth-usdt"]\n'
    )
    db = tmp_path / "m.db"
    argv = ["sync", "--sandbox", "--accounts", str(accounts), "--db", f"sqlite:///{db}"]
    assert main([*argv, "--once", "--sandbox-records", "50"]) == 0
    rows = sqlite3.connect(db).execute(
        "SELECT account, kind, symbol, currencies, records FROM sync_cursors ORDER BY 1, 2, 3"
    )
    assert list(rows) == [
        ("alpha", "borrow", "", "USDT", 50),
        ("alpha", "interest", "", "USDT", 100),
        ("alpha", "repay", "", "USDT", 25),
        ("beta", "interest", "", "USDT", 100),
        ("beta", "interest", "ETH-USDT", "USDT", 5),
    ]


def test_accounts_file_sources_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds_file = tmp_path / "keys" / "one.env"
    creds_file.parent.mkdir()
    creds_file.write_text(
        f"# a saved sandbox output works too\nexport KUCOIN_API_KEY=k1\n"
        f"KUCOIN_API_SECRET='{SECRET}'\nKUCOIN_API_PASSPHRASE=p1\n"
    )
    creds_file.chmod(0o600)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[accounts]]\nlabel = "one"\ncredentials = "keys/one.env"\ncurrencies = ["usdt", "BTC"]\n'
        'cross = false\nisolated = ["BTC-USDT"]\n\n'
        '[[accounts]]\nlabel = "two"\nenv = { api_key = "TWO_KEY", api_secret = "TWO_SECRET", '
        'api_passphrase = "TWO_PASS", key_version = "TWO_VERSION" }\n'
    )
    one, two = load_accounts(accounts)
    assert one.spec == AccountSpec(currencies=["USDT", "BTC"], isolated=["BTC-USDT"], cross=False)
    state = RunState()
    assert account_credentials(one, state) == (Credentials("k1", SECRET, "p1"), None)
    assert state.scrub(SECRET) == "[redacted]"
    assert two.spec == AccountSpec()
    monkeypatch.setenv("TWO_KEY", "k2")
    monkeypatch.setenv("TWO_SECRET", SECRET)
    monkeypatch.setenv("TWO_PASS", "p2")
    monkeypatch.setenv("TWO_VERSION", "2")
    assert account_credentials(two, RunState())[0] == Credentials("k2", SECRET, "p2", 2)
    monkeypatch.setenv("TWO_VERSION", "5")
    with pytest.raises(UsageError, match="TWO_VERSION must be 2 or 3"):
        account_credentials(two, RunState())
    monkeypatch.setenv("TWO_VERSION", "3")
    monkeypatch.setenv("TWO_KEY", "has space")
    with pytest.raises(UsageError, match="TWO_KEY is not valid"):
        account_credentials(two, RunState())
    monkeypatch.delenv("TWO_PASS")
    with pytest.raises(UsageError, match=r"TWO_PASS \(api_passphrase\) is not set"):
        account_credentials(two, RunState())

    refusals = {
        f'[[accounts]]\nlabel = "x"\napi_secret = "{SECRET}"\n': "looks like a secret",
        f'[[accounts]]\nlabel = "x"\nKUCOIN_API_PASSPHRASE = "{SECRET}"\n': "like a secret",
        f'[[accounts]]\nlabel = "x"\nenv = {{ api_key = "K", api_secret = "{SECRET}!", '
        'api_passphrase = "P" }\n': "must be the NAME of an environment variable",
        '[[accounts]]\nlabel = "x"\nenv = { api_key = "K" }\n': "env lacks api_secret",
        '[[accounts]]\nlabel = "x"\n[[accounts]]\nlabel = "x"\n': "given twice",
        '[[accounts]]\nlabel = "x"\ncolour = "red"\n': "unknown key 'colour'",
        '[[accounts]]\nlabel = "x"\ncurrencies = ["US DT"]\n': "not a currency code",
        '[[accounts]]\nlabel = "x"\nisolated = ["BTCUSDT"]\n': "not a symbol",
        '[[accounts]]\nlabel = "x"\nkinds = ["loans"]\n': "kinds must be a list",
        '[[accounts]]\nlabel = "x"\ncross = "no"\n': "cross must be true or false",
        '[[accounts]]\nlabel = ""\n': "label must be a non-empty string",
        '[[accounts]]\nlabel = "x"\ncredentials = "a"\nenv = {}\n': "not both",
        "[accounts]\nlabel = 1\n": "no [[accounts]] entry",
        "[database]\nurl = 'x'\n": "unknown table",
        "[[accounts]\n": "not valid TOML",
        'defaults = 1\n[[accounts]]\nlabel = "x"\n': "[defaults] must be a table",
        "accounts = [1]\n": "account 1 must be a table",
        '[[accounts]]\nlabel = "x"\ncredentials = 1\n': "must be the path of a credentials",
        '[[accounts]]\nlabel = "x"\nenv = "X"\n': "env must be a table",
        '[[accounts]]\nlabel = "x"\nenv = { colour = "X" }\n': "env.colour is not one of",
        '[[accounts]]\nlabel = "x"\ncurrencies = []\n': "currencies must be a non-empty list",
        '[[accounts]]\nlabel = "x"\nisolated = "BTC-USDT"\n': "isolated must be a list",
    }
    for text, message in refusals.items():
        accounts.write_text(text)
        with pytest.raises(SyncConfigError, match=re.escape(message)) as caught:
            load_accounts(accounts)
        assert SECRET not in str(caught.value)
    with pytest.raises(SyncConfigError, match="cannot read it"):
        load_accounts(tmp_path / "missing.toml")


def test_an_accounts_file_credentials_file_is_read_as_cli_credentials_are(
    tmp_path: Path,
) -> None:
    # The CLI's reader (margin_async.cli._credentials, tested in depth by
    # test_cli_credentials.py): the same refusals, never showing the content.
    path = tmp_path / "c.json"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[accounts]]\nlabel = "a"\ncredentials = "c.json"\n')
    [entry] = load_accounts(accounts)
    path.write_text(f'{{"api_key": "k", "api_secret": "{SECRET}", "api_passphrase": "p"}}')
    path.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        account_credentials(entry, RunState())
    path.chmod(0o600)
    assert account_credentials(entry, RunState()) == (Credentials("k", SECRET, "p"), None)
    for text, message in {
        "{": "not valid JSON",
        f'{{"api_key": "k", "key": "k2", "secret": "{SECRET}", "passphrase": "p"}}': "twice",
        f"{SECRET}\n": "line 1: expected KEY=VALUE",
    }.items():
        path.write_text(text)
        with pytest.raises(UsageError, match=re.escape(message)) as caught:
            account_credentials(entry, RunState())
        assert SECRET not in str(caught.value)
    path.unlink()
    with pytest.raises(UsageError, match="cannot read credentials file"):
        account_credentials(entry, RunState())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--once"], "give --db URL"),
        (["--once", "--db", "mysql://u:pw@h/db"], "unsupported database URL"),
        (["--once", "--db", "sqlite:///m.db", "--kinds", "loans"], "--kinds must be"),
        (["--once", "--db", "sqlite:///m.db", "--currency", "U$D"], "--currency 'U$D' is not"),
        (["--once", "--db", "sqlite:///m.db", "--symbols", "BTC"], "--symbols 'BTC' is not"),
        (["--once", "--db", "sqlite:///m.db", "--label", ""], "--label must not be empty"),
        (["--once", "--db", "sqlite:///m.db"], "no credentials"),
        (["--once", "--db", "sqlite:///m.db", "--currency", "USDT"], "no credentials"),
        (["--once", "--db", "sqlite:///m.db", "--kinds", "borrow"], "need currencies"),
        (["--once", "--db", "sqlite:///m.db", "--sandbox", "--base-url", "x"], "drop --base-url"),
        (["--once", "--db", "sqlite:///m.db", "--quota", "20"], "--headroom leaves the mirror"),
        (
            ["--once", "--db", "sqlite:///m.db", "--currency", "USDT", "--attempts", "0"],
            "--attempts must be an int",
        ),
        (
            ["--once", "--db", "sqlite:///m.db", "--currency", "USDT", "--base-url", "ftp://x"],
            "--base-url must be an http(s) URL",
        ),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("KUCOIN_", "MARGIN_ASYNC_")):
            monkeypatch.delenv(name)
    if "no credentials" not in message:
        monkeypatch.setenv("KUCOIN_API_KEY", "k")
        monkeypatch.setenv("KUCOIN_API_SECRET", SECRET)
        monkeypatch.setenv("KUCOIN_API_PASSPHRASE", "p")
    assert main(["sync", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and SECRET not in err and "pw@" not in err
    assert err.startswith("margin-async: error: ") and err.count("\n") == 1


def test_once_and_follow_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sync", "--db", "sqlite:///m.db", "--once", "--follow"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_cli_parser_has_sync_with_its_connection_options() -> None:
    parser = build_parser(COMMANDS)
    args = parser.parse_args(["sync", "--db", "sqlite:///x.db", "--follow", "--interval", "2"])
    assert (args.command, args.db, args.follow, args.interval) == (
        "sync",
        "sqlite:///x.db",
        True,
        2,
    )
    assert args.kinds == "borrow,repay,interest" and args.headroom == 0.25
    assert (args.sandbox, args.attempts, args.timeout, args.debug) == (False, 4, 10.0, False)
    assert isinstance(args.handler, Command)
    # The CLI's connection options, before or after the command, as for every command.
    before = parser.parse_args(["--sandbox", "--attempts", "2", "sync", "--db", "x", "--once"])
    after = parser.parse_args(["sync", "--db", "x", "--once", "--sandbox", "--attempts", "2"])
    assert (before.sandbox, before.attempts) == (after.sandbox, after.attempts) == (True, 2)


def test_exit_codes_are_the_cli_s() -> None:
    from margin_async import (
        AuthenticationError,
        MarginError,
        RateLimitError,
        TransportError,
        ValidationError,
    )

    assert exit_code(ValidationError("x", "y")) == 2
    assert exit_code(SyncConfigError("db", "y")) == 2
    assert exit_code(AuthenticationError("400003", "bad key", 401)) == 3
    assert exit_code(RateLimitError("429000", "slow down", 429)) == 4
    assert exit_code(TransportError("down")) == 5
    assert exit_code(MarginError("other")) == EXIT_API
    assert exit_code(StoreError("disk full")) == EXIT_API
    assert exit_code(LeaseLostError("a")) == EXIT_API
    assert exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code(RuntimeError("bug")) == 1


async def test_refused_credentials_exit_3_without_the_secret(tmp_path: Path) -> None:
    async with FakeKuCoin() as fake:
        stranger = Credentials("unknown-key", SECRET, "passphrase")
        process = await asyncio.create_subprocess_exec(
            *SYNC, "--db", f"sqlite:///{tmp_path / 'm.db'}", "--base-url", fake.url,
            "--currency", "USDT", "--once",
            env=clean_env(stranger), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
    assert process.returncode == 3, err
    assert b"400003" in err and SECRET.encode() not in err and out == b""


async def test_sigterm_stops_follow_with_exit_0_and_gives_the_lease_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=100, repays=100, interest=100)
        process = await asyncio.create_subprocess_exec(
            *SYNC, "--db", url, "--base-url", fake.url, "--currency", "USDT", "--follow",
            "--interval", "0.1", "--worker", "solo",
            env=clean_env(creds), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(60):
                while True:  # until the backlog is in
                    if process.returncode is not None:
                        raise AssertionError((await process.communicate())[1])
                    try:
                        if (await query(url, "SELECT count(*) FROM repay_orders"))[0][0] == 100:
                            break
                    except sqlite3.OperationalError:
                        pass  # the tables are not there yet
                    await asyncio.sleep(0.05)
            assert await query(url, "SELECT owner FROM sync_leases") == [("solo",)]
            process.send_signal(signal.SIGTERM)
            out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    # The command's own handler, not the CLI's SIGTERM-cancels (exit 143): exit 0.
    assert process.returncode == EXIT_OK, err
    assert out == b"" and err == b""
    assert await query(url, "SELECT owner FROM sync_leases") == [(None,)]
    assert await query(url, "SELECT count(*) FROM sync_workers") == [(0,)]


def test_importing_needs_no_database_driver() -> None:
    code = (
        "import sys, margin_async; assert 'margin_async.sync' not in sys.modules; "
        "import margin_async.sync; "
        "bad = [m for m in ('asyncpg', 'sqlite3') if m in sys.modules]; "
        "assert not bad, bad"
    )
    # Without coverage: pytest-cov before 7 starts it in every subprocess (a .pth hook
    # reading COV_CORE_*), and coverage keeps its data in sqlite3.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


async def test_a_saved_sandbox_file_names_the_exchange(tmp_path: Path) -> None:
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=40)
        saved = tmp_path / "sandbox.env"
        saved.write_text(
            f"# margin-async sandbox\nexport KUCOIN_API_KEY={creds.api_key}\n"
            f"export KUCOIN_API_SECRET={creds.api_secret}\n"
            f"export KUCOIN_API_PASSPHRASE={creds.api_passphrase}\n"
            f"export KUCOIN_API_KEY_VERSION=3\nexport MARGIN_ASYNC_BASE_URL={fake.url}\n"
        )
        saved.chmod(0o600)
        db = tmp_path / "m.db"
        process = await asyncio.create_subprocess_exec(
            *SYNC, "--db", f"sqlite:///{db}", "--credentials", str(saved), "--once",
            "--currency", "USDT", "--kinds", "borrow",
            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        assert process.returncode == 0, err
        # Accounts whose files name different exchanges cannot share one sync.
        other = tmp_path / "other.env"
        other.write_text(saved.read_text().replace(fake.url, "http://127.0.0.1:9"))
        other.chmod(0o600)
        accounts = tmp_path / "accounts.toml"
        accounts.write_text(
            '[defaults]\ncurrencies = ["USDT"]\n'
            '[[accounts]]\nlabel = "a"\ncredentials = "sandbox.env"\n'
            '[[accounts]]\nlabel = "b"\ncredentials = "other.env"\n'
        )
        argv = ["sync", "--db", f"sqlite:///{db}", "--accounts", str(accounts), "--once"]
        assert await asyncio.to_thread(main, argv) == EXIT_USAGE
    assert counts(db)["borrow_orders"] == 40


def test_main_leaves_the_logger_as_it_found_it(tmp_path: Path) -> None:
    import logging

    logger = logging.getLogger("margin_async")
    before = (logger.level, logger.propagate, list(logger.handlers))
    assert main(["sync", "--once", "--db", "mysql://x"]) == 2
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
