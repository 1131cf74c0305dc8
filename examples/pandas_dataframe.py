"""Load an interest history into a pandas DataFrame and total it per day, exactly.

Amounts stay ``Decimal`` (an object column): summing floats would drift by fractions
of a cent over thousands of records, and interest is money.

    python examples/pandas_dataframe.py --sandbox
    python examples/pandas_dataframe.py --currency USDT --since-days 30   # KUCOIN_API_* env
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

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
        fake.seed_history(creds.api_key, "USDT", interest=3_000)
        yield creds, fake.url


async def fetch(args: argparse.Namespace) -> list[dict[str, Any]]:
    since = int(time.time() * 1000) - args.since_days * 86_400_000
    async with (
        exchange(args.sandbox) as (creds, base_url),
        MarginClient(creds, base_url=base_url) as client,
    ):
        records = await client.interest_history(args.currency, start_time=since).collect()
    return [
        {**to_dict(r), "created_at": r.created_at, "interest_amount": r.interest_amount}
        for r in records
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="store_true", help="use an embedded fake exchange")
    parser.add_argument("--currency", default="USDT")
    parser.add_argument("--since-days", type=int, default=90)
    args = parser.parse_args()
    try:
        # Imported lazily: pandas is not a dependency of margin-async.
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        print("This example needs pandas: pip install pandas", file=sys.stderr)
        return 0

    rows = asyncio.run(fetch(args))
    frame = pd.DataFrame(rows)
    if frame.empty:
        print("no interest records")
        return 0
    frame["day"] = frame["created_at"].dt.date
    # Decimal values sum exactly in an object column (numeric dtypes would be floats).
    daily = frame.groupby("day")["interest_amount"].sum()
    print(frame[["created_at", "currency", "day_ratio", "interest_amount"]].head())
    print(
        f"\n{len(frame)} records over {len(daily)} days; total interest "
        f"{sum(frame['interest_amount'])} {args.currency}"
    )
    print(daily.tail())
    return 0


if __name__ == "__main__":
    run_example(main)
