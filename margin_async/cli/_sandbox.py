"""``margin-async sandbox``: a fake exchange for other programs; and the seeded account
that ``--sandbox`` and the sandbox command share."""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

from margin_async import Credentials, MarginClient
from margin_async.cli._errors import UsageError
from margin_async.cli._parser import ENV_BASE_URL, Commands, at_least
from margin_async.cli._signals import stop_on_signals
from margin_async.cli._state import RunState

if TYPE_CHECKING:
    from margin_async.testing import FakeKuCoin

__all__ = ["SANDBOX_BORROWS", "SANDBOX_SYMBOL", "register", "sandbox_account"]

#: USDT borrow records seeded for --sandbox (small: it starts on every command).
SANDBOX_BORROWS = 1000
SANDBOX_SYMBOL = "BTC-USDT"


def register(commands: Commands) -> None:
    """Add ``sandbox``."""
    sandbox = commands.add(
        "sandbox",
        "serve a fake exchange with a seeded account until Ctrl-C",
        _run,
        connection=False,
        epilog="""\
It prints export lines (throwaway credentials and MARGIN_ASYNC_BASE_URL): paste them
into another shell, or save them as they are and, once written, pass the file to
--credentials (it must be private, hence the umask):

  (umask 077; margin-async sandbox > sandbox.env) &
  margin-async history borrow --currency USDT --credentials sandbox.env
""",
    )
    sandbox.add_argument(
        "--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    sandbox.add_argument(
        "--seed-records",
        type=at_least(0),
        default=SANDBOX_BORROWS,
        metavar="N",
        help=f"USDT borrow records to seed; N/2 repays, 2N interest (default: {SANDBOX_BORROWS})",
    )
    sandbox.add_argument("--seed", type=int, default=0, help="seed of the synthetic history")


def _port(text: str) -> int:
    value = at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


async def sandbox_account(fake: FakeKuCoin, records: int) -> Credentials:
    """A new account of ``fake`` with history and some debt, so every command has
    something to show: cross USDT and BTC history, a little isolated BTC-USDT, and open
    loans of USDT (cross) and BTC (isolated) that ``repay`` can pay back."""
    creds = fake.add_account()
    fake.seed_history(
        creds.api_key, "USDT", borrows=records, repays=records // 2, interest=records * 2
    )
    small = max(1, records // 10)
    fake.seed_history(creds.api_key, "BTC", borrows=small, repays=small, interest=small)
    fake.seed_history(
        creds.api_key, "BTC", borrows=small, repays=small, interest=small, symbol=SANDBOX_SYMBOL
    )
    # Borrowed through the API (the fake has no other way to open a position); these
    # two appear in the history and ledger like any borrow.
    async with MarginClient(creds, base_url=fake.url, label="sandbox-setup") as client:
        await client.borrow("USDT", Decimal(10_000))
        await client.borrow("BTC", Decimal(1), symbol=SANDBOX_SYMBOL, is_isolated=True)
    return creds


@contextlib.asynccontextmanager
async def _serving(fake: FakeKuCoin, port: int) -> AsyncIterator[FakeKuCoin]:
    """``fake`` started; a port it cannot have is a usage error, said as such."""
    try:
        await fake.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on 127.0.0.1 is taken; choose another --port (0 for any free port)"
            ) from None
        reason = (exc.strerror or str(exc)).lower()
        raise UsageError(f"cannot serve on 127.0.0.1 port {port}: {reason}") from None
    try:
        yield fake
    finally:
        await fake.close()


async def _run(args: argparse.Namespace, state: RunState) -> None:
    from margin_async.testing import FakeKuCoin  # aiohttp.web: only when it is needed

    # Handlers first: whoever reads the URL below may signal at once, and must get exit 0.
    with stop_on_signals() as stop:
        async with _serving(FakeKuCoin(port=args.port, seed=args.seed), args.port) as fake:
            creds = await sandbox_account(fake, args.seed_records)
            # Printing these secrets is the point: they are throwaway keys of a local fake.
            lines = [
                f"# margin-async sandbox: a fake KuCoin at {fake.url} (Ctrl-C to stop)",
                f"# one account with USDT history ({args.seed_records} borrows, "
                f"{args.seed_records // 2} repays, {args.seed_records * 2} interest records), "
                f"BTC history (cross and isolated {SANDBOX_SYMBOL}), and loans of "
                "10000 USDT (cross) and 1 BTC (isolated) to repay",
                f"export KUCOIN_API_KEY={creds.api_key}",
                f"export KUCOIN_API_SECRET={creds.api_secret}",
                f"export KUCOIN_API_PASSPHRASE={creds.api_passphrase}",
                f"export KUCOIN_API_KEY_VERSION={creds.key_version}",
                f"export {ENV_BASE_URL}={fake.url}",
            ]
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            await stop.wait()
