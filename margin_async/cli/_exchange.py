"""The exchange a command talks to: the real one (credentials, ``--base-url``) or, with
``--sandbox``, an embedded fake seeded with history and throwaway credentials."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Callable

from margin_async import (
    DEFAULT_BASE_URL,
    Credentials,
    MarginClient,
    RetryPolicy,
    ValidationError,
    WaitEvent,
)
from margin_async.cli._credentials import credentials
from margin_async.cli._errors import UsageError
from margin_async.cli._parser import ENV_BASE_URL
from margin_async.cli._sandbox import SANDBOX_BORROWS, sandbox_account
from margin_async.cli._state import RunState

__all__ = ["WaitHook", "open_client"]

#: Called when a request starts waiting (the SDK's ``on_wait``; see ``progress.Display``).
WaitHook = Callable[[WaitEvent], None]


@contextlib.asynccontextmanager
async def open_client(
    args: argparse.Namespace, state: RunState, *, on_wait: WaitHook | None = None
) -> AsyncIterator[MarginClient]:
    """A client of the real exchange, or of an embedded seeded fake with ``--sandbox``.

    The base URL is ``--base-url``, else the credentials file's ``MARGIN_ASYNC_BASE_URL``
    (a saved ``margin-async sandbox`` output), else ``$MARGIN_ASYNC_BASE_URL``, else the
    real exchange. ``--attempts``, ``--timeout`` and the base URL are judged by the SDK; a
    refusal of the base URL names where it came from. ``on_wait`` is the SDK's
    hook for waits (rate limit, backoff).
    """
    if not args.sandbox:
        creds, file_url = credentials(args, state)
        env_url = os.environ.get(ENV_BASE_URL)
        base_url, source = next(
            (url, source)
            for url, source in (
                (args.base_url, "--base-url"),
                (file_url, f"{ENV_BASE_URL} in {args.credentials}"),
                (env_url, f"${ENV_BASE_URL}"),
                (DEFAULT_BASE_URL, "the default base URL"),
            )
            if url
        )
        async with _client(args, creds, base_url, "cli", source, on_wait) as client:
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
        async with _client(args, creds, fake.url, "sandbox", "--sandbox", on_wait) as client:
            yield client


@contextlib.asynccontextmanager
async def _client(
    args: argparse.Namespace,
    creds: Credentials,
    base_url: str,
    label: str,
    source: str,
    on_wait: WaitHook | None,
) -> AsyncIterator[MarginClient]:
    try:
        client = MarginClient(
            creds,
            base_url=base_url,
            retry=RetryPolicy(attempts=args.attempts),
            timeout=args.timeout,
            label=label,
            on_wait=on_wait,
        )
    except ValidationError as exc:
        if exc.argument != "base_url":
            raise
        raise UsageError(f"{source} {str(exc).removeprefix('base_url: ')}") from None
    async with client:
        yield client
