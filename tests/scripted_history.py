"""A tiny history server (aiohttp.web on loopback) for replies FakeKuCoin cannot produce:
records that appear or disappear between two pages, hostile paging fields, records
stamped outside the window that selected them, pages without a server time.

It serves the three history routes and server time, checks no signature, filters by
``startTime``/``endTime`` (inclusive) and pages newest first like the exchange.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from margin_async import Credentials, MarginClient, RetryPolicy

Query = dict[str, str]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Entry:
    """One record: the time the server files it under, and what it sends."""

    __slots__ = ("filed", "wire")

    def __init__(self, filed: int, wire: dict[str, Any]) -> None:
        self.filed = filed
        self.wire = wire


def interest(amount: str, created: int | None, *, filed: int | None = None) -> Entry:
    """An interest record sent with ``createdTime: created`` and filed at ``filed``."""
    wire = {"currency": "USDT", "dayRatio": "0.0001", "interestAmount": amount}
    wire["createdTime"] = created  # type: ignore[assignment]
    return Entry(created if filed is None else filed, wire)


def borrow(order_no: str, created: int) -> Entry:
    wire = {
        "orderNo": order_no,
        "symbol": None,
        "currency": "USDT",
        "size": "1",
        "actualSize": "1",
        "status": "SUCCESS",
        "createdTime": created,
    }
    return Entry(created, wire)


class History:
    """``entries`` of one history, kept newest first by ``filed`` (stable for ties)."""

    def __init__(self, entries: list[Entry] | None = None) -> None:
        self.entries: list[Entry] = []
        self.add(*(entries or []))
        self.queries: list[Query] = []
        #: Called with each query before its page is computed (to change the history).
        self.before: Callable[[Query], None] | None = None
        #: Rewrites the page's ``data`` before it is sent.
        self.rewrite: Callable[[Query, dict[str, Any]], dict[str, Any]] | None = None
        #: The page's ``timestamp`` (None: no field).
        self.clock: Callable[[], int | None] = now_ms
        self.url = ""
        self._runner: web.AppRunner | None = None

    def add(self, *entries: Entry) -> None:
        """File ``entries``; each goes before older ones and after any of the same time."""
        for entry in entries:
            at = next(
                (i for i, e in enumerate(self.entries) if e.filed < entry.filed),
                len(self.entries),
            )
            self.entries.insert(at, entry)

    def remove(self, entry: Entry) -> None:
        self.entries.remove(entry)

    def pages_asked(self, path_end: str = "") -> list[int]:
        return [int(q.get("currentPage", "1")) for q in self.queries]

    async def _page(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        if self.before is not None:
            self.before(query)
        start = int(query.get("startTime", "0"))
        end = int(query["endTime"]) if "endTime" in query else None
        size = int(query.get("pageSize", "50"))
        number = int(query.get("currentPage", "1"))
        chosen = [e for e in self.entries if start <= e.filed and (end is None or e.filed <= end)]
        items = [e.wire for e in chosen[(number - 1) * size : number * size]]
        data: dict[str, Any] = {
            "currentPage": number,
            "pageSize": size,
            "totalNum": len(chosen),
            "totalPage": -(-len(chosen) // size),
            "items": items,
        }
        served = self.clock()
        if served is not None:
            data = {"timestamp": served, **data}
        if self.rewrite is not None:
            data = self.rewrite(query, data)
        return web.Response(
            body=json.dumps({"code": "200000", "data": data}), content_type="application/json"
        )

    async def _time(self, _: web.Request) -> web.Response:
        return web.json_response({"code": "200000", "data": now_ms()})

    async def __aenter__(self) -> History:
        app = web.Application()
        for path in ("/api/v3/margin/borrow", "/api/v3/margin/repay", "/api/v3/margin/interest"):
            app.router.add_get(path, self._page)
        app.router.add_get("/api/v1/timestamp", self._time)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def client(self, **kwargs: Any) -> MarginClient:
        creds = Credentials("key", "secret", "passphrase")
        kwargs.setdefault("retry", RetryPolicy(attempts=1))
        return MarginClient(creds, base_url=self.url, **kwargs)
