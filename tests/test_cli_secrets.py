"""The CLI never prints a secret: not from a reply that echoes the request headers back
(a proxy page, an odd gateway), not in ``--debug`` logs or tracebacks, not in errors.

The secrets are the API secret, the passphrase and the signed passphrase header
(reusable on its own); the servers here echo every header they receive.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from test_cli import COMMAND, TIMEOUT, _clean_env

from margin_async import Credentials
from margin_async.cli import EXIT_API, EXIT_AUTH, EXIT_NETWORK, EXIT_OUTCOME_UNKNOWN

CREDS = Credentials(
    "key-0123456789", "secret-3c1f0e5a-77d2-4b0e-9a55-0c0ffee0c0de", "passphrase-Xy9!long", 3
)


class EchoServer:
    """Answers every request with a reply that quotes its ``KC-API-*`` headers."""

    def __init__(self, status: int, kind: str) -> None:
        self.status = status
        self.kind = kind
        self.signed_passphrases: set[str] = set()

    async def handle(self, request: web.BaseRequest) -> web.Response:
        signed = request.headers.get("KC-API-PASSPHRASE", "")
        self.signed_passphrases.add(signed)
        echoed = f"KC-API-PASSPHRASE: {signed} KC-API-KEY: {request.headers.get('KC-API-KEY')}"
        if self.kind == "json":
            body = f'{{"code":"400004","msg":"Invalid passphrase: {echoed}"}}'
            return web.Response(status=self.status, text=body, content_type="application/json")
        return web.Response(
            status=self.status, text=f"<html>{echoed}</html>", content_type="text/html"
        )


@pytest.fixture
async def serve() -> AsyncIterator[list[web.ServerRunner]]:
    runners: list[web.ServerRunner] = []
    yield runners
    for runner in runners:
        await runner.cleanup()


async def _start(runners: list[web.ServerRunner], server: EchoServer) -> str:
    runner = web.ServerRunner(web.Server(server.handle))
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        env=_clean_env(
            {
                "KUCOIN_API_KEY": CREDS.api_key,
                "KUCOIN_API_SECRET": CREDS.api_secret,
                "KUCOIN_API_PASSPHRASE": CREDS.api_passphrase,
            }
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize(
    ("status", "kind", "command", "code"),
    [
        pytest.param(502, "html", ("history", "interest"), EXIT_NETWORK, id="history-502"),
        pytest.param(404, "html", ("history", "interest"), EXIT_API, id="history-404"),
        pytest.param(401, "json", ("history", "interest"), EXIT_AUTH, id="history-401"),
        pytest.param(
            502, "html", ("borrow", "USDT", "10", "--yes"), EXIT_OUTCOME_UNKNOWN, id="borrow-502"
        ),
        pytest.param(401, "json", ("repay", "USDT", "10", "--yes"), EXIT_AUTH, id="repay-401"),
        pytest.param(401, "json", ("leverage", "3"), EXIT_AUTH, id="leverage-401"),
    ],
)
async def test_echoed_headers_never_reach_the_output(
    serve: list[web.ServerRunner],
    status: int,
    kind: str,
    command: tuple[str, ...],
    code: int,
    debug: bool,
) -> None:
    server = EchoServer(status, kind)
    url = await _start(serve, server)
    flags = ["--attempts", "1", "--base-url", url] + (["--debug"] if debug else [])
    returncode, out, err = await _cli(*command, *flags)
    assert returncode == code, err
    assert server.signed_passphrases - {""}, "the server saw no signed request"
    secrets = {CREDS.api_secret, CREDS.api_passphrase, *server.signed_passphrases} - {""}
    for secret in secrets:
        assert secret not in out and secret not in err
    # The excerpt itself is still shown (the error says what came back), minus the secret.
    assert "KC-API-PASSPHRASE: " in err
    assert ("Traceback" in err) == debug


def test_log_records_are_scrubbed_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    # asyncio's own reports ("Task exception was never retrieved") go through the same
    # scrubbing handler as margin_async's log while a command runs.
    import logging

    from margin_async.cli._state import RunState, logging_to_stderr

    state = RunState()
    state.add_credentials(CREDS)
    with logging_to_stderr(False, state):
        logging.getLogger("asyncio").error("echoed %s", CREDS.api_secret)
        try:
            raise RuntimeError(f"passphrase {CREDS.api_passphrase!r}")
        except RuntimeError:
            logging.getLogger("margin_async").exception("failed")
    err = capsys.readouterr().err
    assert "echoed [redacted]" in err and "RuntimeError: passphrase '[redacted]'" in err
    assert CREDS.api_secret not in err and CREDS.api_passphrase not in err
