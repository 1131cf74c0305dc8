"""How an endpoint is declared, and the one way its arguments become a :class:`Request`.

An endpoint module declares one :class:`Endpoint` per operation, once: its name,
method, path, rate-limit weight, safety, reply model, and its parameters in wire order.
A :class:`Param` maps one keyword argument to its wire name and its check
(:mod:`margin_async._endpoints._checks`); a :class:`Rule` checks several together (the
margin mode, a time window) where it stands among them. :meth:`Endpoint.build`
validates a caller's keywords before any I/O and encodes them: a GET's query pairs, a
POST's compact JSON body. ``None`` and ``False`` are never sent: they are the exchange's
defaults, so only what a caller set goes on the wire.

The declarations several endpoints share live here, once: the margin mode, the history
filters and paging. Their typed keyword sets (what callers may pass) are the TypedDicts
of :mod:`margin_async._endpoints._kwargs`; a test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs

# The checks are re-exported: endpoint modules and tests reach them through this module.
from margin_async._endpoints._checks import (
    amount,
    currencies,
    currency,
    epoch_ms,
    flag,
    format_decimal,
    json_body,
    leverage,
    margin_mode,
    order_number,
    page_number,
    page_size,
    required_currencies,
    time_in_force,
)
from margin_async._errors import ValidationError
from margin_async._models import Page
from margin_async._request import Request, Safety
from margin_async.types import Amount, CurrencyArg, TimeArg

__all__ = [
    "HISTORY_FILTERS",
    "IS_HF",
    "IS_ISOLATED",
    "MARGIN_MODE",
    "MARGIN_MODE_BODY",
    "MARGIN_MODE_QUERY",
    "ORDER_FILTERS",
    "PAGING",
    "SYMBOL",
    "Amount",
    "CurrencyArg",
    "Endpoint",
    "HistoryFilter",
    "HistorySpec",
    "MoneyEndpoint",
    "Movement",
    "Param",
    "Rule",
    "TimeArg",
    "amount",
    "currencies",
    "currency",
    "epoch_ms",
    "flag",
    "format_decimal",
    "json_body",
    "leverage",
    "margin_mode",
    "order_number",
    "page_number",
    "page_size",
    "required_currencies",
    "time_in_force",
]

M = TypeVar("M")
T = TypeVar("T")


@attrs.frozen
class Param:
    """One keyword argument of an operation and the wire field it becomes.

    ``check`` validates the caller's value (raising :class:`ValidationError` naming
    ``name``) and returns what is sent; without one the value is kept as given for a
    :class:`Rule` to check. ``default`` stands in for a keyword left out. ``optional``:
    ``None`` means "not given" and is neither checked nor sent.
    """

    name: str
    wire: str
    check: Callable[[Any], object] | None = None
    default: object = None
    optional: bool = False


@attrs.frozen
class Rule:
    """A check across parameters, run where it stands in a declaration: ``apply`` reads
    the values validated so far (a dict by keyword name) and may rewrite them."""

    apply: Callable[[dict[str, Any]], None]


Params: TypeAlias = tuple[Param | Rule, ...]


def _accepted(params: Params) -> frozenset[str]:
    return frozenset(param.name for param in params if isinstance(param, Param))


# One step of validation, flattened for speed: (name, default, check, optional, rule).
_Step: TypeAlias = tuple[
    str, object, Callable[[Any], object] | None, bool, Callable[[dict[str, Any]], None] | None
]


def _steps(params: Params) -> tuple[_Step, ...]:
    return tuple(
        ("", None, None, False, param.apply)
        if isinstance(param, Rule)
        else (param.name, param.default, param.check, param.optional, None)
        for param in params
    )


def _validate(
    operation: str,
    steps: tuple[_Step, ...],
    accepted: frozenset[str],
    arguments: Mapping[str, object],
) -> dict[str, Any]:
    """The validated value of every parameter, in declaration order."""
    if not accepted.issuperset(arguments):
        unknown = next(key for key in arguments if key not in accepted)
        raise TypeError(f"{operation} got an unexpected keyword argument {unknown!r}")
    values: dict[str, Any] = {}
    get = arguments.get
    for name, default, check, optional, rule in steps:
        if rule is not None:
            rule(values)
            continue
        value = get(name, default)
        if check is not None and (value is not None or not optional):
            value = check(value)
        values[name] = value
    return values


class Endpoint(Generic[M]):
    """One API operation, declared once.

    ``name`` names it in messages; ``weight`` is what one call costs from the account's
    rate-limit pool; ``safety`` says whether a failed call may be resent; ``model`` is
    the type its reply's ``data`` is structured into (``NoneType``: the reply carries
    nothing of use); ``params`` are its parameters in wire order; ``signed`` is false
    for public endpoints.
    """

    __slots__ = (
        "_accepted",
        "_steps",
        "_wire",
        "method",
        "model",
        "name",
        "params",
        "path",
        "safety",
        "signed",
        "weight",
    )

    def __init__(
        self,
        name: str,
        method: Literal["GET", "POST"],
        path: str,
        *,
        weight: int,
        safety: Safety,
        model: type[M],
        params: Params = (),
        signed: bool = True,
    ) -> None:
        self.name = name
        self.method = method
        self.path = path
        self.weight = weight
        self.safety = safety
        self.model = model
        self.params = params
        self.signed = signed
        self._accepted = _accepted(params)
        self._steps = _steps(params)
        self._wire = tuple((p.name, p.wire) for p in params if isinstance(p, Param))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.method} {self.path}>"

    def validate(self, arguments: Mapping[str, object]) -> dict[str, Any]:
        """Check a caller's keywords; raise :class:`ValidationError` on the first bad
        value, ``TypeError`` on a keyword this endpoint does not take."""
        return _validate(self.name, self._steps, self._accepted, arguments)

    def encode(self, values: Mapping[str, Any]) -> Request:
        """The request for validated ``values``: query pairs (GET) or JSON body (POST)."""
        if self.method == "GET":
            query = tuple(
                [
                    (wire, "true" if value is True else str(value))
                    for name, wire in self._wire
                    if (value := values[name]) is not None and value is not False
                ]
            )
            # Positional: this runs for every page of every walk.
            return Request("GET", self.path, query, b"", self.weight, self.safety, self.signed)
        fields = {
            wire: value
            for name, wire in self._wire
            if (value := values[name]) is not None and value is not False
        }
        body = json_body(fields)
        return Request(self.method, self.path, (), body, self.weight, self.safety, self.signed)

    def build(self, arguments: Mapping[str, object]) -> Request:
        """Validate a caller's keywords and encode them (see :meth:`validate`)."""
        return self.encode(self.validate(arguments))


