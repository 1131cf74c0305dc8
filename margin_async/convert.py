"""The one place that knows how fields are spelled on the wire.

A cattrs converter turns decoded JSON (camelCase) into the attrs models of
:mod:`margin_async.models` (snake_case), with amounts as exact ``Decimal``.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from margin_async.errors import ProtocolError
from margin_async.models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    OrderStatus,
    Page,
    RepayOrder,
    RepayResult,
)

__all__ = ["page_server_time", "structure", "to_dict", "wire_name"]

T = TypeVar("T")

_MODELS = (BorrowResult, RepayResult, BorrowOrder, RepayOrder, InterestRecord)
_ITEMS = (BorrowOrder, RepayOrder, InterestRecord)
_WIRE_PATH = re.compile(r"\.([a-z]+(?:_[a-z]+)+)")


def wire_name(field: str) -> str:
    """``created_time`` -> ``createdTime``."""
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _base(annotation: Any) -> Any:
    """``int | None`` -> ``int``: the type a field holds when it has a value."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _wire_fields(cls: type) -> list[attrs.Attribute[Any]]:
    """The fields of ``cls`` that come from the wire (all but ``raw``), types resolved."""
    return [f for f in attrs.fields(attrs.resolve_types(cls)) if f.name != "raw"]


def _decimal(value: object, _: type) -> Decimal:
    # JSON numbers are decoded as Decimal (parse_float), so a float never gets here.
    if isinstance(value, str | Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if result.is_finite():
            return result
    raise ValueError(f"not a decimal number: {value!r}")


def _int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"not a string: {value!r}")


def _symbol(value: object, _: type) -> str:
    # The exchange sends null for cross margin although its schema says string.
    return "" if value is None else _str(value, str)


def _status(value: object, _: type) -> OrderStatus:
    if isinstance(value, str):
        return OrderStatus(value)
    raise ValueError(f"not a status string: {value!r}")


_STRICT: dict[Any, Callable[[Any, type], Any]] = {
    Decimal: _decimal,
    int: _int,
    str: _str,
    OrderStatus: _status,
}


def _items(converter: cattrs.Converter, item: type) -> Callable[[Any, type], Any]:
    # Strictly a JSON array: a string or an object would otherwise be iterated, and ""
    # or {} would pass as an empty page.
    sequence = tuple[item, ...]  # type: ignore[valid-type]

    def hook(value: Any, _: type) -> Any:
        if not isinstance(value, list):
            got = "null" if value is None else type(value).__name__
            raise ValueError(f"items is {got}, not a list")
        return converter.structure(value, sequence)

    return hook


def _equals(expected: object) -> Callable[[Any], bool]:
    def check(candidate: Any) -> bool:
        return bool(candidate == expected)

    return check


def _configure(converter: cattrs.Converter) -> cattrs.Converter:
    converter.register_structure_hook(Decimal, _decimal)
    converter.register_structure_hook(int, _int)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(OrderStatus, _status)
    for cls in _MODELS:
        # Each field through the hook of its base type: an optional field (``X | None``)
        # is as strict here as a required one (see structure() for the tolerant path).
        overrides: dict[str, Any] = {
            f.name: override(rename=wire_name(f.name), struct_hook=_STRICT[_base(f.type)])
            for f in _wire_fields(cls)
        }
        overrides["raw"] = override(omit=True)
        if "symbol" in overrides:
            overrides["symbol"] = override(rename="symbol", struct_hook=_symbol)
        converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **overrides))
    for item in _ITEMS:
        page = Page[item]  # type: ignore[valid-type]
        page_overrides: dict[str, Any] = {
            f.name: override(rename=wire_name(f.name), struct_hook=_STRICT[_base(f.type)])
            for f in _wire_fields(Page)
            if f.name != "items"
        }
        page_overrides["raw"] = override(omit=True)
        page_overrides["items"] = override(rename="items", struct_hook=_items(converter, item))
        hook = make_dict_structure_fn(page, converter, **page_overrides)
        # A generic alias is not a class, so it is matched by equality.
        converter.register_structure_hook_func(_equals(page), hook)
    return converter


# The fast converter runs on every reply; when it fails, the detailed one runs again on
# the same data only to say precisely which field is wrong.
_fast = _configure(cattrs.Converter(detailed_validation=False))
_detailed = _configure(cattrs.Converter(detailed_validation=True))

# -- the hot path ---------------------------------------------------------------------
# History pages are most of what the SDK decodes, so each model (and each Page[item])
# also gets a structure function generated here with the common case written inline: an
# exact str, int or known status is taken as is, and anything else goes through the
# same hooks as above. It therefore accepts exactly what ``_fast`` accepts and builds
# equal objects, without a Python call per field; when it raises (any exception),
# structure() falls back to ``_detailed`` for the message, as for ``_fast``.

_STATUS_BY_VALUE: dict[str, OrderStatus] = {member.value: member for member in OrderStatus}

