"""Deterministic history pages, shaped exactly like KuCoin's (and FakeKuCoin's) replies."""

from __future__ import annotations

import json
import random

__all__ = ["borrow_page"]


def borrow_page(records: int = 500, *, seed: int = 0) -> bytes:
    """The body of one ``GET /api/v3/margin/borrow`` reply holding ``records`` items.

    As the exchange sends them: amounts as decimal strings, ``symbol`` ``null`` for cross
    margin, ``createdTime`` as epoch milliseconds, newest first.
    """
    rng = random.Random(seed)
    now = 1_729_657_580_449
    items = []
    for i in range(records):
        size = f"{rng.randint(1, 100_000)}.{rng.randint(0, 10**8 - 1):08d}".rstrip("0")
        items.append(
            {
                "orderNo": f"{0x6500000000000000 + i:024x}",
                "symbol": None,
                "currency": "USDT",
                "size": size,
                "actualSize": size,
                "status": "SUCCESS",
                "createdTime": now - i * 60_000,
            }
        )
    data = {
        "timestamp": now,
        "currentPage": 1,
        "pageSize": records,
        "totalNum": records * 100,
        "totalPage": 100,
        "items": items,
    }
    return json.dumps({"code": "200000", "data": data}, separators=(",", ":")).encode()
