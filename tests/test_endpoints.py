"""Each operation is declared once (endpoints/): path, method, weight, safety, parameters
with their wire names, reply model; the caller-side TypedDicts name the same keywords;
a keyword no endpoint takes is refused before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import NoneType
from typing import Any

import pytest
from helpers import KEY, PASSPHRASE, SECRET

from margin_async import (
    BorrowOrder,
    BorrowResult,
    Credentials,
    InterestRecord,
    MarginClient,
    Page,
    RepayOrder,
    RepayResult,
)
from margin_async._endpoints import _kwargs as kw
from margin_async._endpoints import _params as p
from margin_async._endpoints import borrow, interest, leverage, repay, server_time
from margin_async._request import Request, Safety
from margin_async._transport import HttpRequest, HttpResponse, MemoryTransport

# -- declarations -----------------------------------------------------------------------

# name, endpoint, method, path, weight (DESIGN: "Wire facts"), safety, model
DECLARED: list[tuple[str, p.Endpoint[Any], str, str, int, Safety, object]] = [
    ("borrow", borrow.BORROW, "POST", "/api/v3/margin/borrow", 15, Safety.MONEY, BorrowResult),
    ("repay", repay.REPAY, "POST", "/api/v3/margin/repay", 10, Safety.MONEY, RepayResult),
    (
        "modify leverage",
        leverage.LEVERAGE,
        "POST",
        "/api/v3/position/update-user-leverage",
        8,
        Safety.RETRYABLE,
        NoneType,
    ),
    (
        "borrow history",
        borrow.HISTORY,
        "GET",
        "/api/v3/margin/borrow",
        15,
        Safety.RETRYABLE,
        Page[BorrowOrder],
    ),
    (
        "repay history",
        repay.HISTORY,
        "GET",
        "/api/v3/margin/repay",
        15,
        Safety.RETRYABLE,
        Page[RepayOrder],
    ),
    (
        "interest history",
        interest.HISTORY,
        "GET",
        "/api/v3/margin/interest",
        20,
        Safety.RETRYABLE,
        Page[InterestRecord],
    ),
    ("server time", server_time.SERVER_TIME, "GET", "/api/v1/timestamp", 0, Safety.RETRYABLE, int),
]
MINIMAL: dict[str, dict[str, object]] = {
    "borrow": {"currency": "USDT", "size": "1"},
    "repay": {"currency": "USDT", "size": "1"},
    "modify leverage": {"leverage": "2"},
    "borrow history": {"currency": "USDT"},
    "repay history": {"currency": "USDT"},
    "interest history": {},
    "server time": {},
}


@pytest.mark.parametrize(
    ("name", "endpoint", "method", "path", "weight", "safety", "model"),
    DECLARED,
    ids=[row[0] for row in DECLARED],
)
def test_declaration_is_what_is_sent(
    name: str,
    endpoint: p.Endpoint[Any],
    method: str,
    path: str,
    weight: int,
    safety: Safety,
    model: object,
) -> None:
    assert endpoint.name == name and name in repr(endpoint)
    assert (endpoint.method, endpoint.path, endpoint.weight) == (method, path, weight)
    assert endpoint.safety is safety
    assert endpoint.model == model
    request = endpoint.build(MINIMAL[name])
    assert isinstance(request, Request)
    assert (request.method, request.path, request.weight) == (method, path, weight)
    assert request.safety is safety
    assert request.signed is (name != "server time")
    assert (request.body == b"") is (method == "GET")


def test_only_what_a_caller_set_is_sent() -> None:
    """None and False are the exchange's defaults: never on the wire."""
    request = borrow.BORROW.build(
        {"currency": "USDT", "size": "1", "symbol": None, "is_isolated": False, "is_hf": False}
    )
    assert request.body == b'{"currency":"USDT","size":1,"timeInForce":"IOC"}'
    request = interest.HISTORY.build({"currency": None, "start_time": None, "end_time": None})
    assert request.query == (("currentPage", "1"), ("pageSize", "50"))


def test_history_page_request_matches_the_one_page_build() -> None:
    """A walk's per-page request (filters validated once) equals the one-page build."""
    currency = ["btc", "ETH"]
    arguments: dict[str, object] = {
        "is_isolated": True,
        "symbol": "btc-usdt",
        "order_no": " 42 ",
        "start_time": 1729000000000,
        "end_time": 1729657580449,
    }
    for spec in (borrow.HISTORY, repay.HISTORY):
        filters = spec.filters(currency, **arguments)
        assert spec.request(filters, 3, 100) == spec.build(
            {"currency": currency, **arguments, "current_page": 3, "page_size": 100}
        )
    arguments.pop("order_no")
    filters = interest.HISTORY.filters(currency, **arguments)
    assert interest.HISTORY.request(filters, 2, 10) == interest.HISTORY.build(
        {"currency": currency, **arguments, "current_page": 2, "page_size": 10}
    )


# -- the caller's keywords (TypedDicts) and the declared parameters agree ------------------


def _names(params: tuple[p.Param | p.Rule, ...]) -> set[str]:
    return {param.name for param in params if isinstance(param, p.Param)}


def _keys(typed: type) -> set[str]:
    return set(typed.__annotations__) | set(getattr(typed, "__optional_keys__", ()))


WALK = {"page_size", "prefetch"}