_FIELD_CODE = {
    str: "    {v} = o[{key!r}]\n    if {v}.__class__ is not str:\n        {v} = _str({v}, str)\n",
    int: "    {v} = o[{key!r}]\n    if {v}.__class__ is not int:\n        {v} = _int({v}, int)\n",
    Decimal: (
        "    {v} = o[{key!r}]\n"
        "    if {v}.__class__ is str:\n"
        "        {v} = Decimal({v})\n"
        "        if not {v}.is_finite():\n"
        "            raise ValueError('not a finite decimal')\n"
        "    else:\n"
        "        {v} = _decimal({v}, Decimal)\n"
    ),
    OrderStatus: (
        "    {v} = o[{key!r}]\n"
        "    try:\n"
        "        {v} = _STATUS_BY_VALUE[{v}]\n"
        "    except (KeyError, TypeError):\n"
        "        {v} = _status({v}, OrderStatus)\n"
    ),
}
_SYMBOL_CODE = (
    "    {v} = o['symbol']\n    if {v}.__class__ is not str:\n        {v} = _symbol({v}, str)\n"
)
_ITEMS_CODE = (
    "    {v} = o['items']\n"
    "    if not isinstance({v}, list):\n"
    "        raise ValueError('items is not a list')\n"
    "    {v} = tuple(map(_item, {v}))\n"
)


def _plain(cls: type) -> bool:
    """Whether ``cls``'s ``__init__`` only stores its arguments in slots."""
    return (
        "__slots__" in cls.__dict__
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and all(
            f.validator is None and f.converter is None and f.init and f.alias == f.name
            for f in attrs.fields(cls)
        )
    )


def _compile(cls: type, item: type | None = None) -> Callable[[Any], Any]:
    """Generate the hot structure function of ``cls`` (of ``Page[item]`` if ``item``)."""
    name = f"structure_{cls.__name__}" + (f"_{item.__name__}" if item is not None else "")
    lines = [f"def {name}(o):\n"]
    variables = []
    fields = _wire_fields(cls)
    for field in fields:
        var = f"f_{field.name}"
        if item is not None and field.name == "items":
            code = _ITEMS_CODE
        elif field.name == "symbol":
            code = _SYMBOL_CODE
        else:
            code = _FIELD_CODE[_base(field.type)]
        lines.append(code.format(v=var, key=wire_name(field.name)))
        variables.append(var)
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_str": _str,
        "_int": _int,
        "_decimal": _decimal,
        "_symbol": _symbol,
        "_status": _status,
        "_STATUS_BY_VALUE": _STATUS_BY_VALUE,
        "Decimal": Decimal,
        "OrderStatus": OrderStatus,
        "_item": None if item is None else _HOT[item],
        "_new": object.__new__,
    }
    if _plain(cls):
        # Fill the slots directly: the same object as cls(...) gives (nothing in __init__
        # but plain assignments, checked by _plain), about 25% cheaper per record.
        lines.append("    new = _new(_cls)\n")
        for field, var in zip(fields, variables, strict=True):
            namespace[f"_set_{field.name}"] = getattr(cls, field.name).__set__
            lines.append(f"    _set_{field.name}(new, {var})\n")
        namespace["_set_raw"] = cls.raw.__set__  # type: ignore[attr-defined]
        lines.append("    _set_raw(new, None)\n")
        lines.append("    return new\n")
    else:
        lines.append(f"    return _cls({', '.join(variables)})\n")
    exec("".join(lines), namespace)  # generated from the models' own fields only
    function: Callable[[Any], Any] = namespace[name]
    return function


_HOT: dict[object, Callable[[Any], Any]] = {}
for _model in _MODELS:
    _HOT[_model] = _compile(_model)
for _model in _ITEMS:
    _HOT[Page[_model]] = _compile(Page, _model)  # type: ignore[valid-type]


def structure(data: Any, cls: type[T], *, what: str = "data") -> T:
    """Build ``cls`` from decoded JSON, or raise :class:`ProtocolError` naming the field."""
    try:
        hot = _HOT.get(cls)
        if hot is not None:
            result: T = hot(data)
            return result
        return _fast.structure(data, cls)
    except Exception as fast_error:
        name = getattr(cls, "__name__", str(cls))
        if not isinstance(data, dict):
            got = "null" if data is None else type(data).__name__
            raise ProtocolError(
                f"unexpected reply for {name}: {what} is {got}, not an object"
            ) from None
        try:
            _detailed.structure(data, cls)
        except Exception as detailed_error:
            details = "; ".join(
                _WIRE_PATH.sub(lambda m: "." + wire_name(m.group(1)), line)
                for line in cattrs.transform_error(detailed_error, path=what)
            )
        else:  # pragma: no cover - both converters share one configuration
            details = f"{type(fast_error).__name__}: {fast_error}"
        raise ProtocolError(f"unexpected reply shape for {name}: {details}") from None


def page_server_time(data: Any) -> int | None:
    """The exchange's clock (epoch ms) when it served a history page, if the page says."""
    served = data.get("timestamp") if isinstance(data, dict) else None
    return served if isinstance(served, int) and not isinstance(served, bool) else None


def to_dict(obj: Any) -> dict[str, Any]:
    """A model as a flat dict with Python field names; amounts as exact strings."""
    out: dict[str, Any] = {}
    for field in _wire_fields(type(obj)):
        value = getattr(obj, field.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, OrderStatus):
            value = value.value
        out[field.name] = value
    return out