@attrs.frozen
class Movement:
    """A validated borrow or repay: its request, and what identifies it in history."""

    request: Request
    currency: str
    size: Decimal
    #: ``None`` for cross margin.
    symbol: str | None


class MoneyEndpoint(Endpoint[M]):
    """A borrow or repay: a POST that moves money, so it is never resent blindly; its
    calls go through :mod:`margin_async._reconcile` as a :class:`Movement`."""

    __slots__ = ()

    def __init__(self, name: str, path: str, *, weight: int, model: type[M], params: Params):
        super().__init__(
            name, "POST", path, weight=weight, safety=Safety.MONEY, model=model, params=params
        )

    def movement(self, arguments: Mapping[str, object]) -> Movement:
        """Validate a caller's keywords and wrap the request with its identity."""
        values = self.validate(arguments)
        return Movement(self.encode(values), values["currency"], values["size"], values["symbol"])


# -- shared declarations --------------------------------------------------------------


def _margin_mode(values: dict[str, Any]) -> None:
    values["symbol"] = margin_mode(values["symbol"], values["is_isolated"])


def _window(values: dict[str, Any]) -> None:
    start, end = values["start_time"], values["end_time"]
    if start is not None and end is not None and start > end:
        raise ValidationError("start_time", f"is after end_time ({start} > {end})")


def _flag(name: str) -> Callable[[object], bool]:
    return lambda value: flag(value, name)


def _time(name: str) -> Callable[[object], int]:
    return lambda value: epoch_ms(value, name)


#: Cross margin by default; isolated margin is ``is_isolated=True`` with a ``symbol``.
#: The two parameters are checked together, by ``MARGIN_MODE``, where it stands.
IS_ISOLATED = Param("is_isolated", "isIsolated", default=False)
SYMBOL = Param("symbol", "symbol")
MARGIN_MODE = Rule(_margin_mode)
#: The margin mode as a query carries it (``isIsolated`` first) and as a body does.
MARGIN_MODE_QUERY: Params = (IS_ISOLATED, SYMBOL, MARGIN_MODE)
MARGIN_MODE_BODY: Params = (SYMBOL, IS_ISOLATED, MARGIN_MODE)
#: ``isHf``: high-frequency borrowing (borrow and repay).
IS_HF = Param("is_hf", "isHf", _flag("is_hf"), default=False)

