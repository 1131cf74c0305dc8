"""A fake KuCoin margin exchange for tests, benchmarks and the CLI's sandbox.

``FakeKuCoin`` is a real HTTP server on loopback that checks signatures and timestamps,
applies borrows and repays to a ledger, serves seeded history of any size with the real
paging and filters, enforces per-account rate limits, and injects faults on demand::

    from margin_async.testing import FakeKuCoin

    async with FakeKuCoin() as fake:
        creds = fake.add_account()
        fake.seed_history(creds.api_key, "USDT", borrows=10_000)
        ...  # point a client at fake.url
        assert len(fake.ledger(creds.api_key)) == 0

The pytest plugin :mod:`margin_async.testing.pytest_plugin` offers it as fixtures.
"""

from __future__ import annotations

from margin_async.testing.faults import FaultKind
from margin_async.testing.ledger import InterestCharge, LedgerEntry
from margin_async.testing.server import FakeKuCoin, FakeStats

__all__ = ["FakeKuCoin", "FakeStats", "FaultKind", "InterestCharge", "LedgerEntry"]
