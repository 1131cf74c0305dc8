"""One run of ``margin-async sync``: the mirror over an account pool, stopped gracefully
by SIGINT/SIGTERM, with its progress on the CLI's display.

SIGINT and SIGTERM set a stop event while the run lies in their hands (their handlers take
the place of the CLI's cancel-on-SIGTERM): ``--follow`` then finishes the transactions
under way, gives the leases back and exits 0; ``--once`` stops after them and exits 130,
the database consistent (its cursors match its rows), not up to date.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from margin_async import AccountPool, RetryPolicy
from margin_async.cli._exchange import base_url_refused
from margin_async.cli._progress import Display, Stream
from margin_async.cli._signals import stop_on_signals
from margin_async.cli._state import RunState
from margin_async.cli._sync_accounts import (
    Exchange,
    accounts,
    db_url,
    open_exchange,
    sandbox_activity,
)
from margin_async.sync import Mirror, SyncStatus, open_store

__all__ = ["run"]

# How often the display's line is brought up to date with the mirror's status.
_TICK_S = 0.5


async def run(args: argparse.Namespace, state: RunState) -> None:
    """The ``sync`` command (see :mod:`margin_async.cli._sync`)."""
    entries = accounts(args)
    url = db_url(args)
    display = Display.for_run(args, state)
    with stop_on_signals() as stop:
        async with open_exchange(args, entries, state) as exchange:
            store = open_store(url)
            mirror = Mirror(
                store,
                {entry.label: entry.spec for entry in entries},
                quota=args.quota,
                headroom=args.headroom,
                lease_ttl=args.lease_ttl,
                batch_size=args.batch_size,
                worker=args.worker,
            )
            pool = AccountPool(
                exchange.accounts,
                base_url=exchange.base_url,
                retry=RetryPolicy(attempts=args.attempts),
                timeout=args.timeout,
                on_response=mirror.observe,
                on_wait=display.waiting,
            )
            async with store:
                with base_url_refused(exchange.source):
                    await pool.open()
                async with pool:
                    status = await _mirror(args, mirror, pool, exchange, stop, display, state)
    if display.enabled:
        sys.stderr.write(_summary(status, follow=args.follow) + "\n")


async def _mirror(
    args: argparse.Namespace,
    mirror: Mirror,
    pool: AccountPool,
    exchange: Exchange,
    stop: asyncio.Event,
    display: Display,
    state: RunState,
) -> SyncStatus:
    """Run the mirror to its end (``--once``) or until ``stop`` (``--follow``), its
    progress on one line of ``display``."""
    with display, display.stream("sync") as line:
        helpers = [asyncio.ensure_future(_tick(mirror, line))]
        if exchange.fake is not None and args.follow:
            helpers.append(asyncio.ensure_future(sandbox_activity(exchange, args.interval)))
        try:
            if args.follow:
                status = await mirror.follow(pool, interval=args.interval, stop=stop)
            else:
                status = await _once(mirror, pool, stop, state)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        _show(mirror.status(), line)
    return status


async def _once(
    mirror: Mirror, pool: AccountPool, stop: asyncio.Event, state: RunState
) -> SyncStatus:
    """``run_once``, cut short (after the transactions under way) by ``stop``."""
    work = asyncio.ensure_future(mirror.run_once(pool))
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        # Said after "interrupted" by the CLI, which exits 130.
        state.unfinished = "the database is consistent, rerun to finish"
        raise KeyboardInterrupt
    return work.result()


async def _tick(mirror: Mirror, line: Stream) -> None:
    while True:
        _show(mirror.status(), line)
        await asyncio.sleep(_TICK_S)


def _show(status: SyncStatus, line: Stream) -> None:
    """Bring ``line`` up to date: the records written, the accounts held, the lag.

    Read from the mirror here, in the event loop; the display's thread reads only the
    text this leaves on the line.
    """
    lag = "catching up" if status.lag_ms is None else f"lag {status.lag_ms / 1000:.1f} s"
    line.detail = f"{len(status.held)}/{status.accounts} accounts, {lag}"
    line.advance(status.records - line.records)


def _summary(status: SyncStatus, *, follow: bool) -> str:
    """The run's last line: how many accounts are up to date, how many records."""
    records = f"{status.records:,} records" + (
        f" ({status.replayed:,} already there)" if status.replayed else ""
    )
    if follow:
        return f"sync: stopped, {records}"
    text = f"sync: {len(status.done)}/{status.accounts} accounts up to date, {records}"
    if status.skipped:
        text += f", {len(status.skipped)} left to other workers"
    return text
