"""The exchange a command talks to: the real one (credentials, ``--base-url``) or, with
``--sandbox``, an embedded fake seeded with history and throwaway credentials."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

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

__all__ = ["WaitHook", "base_url_refused", "choose_base_url", "no_sandbox_options", "open_client"]

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
        named = {args.credentials: file_url} if file_url else {}
        base_url, source = choose_base_url(args, named)
        async with _client(args, creds, base_url, "cli", source, on_wait) as client:
            yield client
        return
    no_sandbox_options(args)
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
    with base_url_refused(source):
        client = MarginClient(
            creds,
            base_url=base_url,
            retry=RetryPolicy(attempts=args.attempts),
            timeout=args.timeout,
            label=label,
            on_wait=on_wait,
        )
    async with client:
        yield client


def choose_base_url(args: argparse.Namespace, named: Mapping[str, str]) -> tuple[str, str]:
    """The exchange's base URL and where it came from (for messages): ``--base-url``,
    else the one the credentials files name (``named``: file -> its URL), else
    ``$MARGIN_ASYNC_BASE_URL``, else the real exchange. Files that name different
    exchanges are refused without ``--base-url``: one run talks to one exchange."""
    urls = sorted(set(named.values()))
    if len(urls) > 1 and not args.base_url:
        raise UsageError(
            f"the credentials files name different base URLs ({', '.join(urls)}): "
            "the accounts of one run share one exchange; pass --base-url"
        )
    from_file = next(((url, f"{ENV_BASE_URL} in {path}") for path, url in named.items()), None)
    env_url = os.environ.get(ENV_BASE_URL)
    return next(
        (url, source)
        for url, source in (
            (args.base_url, "--base-url"),
            from_file or (None, ""),
            (env_url, f"${ENV_BASE_URL}"),
            (DEFAULT_BASE_URL, "the default base URL"),
        )
        if url
    )


@contextlib.contextmanager
def base_url_refused(source: str) -> Iterator[None]:
    """The SDK's refusal of the base URL, raised inside, said with where the URL came
    from (``$MARGIN_ASYNC_BASE_URL must be an http(s) URL``), as a person fixes it there."""
    try:
        yield
    except ValidationError as exc:
        if exc.argument != "base_url":
            raise
        raise UsageError(f"{source} {str(exc).removeprefix('base_url: ')}") from None


def no_sandbox_options(args: argparse.Namespace) -> None:
    """Refuse ``--base-url`` and ``--credentials`` with ``--sandbox`` (which has both)."""
    if args.base_url or args.credentials:
        raise UsageError(
            "--sandbox uses its own exchange and credentials; drop --base-url/--credentials"
        )
