"""Ctrl-C and SIGTERM during ``margin-async borrow`` / ``repay``, run as a real subprocess.

Once the borrow/repay call has started, the CLI cannot know whether its bytes left, so
an interrupt is an unknown outcome (exit 6, "check the history"), never a plain 130 (or,
for SIGTERM, a silent death). An interrupt before that point (at the confirmation
prompt) is still 130.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable

import pytest
from test_cli import COMMAND, TIMEOUT, _clean_env

from margin_async.cli import EXIT_INTERRUPTED, EXIT_OUTCOME_UNKNOWN, EXIT_TERMINATED
from margin_async.testing import FakeKuCoin

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


async def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` until it is true (a state to reach, not a timing assert)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("args", "route", "hint"),
    [
        pytest.param(
            ("borrow", "USDT", "10", "--tif", "FOK"),
            "POST /api/v3/margin/borrow",
            "margin-async history borrow --currency USDT",
            id="borrow",
        ),
        pytest.param(
            ("repay", "BTC", "0.5", "--isolated", "--symbol", "BTC-USDT"),
            "POST /api/v3/margin/repay",
            "margin-async history repay --currency BTC --isolated --symbol BTC-USDT",
            id="repay-isolated",
        ),
    ],
)
@pytest.mark.parametrize(
    ("sig", "said"),
    [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")],
    ids=["ctrl-c", "sigterm"],
)
async def test_a_signal_while_money_is_in_flight_exits_6(
    args: tuple[str, ...], route: str, hint: str, sig: signal.Signals, said: str
) -> None:
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        # Every request waits far longer than the test: the borrow/repay is still in
        # flight (arrived, not answered) when the signal comes.
        fake.set_latency(10 * TIMEOUT)
        env = _clean_env(
            {
                "KUCOIN_API_KEY": creds.api_key,
                "KUCOIN_API_SECRET": creds.api_secret,
                "KUCOIN_API_PASSPHRASE": creds.api_passphrase,
            }
        )
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            *args,
            "--yes",
            "--base-url",
            fake.url,
            # Far beyond the test: exit 6 must come from the interrupt, not a timeout.
            "--timeout",
            str(10 * TIMEOUT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            await _wait_for(lambda: fake.stats.requests[route] >= 1)
            process.send_signal(sig)
            async with asyncio.timeout(TIMEOUT):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert fake.stats.requests[route] == 1  # never resent
    stderr = err.decode()
    assert process.returncode == EXIT_OUTCOME_UNKNOWN, stderr
    assert out == b""
    assert "Traceback" not in stderr
    assert f"{said} while the {args[0]} was under way" in stderr
    assert f"outcome unknown: the {args[0]} may or may not have been applied" in stderr
    assert f"check the history ({hint}" in stderr
    assert stderr.rstrip().endswith("before trying again")


async def test_ctrl_c_at_the_prompt_exits_130_and_sends_nothing() -> None:
    import pty

    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        controller, terminal = pty.openpty()
        try:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "borrow",
                "USDT",
                "10",
                "--base-url",
                fake.url,
                env=_clean_env(
                    {
                        "KUCOIN_API_KEY": creds.api_key,
                        "KUCOIN_API_SECRET": creds.api_secret,
                        "KUCOIN_API_PASSPHRASE": creds.api_passphrase,
                    }
                ),
                stdin=terminal,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                assert process.stderr is not None
                prompt = b""
                async with asyncio.timeout(TIMEOUT):
                    while b"[y/N]" not in prompt:
                        chunk = await process.stderr.read(100)
                        assert chunk, prompt
                        prompt += chunk
                process.send_signal(signal.SIGINT)
                async with asyncio.timeout(TIMEOUT):
                    out, err = await process.communicate()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        finally:
            os.close(controller)
            os.close(terminal)
        assert not fake.stats.requests  # nothing reached the exchange
    stderr = err.decode()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert out == b""
    assert "interrupted" in stderr and "the borrow was not sent" in stderr
    assert "outcome unknown" not in stderr and "Traceback" not in stderr


async def test_sigterm_during_a_history_stream_exits_143_with_a_message() -> None:
    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=0, repays=0, interest=50)
        fake.set_latency(10 * TIMEOUT)
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "history",
            "interest",
            "--currency",
            "USDT",
            "--base-url",
            fake.url,
            env=_clean_env(
                {
                    "KUCOIN_API_KEY": creds.api_key,
                    "KUCOIN_API_SECRET": creds.api_secret,
                    "KUCOIN_API_PASSPHRASE": creds.api_passphrase,
                }
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            await _wait_for(lambda: sum(fake.stats.requests.values()) >= 1)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT):
                _, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == EXIT_TERMINATED, err
    assert err.decode() == "margin-async: terminated\n"
