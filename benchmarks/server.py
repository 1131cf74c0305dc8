"""Run FakeKuCoin in its own process, with a small control channel for benchmarks.

``python -m benchmarks.server`` starts :class:`~margin_async.testing.FakeKuCoin` on
``127.0.0.1`` (a free port) and a control app on another free port, then prints one JSON
line on stdout, ``{"url": ..., "control": ...}``, and serves until stdin closes (so it
never outlives the benchmark that started it) or it receives SIGTERM/SIGINT.

Control routes (JSON in, JSON out), used between measurements, never during them:

* ``POST /accounts`` ``{"count", "currency", "borrows", "repays", "interest"}``: new
  accounts with seeded history -> ``[{"api_key", "api_secret", "api_passphrase",
  "key_version"}, ...]``
* ``POST /latency`` ``{"seconds"}``; ``POST /rate_limit`` ``{"quota", "window_ms"}``
* ``GET /stats`` -> the fake's counters (``rate_limited``, ``connections_opened``, ...);
  ``POST /stats/reset`` zeroes them.

:class:`FakeServer` is the parent's side: it starts the process and speaks the control
protocol with blocking ``urllib`` calls (only between timed sections).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from types import TracebackType
from typing import Any

from aiohttp import web

from margin_async._auth import Credentials
from margin_async.testing import FakeKuCoin

__all__ = ["FakeServer", "main"]

#: Big enough that the quota never binds unless a benchmark sets one.
UNLIMITED_QUOTA = 10**12


def _stats(fake: FakeKuCoin) -> dict[str, Any]:
    s = fake.stats
    return {
        "requests": dict(s.requests),
        "status_counts": {str(k): v for k, v in s.status_counts.items()},
        "faults": dict(s.faults),
        "rate_limited": s.rate_limited,
        "connections_opened": s.connections_opened,
        "open_connections": s.open_connections,
        "max_concurrent_connections": s.max_concurrent_connections,
    }


def _control_app(fake: FakeKuCoin) -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/accounts")
    async def accounts(request: web.Request) -> web.Response:
        spec = await request.json()
        created = []
        for _ in range(int(spec.get("count", 1))):
            creds = fake.add_account()
            fake.seed_history(
                creds.api_key,
                spec.get("currency", "USDT"),
                borrows=int(spec.get("borrows", 0)),
                repays=int(spec.get("repays", 0)),
                interest=int(spec.get("interest", 0)),
            )
            created.append(
                {
                    "api_key": creds.api_key,
                    "api_secret": creds.api_secret,
                    "api_passphrase": creds.api_passphrase,
                    "key_version": creds.key_version,
                }
            )
        return web.json_response(created)

    @routes.post("/latency")
    async def latency(request: web.Request) -> web.Response:
        fake.set_latency(float((await request.json())["seconds"]))
        return web.json_response({})

    @routes.post("/rate_limit")
    async def rate_limit(request: web.Request) -> web.Response:
        spec = await request.json()
        fake.set_rate_limit(int(spec["quota"]), int(spec["window_ms"]))
        return web.json_response({})

    @routes.get("/stats")
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(_stats(fake))

    @routes.post("/stats/reset")
    async def reset(_: web.Request) -> web.Response:
        fake.stats.reset()
        return web.json_response({})

    app = web.Application()
    app.add_routes(routes)
    return app


async def _serve(seed: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        # The parent holds our stdin: EOF means it is gone (or done with us).
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with FakeKuCoin(rate_limit_quota=UNLIMITED_QUOTA, seed=seed) as fake:
        runner = web.AppRunner(_control_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(json.dumps({"url": fake.url, "control": f"http://{host}:{port}"}), flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.seed))


class FakeServer:
    """The parent's handle on a FakeKuCoin process (a context manager).

    With ``pin=True`` and at least two CPUs, the server is pinned to the last CPU and
    this process to the others, so client and server never compete for a core.
    """

    def __init__(self, *, pin: bool = True) -> None:
        self._pin = pin
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.control = ""

    def __enter__(self) -> FakeServer:
        cmd = [sys.executable, "-m", "benchmarks.server"]
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if self._pin and len(cpus) >= 2:
            cmd += ["--cpu", str(cpus[-1])]
            os.sched_setaffinity(0, set(cpus[:-1]))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("the FakeKuCoin server process did not start")
        info = json.loads(line)
        self.url, self.control = info["url"], info["control"]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        if self._pin and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.control + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as reply:
            return json.loads(reply.read())

    def accounts(
        self,
        count: int = 1,
        *,
        currency: str = "USDT",
        borrows: int = 0,
        repays: int = 0,
        interest: int = 0,
    ) -> list[Credentials]:
        """Create ``count`` accounts, each with the given seeded history."""
        spec = {
            "count": count,
            "currency": currency,
            "borrows": borrows,
            "repays": repays,
            "interest": interest,
        }
        return [Credentials(**c) for c in self._call("/accounts", spec)]

    def account(self, *, borrows: int = 0, repays: int = 0, interest: int = 0) -> Credentials:
        """One USDT account with seeded history."""
        return self.accounts(1, borrows=borrows, repays=repays, interest=interest)[0]

    def set_latency(self, seconds: float) -> None:
        self._call("/latency", {"seconds": seconds})

    def set_rate_limit(self, quota: int, window_ms: int) -> None:
        self._call("/rate_limit", {"quota": quota, "window_ms": window_ms})

    def unlimited(self) -> None:
        """No binding quota (the default)."""
        self.set_rate_limit(UNLIMITED_QUOTA, 30_000)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/stats")
        return result

    def reset_stats(self) -> None:
        self._call("/stats/reset", {})


if __name__ == "__main__":
    main()
