"""Ctrl-C during ``margin-async borrow`` / ``repay``, run as a real subprocess.

Once the borrow/repay call has started, the CLI cannot know whether its bytes left, so
an interrupt is an unknown outcome (exit 6, "check the history"), never a plain 130.
An interrupt before that point (at the confirmation prompt) is still 130.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable

import pytest
from test_cli import COMMAND, TIMEOUT, _clean_env

from margin_async.cli import EXIT_INTERRUPTED, EXIT_OUTCOME_UNKNOWN
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
async def test_ctrl_c_while_money_is_in_flight_exits_6(
    args: tuple[str, ...], route: str, hint: str
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
            process.send_signal(signal.SIGINT)
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
    assert "interrupted" in stderr
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
