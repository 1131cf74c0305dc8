"""Borrow, find the order in the history, repay it, and check what is still owed.

Borrow and repay move money and carry no idempotency key, so margin-async never
resends them blindly: a lost answer is reconciled against the account's history, and
``OutcomeUnknownError`` is raised when that cannot tell (check before trying again).

    python examples/borrow_and_repay.py --sandbox
    python examples/borrow_and_repay.py --size 10 --yes     # REAL money, KUCOIN_API_* env
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from decimal import Decimal

from _script import run_example

from margin_async import Credentials, MarginClient, OutcomeUnknownError


@contextlib.asynccontextmanager
async def exchange(sandbox: bool) -> AsyncIterator[tuple[Credentials, str]]:
    """Credentials and base URL: a fake with --sandbox, else the environment."""
    if not sandbox:
        base_url = os.environ.get("MARGIN_ASYNC_BASE_URL", "https://api.kucoin.com")
        yield Credentials.from_env(), base_url
        return
    from margin_async.testing import FakeKuCoin

    async with FakeKuCoin() as fake:
        yield fake.add_account(), fake.url


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="store_true", help="use an embedded fake exchange")
    parser.add_argument("--currency", default="USDT")
    parser.add_argument("--size", type=Decimal, default=Decimal("100"))
    parser.add_argument("--yes", action="store_true", help="confirm moving real money")
    args = parser.parse_args()
    if not args.sandbox and not args.yes:
        print("This borrows real money: pass --yes (or try --sandbox).", file=sys.stderr)
        return 2

    async with (
        exchange(args.sandbox) as (creds, base_url),
        MarginClient(creds, base_url=base_url) as client,
    ):
        try:
            loan = await client.borrow(args.currency, args.size, time_in_force="IOC")
        except OutcomeUnknownError as exc:
            print(f"borrow outcome unknown, check the history first: {exc}")
            return 6
        print(f"borrowed {loan.actual_size} {args.currency}: order {loan.order_no}")

        page = await client.get_borrow_history(args.currency, order_no=loan.order_no)
        order = page.items[0]
        # Liberal models: a field the exchange left out is None, never a dropped record.
        when = order.created_at.strftime("%Y-%m-%d %H:%M:%S") if order.created_at else "?"
        status = order.status.value if order.status else "?"
        print(f"in history: {status}, created {when} UTC")

        paid = await client.repay(args.currency, loan.actual_size)
        print(f"repaid {paid.actual_size} {args.currency}: order {paid.order_no}")

        repays = await client.get_repay_history(args.currency, order_no=paid.order_no)
        split = repays.items[0]
        print(f"of which principal {split.principal}, interest {split.interest}")
    return 0


if __name__ == "__main__":
    run_example(lambda: asyncio.run(main()))
