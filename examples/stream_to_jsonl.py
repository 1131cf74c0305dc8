"""Stream a whole borrow history into JSON lines, one record per line, amounts exact.

Pages are fetched concurrently and never seen: records arrive newest first, and memory
holds a few pages at most, however long the history.

    python examples/stream_to_jsonl.py --sandbox | head          # an embedded fake exchange
    python examples/stream_to_jsonl.py --currency USDT > borrows.jsonl   # KUCOIN_API_* env

Read it back exactly: ``Decimal(json.loads(line)["actual_size"])`` (amounts are strings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from _script import run_example

from margin_async import Credentials, MarginClient, to_dict


@contextlib.asynccontextmanager
async def exchange(sandbox: bool) -> AsyncIterator[tuple[Credentials, str]]:
    """Credentials and base URL: a seeded fake with --sandbox, else the environment."""
    if not sandbox:
        base_url = os.environ.get("MARGIN_ASYNC_BASE_URL", "https://api.kucoin.com")
        yield Credentials.from_env(), base_url
        return
    from margin_async.testing import FakeKuCoin

    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=5_000)
        yield creds, fake.url


async def stream(args: argparse.Namespace, out: TextIO) -> int:
    """Write every borrow record as a JSON line; return how many."""
    count = 0
    async with (
        exchange(args.sandbox) as (creds, base_url),
        MarginClient(creds, base_url=base_url) as client,
    ):
        async for order in client.borrow_history(args.currency):
            out.write(json.dumps(to_dict(order)) + "\n")
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="store_true", help="use an embedded fake exchange")
    parser.add_argument("--currency", default="USDT")
    parser.add_argument("--output", help="file to write (default: stdout)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(args.output, "w", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        count = asyncio.run(stream(args, out))
    print(f"{count} borrow records written", file=sys.stderr)


if __name__ == "__main__":
    run_example(main)
