"""The pytest plugin's fixtures, used here directly and, in a subprocess, as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import aiohttp

from margin_async import MarginClient
from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

# Imported so this module can use the fixtures whether or not the package is installed
# (installed, the ``pytest11`` entry point registers the same functions).
from margin_async.testing.pytest_plugin import (  # noqa: F401
    fake_kucoin,
    kucoin_credentials,
    margin_client,
)


async def test_fake_kucoin_fixture_is_serving(fake_kucoin: FakeKuCoin) -> None:  # noqa: F811
    async with (
        aiohttp.ClientSession() as http,
        http.get(fake_kucoin.url + "/api/v1/timestamp") as resp,
    ):
        assert resp.status == 200


async def test_credentials_fixture_is_an_account_on_the_fake(
    fake_kucoin: FakeKuCoin,  # noqa: F811
    kucoin_credentials: Credentials,  # noqa: F811
) -> None:
    assert fake_kucoin.ledger(kucoin_credentials.api_key) == []


async def test_margin_client_fixture_talks_to_the_fake(
    fake_kucoin: FakeKuCoin,  # noqa: F811
    kucoin_credentials: Credentials,  # noqa: F811
    margin_client: MarginClient,  # noqa: F811
) -> None:
    result = await margin_client.borrow("USDT", Decimal("10"), time_in_force="IOC")
    [entry] = fake_kucoin.ledger(kucoin_credentials.api_key)
    assert (entry.order_no, entry.actual_size) == (result.order_no, Decimal(10))


def test_loads_as_a_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            async def test_uses_fixtures(fake_kucoin, kucoin_credentials):
                assert fake_kucoin.url.startswith("http://127.0.0.1:")
                assert fake_kucoin.ledger(kucoin_credentials.api_key) == []
            """
        )
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        # Block the entry point (if installed) so the module is not registered twice.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:margin_async",
         "-p", "margin_async.testing.pytest_plugin", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout
