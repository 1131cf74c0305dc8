"""Read the interest history of many accounts at once over one connection pool.

``AccountPool`` gives each account its own client (own credentials, clock offset and
rate-limit budget) over one shared HTTP session, walks the accounts concurrently and
merges their records into one stream. A failing account is reported, not fatal.

    python examples/many_accounts.py --sandbox              # 50 fake accounts, one broken
    python examples/many_accounts.py --accounts keys.json   # {"label": {"api_key": ..., ...}}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

from _script import run_example

from margin_async import AccountError, AccountPool, Credentials


def load_accounts(path: str | None) -> dict[str, Credentials]:
    """Labelled credentials from a JSON file, else the one account of the environment."""
    if path is None:
        return {"default": Credentials.from_env()}
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {label: Credentials(**fields) for label, fields in raw.items()}


@contextlib.asynccontextmanager
async def accounts(
    args: argparse.Namespace, configured: dict[str, Credentials]
) -> AsyncIterator[tuple[dict[str, Credentials], str]]:
    """Labelled credentials and base URL: fake accounts with --sandbox, else a file/env."""
    if args.sandbox:
        from margin_async.testing import FakeKuCoin

        async with FakeKuCoin() as fake:
            found: dict[str, Credentials] = {}
            for i in range(args.count):
                creds = fake.add_account()
                fake.seed_history(creds.api_key, "USDT", interest=100 + 37 * i)
                found[f"trader-{i:02d}"] = creds
            # One account whose secret is wrong, to show errors="yield".
            real = fake.add_account()
            found["broken"] = Credentials(real.api_key, "wrong-secret", real.api_passphrase)
            yield found, fake.url
        return
    base_url = os.environ.get("MARGIN_ASYNC_BASE_URL", "https://api.kucoin.com")
    yield configured, base_url


async def run(args: argparse.Namespace, configured: dict[str, Credentials]) -> None:
    """Stream every account's interest history and print per-account totals."""
    records: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    started = time.perf_counter()
    async with (
        accounts(args, configured) as (creds, base_url),
        AccountPool(creds, base_url=base_url, max_connections=16) as pool,
    ):
        async for item in pool.interest_history(errors="yield"):
            if isinstance(item, AccountError):
                print(f"{item.account}: failed: {item.error}")
                continue
            records[item.account] += 1
            amount = item.record.interest_amount
            totals[item.account] = totals.get(item.account, Decimal(0)) + amount
    elapsed = time.perf_counter() - started
    for label in sorted(totals):
        print(f"{label:12} {records[label]:6} records  {totals[label]:>20} interest")
    print(f"{sum(records.values())} records from {len(totals)} accounts in {elapsed:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="store_true", help="use an embedded fake exchange")
    parser.add_argument("--count", type=int, default=50, help="fake accounts (--sandbox)")
    parser.add_argument("--accounts", help="JSON file: label -> credentials fields")
    args = parser.parse_args()
    # Read before the event loop starts (file I/O would block it).
    configured = {} if args.sandbox else load_accounts(args.accounts)
    asyncio.run(run(args, configured))


if __name__ == "__main__":
    run_example(main)
