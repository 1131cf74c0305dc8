"""The exchange a command talks to: the real one (credentials, ``--base-url``) or, with
``--sandbox``, an embedded fake seeded with history and throwaway credentials."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator

from margin_async import DEFAULT_BASE_URL, Credentials, MarginClient, RetryPolicy, ValidationError
from margin_async.cli.credentials import credentials
from margin_async.cli.errors import UsageError
from margin_async.cli.parser import ENV_BASE_URL
from margin_async.cli.sandbox import SANDBOX_BORROWS, sandbox_account
from margin_async.cli.state import RunState

__all__ = ["open_client"]


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace, state: RunState) -> AsyncIterator[MarginClient]:
    """A client of the real exchange, or of an embedded seeded fake with ``--sandbox``.

    ``--attempts``, ``--timeout`` and the base URL are judged by the SDK; a refusal of
    the base URL names where it came from (``--base-url`` or ``$MARGIN_ASYNC_BASE_URL``).
    """
    if not args.sandbox:
        creds = credentials(args, state)
        base_url = args.base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        source = "--base-url" if args.base_url else f"${ENV_BASE_URL}"
        async with _client(args, creds, base_url, "cli", source) as client:
            yield client
        return
    if args.base_url or args.credentials:
        raise UsageError(
            "--sandbox uses its own exchange and account; drop --base-url/--credentials"
        )
    from margin_async.testing import FakeKuCoin  # aiohttp.web: only when it is needed

    async with FakeKuCoin() as fake:
        creds = await sandbox_account(fake, SANDBOX_BORROWS)
        state.add_credentials(creds)
        async with _client(args, creds, fake.url, "sandbox", "--sandbox") as client:
            yield client


@contextlib.asynccontextmanager
async def _client(
    args: argparse.Namespace, creds: Credentials, base_url: str, label: str, source: str
) -> AsyncIterator[MarginClient]:
    try:
        client = MarginClient(
            creds,
            base_url=base_url,
            retry=RetryPolicy(attempts=args.attempts),
            timeout=args.timeout,
            label=label,
        )
    except ValidationError as exc:
        if exc.argument != "base_url":
            raise
        raise UsageError(f"{source} {str(exc).removeprefix('base_url: ')}") from None
    async with client:
        yield client
