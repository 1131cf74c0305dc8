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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from margin_async.testing._faults import FaultKind
    from margin_async.testing._ledger import InterestCharge, LedgerEntry
    from margin_async.testing._server import FakeKuCoin, FakeStats

__all__ = ["FakeKuCoin", "FakeStats", "FaultKind", "InterestCharge", "LedgerEntry"]

# Each name is imported from its module on first use (PEP 562): the pytest plugin
# (margin_async.testing.pytest_plugin) lives in this package, and pytest loads it in every
# run where margin-async is installed, so importing the package must not start aiohttp.web.
_HOMES = {
    "FakeKuCoin": "margin_async.testing._server",
    "FakeStats": "margin_async.testing._server",
    "FaultKind": "margin_async.testing._faults",
    "InterestCharge": "margin_async.testing._ledger",
    "LedgerEntry": "margin_async.testing._ledger",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
