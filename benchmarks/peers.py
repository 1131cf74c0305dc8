"""Peer libraries pointed at FakeKuCoin, each walking a borrow history its own way.

Every walker takes the fake's URL and an account's credentials and returns how many
records it received. Peers are optional (the ``bench`` extra): :func:`available` says
whether one is installed, and nothing here imports a peer at module import time.

How each is pointed at the fake (none has a documented "base URL" argument for this):

* KuCoin's official SDK (``kucoin-universal-sdk``): ``ClientOptionBuilder().
  set_spot_endpoint(url)`` — a documented option. Synchronous (``requests``).
* python-kucoin (``kucoin.AsyncClient``): the ``API_URL`` attribute its requests are
  built from (``BaseClient._create_url``).
* ccxt (``ccxt.async_support.kucoin``): every entry of ``exchange.urls["api"]``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.common import optional_import
from margin_async import Credentials

__all__ = ["PEERS", "Walker", "available"]

#: ``(url, credentials, page_size) -> records received``
Walker = Callable[[str, Credentials, int], Coroutine[Any, Any, int]]

#: Largest page each peer may ask for (the API's maximum; none of them caps it lower).
PAGE_SIZE = 500


def available(module: str) -> bool:
    return optional_import(module) is not None


# -- KuCoin's official SDK ------------------------------------------------------------


def _official_sync(url: str, creds: Credentials, page_size: int) -> int:
    from kucoin_universal_sdk.api.client import DefaultClient  # type: ignore[import-untyped]
    from kucoin_universal_sdk.generate.margin.debit.model_get_borrow_history_req import (  # type: ignore[import-untyped]
        GetBorrowHistoryReqBuilder,
    )
    from kucoin_universal_sdk.model.client_option import ClientOptionBuilder  # type: ignore[import-untyped]
    from kucoin_universal_sdk.model.transport_option import TransportOptionBuilder  # type: ignore[import-untyped]

    option = (
        ClientOptionBuilder()
        .set_key(creds.api_key)
        .set_secret(creds.api_secret)
        .set_passphrase(creds.api_passphrase)
        .set_spot_endpoint(url)
        .set_futures_endpoint(url)
        .set_broker_endpoint(url)
        .set_transport_option(TransportOptionBuilder().build())
        .build()
    )
    api = DefaultClient(option).rest_service().get_margin_service().get_debit_api()
    received, page, total = 0, 1, 1
    while page <= total:
        request = (
            GetBorrowHistoryReqBuilder()
            .set_currency("USDT")
            .set_current_page(page)
            .set_page_size(page_size)
            .build()
        )
        response = api.get_borrow_history(request)
        error = response.common_response.error() if response.common_response else None
        if error is not None:
            raise RuntimeError(str(error))
        if response.items is None:
            raise RuntimeError("empty response (the SDK swallowed a parse error)")
        received += len(response.items)
        total = response.total_page or 0
        page += 1
    return received


async def official_sdk(url: str, creds: Credentials, page_size: int) -> int:
    # Synchronous library: run it as its users do, blocking (no other task runs meanwhile).
    return _official_sync(url, creds, page_size)


# -- python-kucoin --------------------------------------------------------------------


async def _python_kucoin_walk(client: Any, page_size: int) -> int:
    received, page, total = 0, 1, 1
    try:
        while page <= total:
            data = await client.margin_get_borrow_history("USDT", page=page, limit=page_size)
            received += len(data["items"])
            total = data["totalPage"]
            page += 1
    finally:
        await client.close_connection()
    return received


async def python_kucoin(url: str, creds: Credentials, page_size: int) -> int:
    from kucoin import AsyncClient  # type: ignore[import-untyped]

    client = AsyncClient(creds.api_key, creds.api_secret, creds.api_passphrase)
    client.API_URL = url
    return await _python_kucoin_walk(client, page_size)


async def python_kucoin_v2(url: str, creds: Credentials, page_size: int) -> int:
    """python-kucoin with the two headers of key version 2/3 added (see the README)."""
    from kucoin import AsyncClient

    class KeyVersion2Client(AsyncClient):  # type: ignore[misc]
        def _get_headers(self) -> dict[str, str]:
            headers: dict[str, str] = super()._get_headers()
            signed = hmac.new(
                self.API_SECRET.encode(), self.API_PASSPHRASE.encode(), hashlib.sha256
            ).digest()
            headers["KC-API-PASSPHRASE"] = base64.b64encode(signed).decode()
            headers["KC-API-KEY-VERSION"] = "2"
            return headers

    client = KeyVersion2Client(creds.api_key, creds.api_secret, creds.api_passphrase)
    client.API_URL = url
    return await _python_kucoin_walk(client, page_size)


# -- ccxt -----------------------------------------------------------------------------


async def _ccxt_walk(url: str, creds: Credentials, page_size: int, *, throttle: bool) -> int:
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

    exchange = ccxt_async.kucoin(
        {
            "apiKey": creds.api_key,
            "secret": creds.api_secret,
            "password": creds.api_passphrase,
            "enableRateLimit": throttle,
        }
    )
    exchange.urls["api"] = {name: url for name in exchange.urls["api"]}
    received, page, total = 0, 1, 1
    try:
        while page <= total:
            # No unified method covers borrow history: the implicit endpoint, as ccxt's
            # docs show for exchange-specific calls, walked page by page.
            response = await exchange.private_get_margin_borrow(
                {"currency": "USDT", "currentPage": page, "pageSize": page_size}
            )
            data = response["data"]
            received += len(data["items"])
            total = int(data["totalPage"])
            page += 1
    finally:
        await exchange.close()
    return received


async def ccxt_default(url: str, creds: Credentials, page_size: int) -> int:
    return await _ccxt_walk(url, creds, page_size, throttle=True)


async def ccxt_unthrottled(url: str, creds: Credentials, page_size: int) -> int:
    return await _ccxt_walk(url, creds, page_size, throttle=False)


#: ``(label, module that must be installed, walker)``
PEERS: list[tuple[str, str, Walker]] = [
    ("official SDK (kucoin-universal-sdk)", "kucoin_universal_sdk", official_sdk),
    ("python-kucoin AsyncClient", "kucoin", python_kucoin),
    ("python-kucoin AsyncClient + v2 key headers", "kucoin", python_kucoin_v2),
    ("ccxt.async_support.kucoin (default throttle)", "ccxt", ccxt_default),
    ("ccxt.async_support.kucoin (enableRateLimit=False)", "ccxt", ccxt_unthrottled),
]


def run_walker(walker: Walker, url: str, creds: Credentials, page_size: int) -> int:
    return asyncio.run(walker(url, creds, page_size))