_CURRENCY_REQUIRED = Param("currency", "currency", required_currencies)
_CURRENCY_OPTIONAL = Param("currency", "currency", currencies, optional=True)
_WINDOW: Params = (
    Param("start_time", "startTime", _time("start_time"), optional=True),
    Param("end_time", "endTime", _time("end_time"), optional=True),
    Rule(_window),
)
#: The filters of every history (after its currency).
HISTORY_FILTERS: Params = (*MARGIN_MODE_QUERY, *_WINDOW)
#: The filters of borrow and repay history: those of every history, and ``order_no``.
ORDER_FILTERS: Params = (
    *MARGIN_MODE_QUERY,
    Param("order_no", "orderNo", order_number, optional=True),
    *_WINDOW,
)
#: One page of a history: ``current_page`` from 1, ``page_size`` 10..500 records.
PAGING: Params = (
    Param("current_page", "currentPage", page_number, default=1),
    Param("page_size", "pageSize", page_size, default=50),
)


@attrs.frozen
class HistoryFilter:
    """Validated filters of a history query (everything but paging)."""

    currency: str | None = None
    is_isolated: bool = False
    symbol: str | None = None
    order_no: str | None = None
    start_time: int | None = None
    end_time: int | None = None

    @classmethod
    def build(
        cls,
        currency: CurrencyArg | None,
        *,
        currency_required: bool,
        is_isolated: bool,
        symbol: str | None,
        order_no: str | None,
        start_time: TimeArg | None,
        end_time: TimeArg | None,
    ) -> HistoryFilter:
        """Validate caller arguments; raise :class:`ValidationError` on the first bad one."""
        first = _CURRENCY_REQUIRED if currency_required else _CURRENCY_OPTIONAL
        params = (first, *ORDER_FILTERS)
        arguments = {
            "currency": currency,
            "is_isolated": is_isolated,
            "symbol": symbol,
            "order_no": order_no,
            "start_time": start_time,
            "end_time": end_time,
        }
        return cls(**_validate("history", _steps(params), _accepted(params), arguments))


class HistorySpec(Endpoint[Page[T]]):
    """A history endpoint: a retryable GET of one :class:`Page` of ``item`` records.

    Its parameters are a currency (required unless ``currency_required`` is false), the
    filters (``ORDER_FILTERS`` by default, ``HISTORY_FILTERS`` for interest) and paging.
    A walk validates the filters once (:meth:`filters`) and builds one request per page
    (:meth:`request`).
    """

    __slots__ = ("_filter_names", "_filter_steps", "currency_required", "item")

    def __init__(
        self,
        path: str,
        weight: int,
        *,
        item: type[T],
        currency_required: bool = True,
        filters: Params = ORDER_FILTERS,
        name: str | None = None,
    ) -> None:
        first = _CURRENCY_REQUIRED if currency_required else _CURRENCY_OPTIONAL
        filters = (first, *filters)
        self._filter_names = _accepted(filters)
        self._filter_steps = _steps(filters)
        page_type: type[Page[T]] = Page[item]  # type: ignore[valid-type]
        super().__init__(
            name or f"GET {path}",
            "GET",
            path,
            weight=weight,
            safety=Safety.RETRYABLE,
            model=page_type,
            params=(*filters, *PAGING),
        )
        #: The model of one record.
        self.item = item
        #: Borrow and repay history need a currency; interest history does not.
        self.currency_required = currency_required

    @property
    def page_type(self) -> type[Page[T]]:
        """The model of one page of this history (its :attr:`model`)."""
        return self.model

    def filters(self, currency: CurrencyArg | None, /, **filters: object) -> HistoryFilter:
        """Validate a caller's filters (paging excluded) for a walk of this history."""
        arguments = {"currency": currency, **filters}
        values = _validate(self.name, self._filter_steps, self._filter_names, arguments)
        return HistoryFilter(**values)

    def request(self, filters: HistoryFilter, current_page: int, page_size_: int) -> Request:
        """The GET request for one page (arguments already validated)."""
        return self.encode(
            {
                "currency": filters.currency,
                "is_isolated": filters.is_isolated,
                "symbol": filters.symbol,
                "order_no": filters.order_no,
                "start_time": filters.start_time,
                "end_time": filters.end_time,
                "current_page": current_page,
                "page_size": page_size_,
            }
        )
