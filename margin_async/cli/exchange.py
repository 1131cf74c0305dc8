"""The exchange a command talks to: the real one (credentials, ``--base-url``) or, with
``--sandbox``, an embedded fake seeded with history and throwaway credentials."""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from margin_async import DEFAULT_BASE_URL, Credentials, MarginClient, RetryPolicy, ValidationError
from margin_async.cli.credentials import credentials
from margin_async.cli.errors import UsageError
from margin_async.cli.parser import ENV_BASE_URL
from margin_async.cli.sandbox import SANDBOX_BORROWS, sandbox_account
from margin_async.cli.state import RunState

__all__ = ["WaitHook", "open_client", "sdk_reports_waits", "wait_hooks"]

#: Called when a request starts waiting (the SDK's ``on_wait``; see ``progress.Display``).
WaitHook = Callable[[Any], None]


@functools.cache
def sdk_reports_waits() -> bool:
    """Whether this SDK's ``MarginClient`` takes ``on_wait`` (it reports its waits)."""
    return "on_wait" in inspect.signature(MarginClient).parameters


def wait_hooks(on_wait: WaitHook | None) -> dict[str, Any]:
    """``MarginClient`` keyword arguments for ``on_wait``: none for an SDK without it."""
    return {"on_wait": on_wait} if on_wait is not None and sdk_reports_waits() else {}


@contextlib.asynccontextmanager
async def open_client(
    args: argparse.Namespace, state: RunState, *, on_wait: WaitHook | None = None
) -> AsyncIterator[MarginClient]:
    """A client of the real exchange, or of an embedded seeded fake with ``--sandbox``.

    The base URL is ``--base-url``, else the credentials file's ``MARGIN_ASYNC_BASE_URL``
    (a saved ``margin-async sandbox`` output), else ``$MARGIN_ASYNC_BASE_URL``, else the
    real exchange. ``--attempts``, ``--timeout`` and the base URL are judged by the SDK; a
    refusal of the base URL names where it came from. ``on_wait`` is given to an SDK
    that reports its waits (:func:`sdk_reports_waits`), and left out otherwise.
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
            **wait_hooks(on_wait),
        )
    except ValidationError as exc:
        if exc.argument != "base_url":
            raise
        raise UsageError(f"{source} {str(exc).removeprefix('base_url: ')}") from None
    async with client:
        yield client