@pytest.mark.parametrize(
    ("typed", "endpoint", "positional", "extra"),
    [
        (kw.MoneyOptions, borrow.BORROW, {"currency", "size", "time_in_force"}, set()),
        (kw.MoneyOptions, repay.REPAY, {"currency", "size"}, set()),
        (kw.MarginMode, leverage.LEVERAGE, {"leverage"}, set()),
        (kw.OrderPageQuery, borrow.HISTORY, {"currency"}, set()),
        (kw.OrderPageQuery, repay.HISTORY, {"currency"}, set()),
        (kw.PageQuery, interest.HISTORY, {"currency"}, set()),
    ],
    ids=["borrow", "repay", "leverage", "borrow-page", "repay-page", "interest-page"],
)
def test_typed_keywords_are_the_declared_parameters(
    typed: type, endpoint: p.Endpoint[Any], positional: set[str], extra: set[str]
) -> None:
    assert _keys(typed) | positional == _names(endpoint.params) | extra
    assert not typed.__required_keys__  # type: ignore[attr-defined]


def test_walk_keywords_are_the_filters_and_walk_settings() -> None:
    paging = _names(p.PAGING)
    for spec in (borrow.HISTORY, repay.HISTORY):
        assert _keys(kw.OrderWalkQuery) == _names(spec.params) - {"currency"} - paging | WALK
    assert _keys(kw.WalkQuery) == _names(interest.HISTORY.params) - {"currency"} - paging | WALK
    assert _keys(kw.HistoryFilters) == _names(p.HISTORY_FILTERS)
    assert _keys(kw.OrderFilters) == _names(p.ORDER_FILTERS)
    assert _keys(kw.HistoryFilters) | {"order_no"} == _keys(kw.OrderFilters)
    # The validated form has one field per filter, and the currency.
    assert set(p.HistoryFilter.__annotations__) == _names(p.ORDER_FILTERS) | {"currency"}


# -- a keyword no endpoint takes -------------------------------------------------------

Call = Callable[[MarginClient], Any]

UNKNOWN: list[tuple[str, Call, str]] = [
    ("borrow", lambda c: c.borrow("USDT", "1", colour="red"), "colour"),
    ("repay", lambda c: c.repay("USDT", "1", time_in_force="IOC"), "time_in_force"),
    ("modify leverage", lambda c: c.modify_leverage("2", is_hf=True), "is_hf"),
    ("borrow history", lambda c: c.get_borrow_history("USDT", prefetch=2), "prefetch"),
    ("repay history", lambda c: c.get_repay_history("USDT", page=2), "page"),
    ("interest history", lambda c: c.get_interest_history(order_no="1"), "order_no"),
    ("borrow history", lambda c: c.borrow_history("USDT", current_page=2), "current_page"),
    ("repay history", lambda c: c.repay_history("USDT", orderNo="1"), "orderNo"),
    ("interest history", lambda c: c.interest_history(order_no="1"), "order_no"),
]


def _transport() -> MemoryTransport:
    def never(request: HttpRequest) -> HttpResponse:
        raise AssertionError(f"sent {request}")

    return MemoryTransport(never)


@pytest.mark.parametrize(
    ("operation", "call", "keyword"), UNKNOWN, ids=[f"{o}-{k}" for o, _, k in UNKNOWN]
)
async def test_unknown_keyword_is_a_type_error_before_sending(
    operation: str, call: Call, keyword: str
) -> None:
    transport = _transport()
    async with MarginClient(Credentials(KEY, SECRET, PASSPHRASE), transport=transport) as c:
        with pytest.raises(TypeError) as info:
            result = call(c)
            if hasattr(result, "__await__"):
                await result
    assert str(info.value) == f"{operation} got an unexpected keyword argument {keyword!r}"
    assert transport.requests == []


def test_unknown_keyword_is_refused_before_values_are_checked() -> None:
    with pytest.raises(TypeError, match="'colour'"):
        borrow.BORROW.build({"currency": None, "size": "bad", "colour": "red"})


# -- the one call site -----------------------------------------------------------------


async def test_every_reply_is_structured_as_its_endpoints_model() -> None:
    replies: dict[str, object] = {
        "/api/v3/margin/borrow": {"orderNo": "B", "actualSize": "1"},
        "/api/v3/margin/repay": {"orderNo": "R", "actualSize": "1", "timestamp": 1729657580449},
        "/api/v3/position/update-user-leverage": "success",
        "/api/v3/margin/interest": {
            "timestamp": 1729657580449,
            "currentPage": 1,
            "pageSize": 50,
            "totalNum": 0,
            "totalPage": 0,
            "items": [],
        },
    }

    def reply(request: HttpRequest) -> HttpResponse:
        path = request.url.removeprefix("https://api.kucoin.com").split("?")[0]
        body = {"code": "200000", "data": replies[path]}
        return HttpResponse(200, {}, json.dumps(body).encode())

    transport = MemoryTransport(reply)
    async with MarginClient(Credentials(KEY, SECRET, PASSPHRASE), transport=transport) as c:
        assert await c.borrow("USDT", "1") == BorrowResult("B", p.amount("1"))
        assert await c.repay("USDT", "1") == RepayResult("R", p.amount("1"), 1729657580449)
        assert await c.modify_leverage("2") is None
        page = await c.get_interest_history()
    assert isinstance(page, Page) and page.items == () and page.timestamp == 1729657580449
