"""The one place that knows how fields are spelled on the wire.

A cattrs converter turns decoded JSON (camelCase) into the attrs models of
:mod:`margin_async._models` (snake_case), with amounts as exact ``Decimal``. Well-formed
replies take a generated hot path; anything else takes a tolerant path that is liberal
exactly as DESIGN.md says (see the models): an optional field that does not read
becomes ``None``, a required one is a :class:`ProtocolError` naming the wire field.
Integers of absurd magnitude are refused before any conversion (``MAX_WIRE_INT``).
"""

from __future__ import annotations

import linecache
import logging
import re
import types
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from margin_async._errors import ProtocolError, ValidationError
from margin_async._models import (
    BorrowOrder,
    BorrowResult,
    InterestRecord,
    OrderStatus,
    Page,
    RepayOrder,
    RepayResult,
)

__all__ = ["MAX_WIRE_INT", "page_server_time", "structure", "to_dict", "wire_name"]

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


#: Integers on the wire beyond this, in absolute value, are refused before conversion:
#: no count, page number or epoch-ms time comes near it, and converting an absurd one
#: (``1e1000000`` arrives as ``Decimal('1E+1000000')``) would block the event loop.
MAX_WIRE_INT = 10**18
_MAX_INT_DIGITS = len(str(MAX_WIRE_INT))  # 19
_EXCERPT_CHARS = 24


class _OutOfRange(ValueError):
    """An integer of absurd magnitude (beyond ``MAX_WIRE_INT``), refused unconverted."""


def _excerpt(value: object) -> str:
    """A short description of a wire value for a message; never expands a number."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if -MAX_WIRE_INT <= value <= MAX_WIRE_INT:
            return str(value)
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str | Decimal):
        # str() of a Decimal keeps its exponent (1E+1000000): linear in its digits.
        text = value if isinstance(value, str) else str(value)
        short = text[:_EXCERPT_CHARS]
        return (repr(short) if isinstance(value, str) else short) + (
            "..." if len(text) > _EXCERPT_CHARS else ""
        )
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _decimal(value: object, _: type) -> Decimal:
    # JSON numbers are decoded as Decimal (parse_float), so a float never gets here.
    # Only is_finite() is asked of the result: an absurd exponent (1e999999999) is a
    # valid Decimal and is never expanded here.
    if isinstance(value, str | Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {_excerpt(value)}") from None
        if result.is_finite():
            return result
    raise ValueError(f"not a decimal number: {_excerpt(value)}")


def _int(value: object, _: type) -> int:
    # Magnitude is checked before any conversion (len of a digit string, adjusted()
    # of a Decimal: both O(1) or linear), so an absurd value costs nothing.
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {_excerpt(value)}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value.lstrip("0")) > _MAX_INT_DIGITS:
            raise _OutOfRange(f"beyond 10**18: {_excerpt(value)}")
        result = int(value)
    elif isinstance(value, Decimal) and value.is_finite():
        if value.is_zero():
            return 0  # 0E+1000000 included
        if value.adjusted() >= _MAX_INT_DIGITS:
            raise _OutOfRange(f"beyond 10**18: {_excerpt(value)}")
        if value != value.to_integral_value():
            raise ValueError(f"not an integer: {_excerpt(value)}")
        result = int(value)
    else:
        raise ValueError(f"not an integer: {_excerpt(value)}")
    if -MAX_WIRE_INT <= result <= MAX_WIRE_INT:
        return result
    raise _OutOfRange(f"beyond 10**18: {_excerpt(value)}")


def _str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"not a string: {_excerpt(value)}")


def _symbol(value: object, _: type) -> str:
    # The exchange sends null for cross margin although its schema says string.
    return "" if value is None else _str(value, str)


def _status(value: object, _: type) -> OrderStatus:
    if isinstance(value, str):
        return OrderStatus(value)
    raise ValueError(f"not a status string: {_excerpt(value)}")


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


# The strict reference: the hot functions below accept exactly what it accepts and build
# equal objects (the differential tests in tests/test_models.py hold them to it). It
# structures any type that has no hot function, and on data that failed it runs again
# only to say precisely which field is wrong.
_reference = _configure(cattrs.Converter(detailed_validation=True))

# -- the hot path ---------------------------------------------------------------------
# History pages are most of what the SDK decodes, so each model (and each Page[item])
# gets a structure function generated here with the common case written inline: an
# exact str, int (within MAX_WIRE_INT) or known status is taken as is, and anything else
# goes through the same hooks as above. It is strict: a missing or null optional field
# makes it raise like any other surprise, and structure() then takes the tolerant path
# below, which says what was wrong. A page's function structures its items in a loop of
# its own (no call per record). The source of every generated function is registered
# with linecache, so tracebacks, debuggers and inspect.getsource() show it.

_STATUS_BY_VALUE: dict[str, OrderStatus] = {member.value: member for member in OrderStatus}


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


def _builder(cls: type) -> type | None:
    """A subclass of ``cls`` with the same slots and plain attribute stores, or ``None``.

    A frozen class's ``__init__`` stores each field through ``object.__setattr__`` (a
    call with an argument tuple per field). An instance of this builder takes its fields
    as plain slot stores, then becomes a ``cls`` by ``__class__`` assignment (allowed
    between classes of one layout): the same object ``cls(...)`` builds, at about a
    fifth of the cost. Only for classes whose ``__init__`` does nothing else.
    """
    if not _plain(cls):
        return None
    builder = type(
        f"_{cls.__name__}Builder",
        (cls,),
        {
            "__slots__": (),
            # Both, or Python keeps dispatching stores to the class's own __setattr__.
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__init__": object.__init__,
            "__module__": __name__,
        },
    )
    probe: Any = object.__new__(builder)
    try:
        probe.__class__ = cls
    except TypeError:  # pragma: no cover - a layout CPython will not convert
        return None
    return builder


class _Source:
    """The lines of a generated function; ``depth`` is the current indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)


def _emit_fields(out: _Source, cls: type, o: str, p: str) -> None:
    """Read the fields of ``cls`` (a page's items excepted) from the dict named ``o`` into
    locals prefixed ``p``: ``{p}f_<field>``."""
    amounts: list[str] = []
    for field in _wire_fields(cls):
        v, key, base = f"{p}f_{field.name}", wire_name(field.name), _base(field.type)
        if field.name == "items":
            continue  # see _compile
        if field.name == "symbol":
            # null is what the exchange sends for cross margin: inline, no call.
            out(f"{v} = {o}['symbol']")
            out(f"if {v}.__class__ is not str:")
            out(f"    {v} = '' if {v} is None else _symbol({v}, str)")
        elif base is str:
            out(f"{v} = {o}[{key!r}]")
            out(f"if {v}.__class__ is not str:")
            out(f"    {v} = _str({v}, str)")
        elif base is int:
            out(f"{v} = {o}[{key!r}]")
            out(f"if {v}.__class__ is not int or not _MIN_INT <= {v} <= _MAX_INT:")
            out(f"    {v} = _int({v}, int)")
        elif base is OrderStatus:
            out(f"{v} = {o}[{key!r}]")
            out("try:")
            out(f"    {v} = _STATUS_BY_VALUE[{v}]")
            out("except (KeyError, TypeError):")
            out(f"    {v} = _status({v}, OrderStatus)")
        elif base is Decimal:
            # The wire string stays in w_<field>: a later amount of the same record with
            # the same string (a filled order's actualSize is its size) shares its Decimal.
            w = f"{p}w_{field.name}"
            out(f"{w} = {o}[{key!r}]")
            out(f"if {w}.__class__ is str:")
            out.depth += 1
            for i, earlier in enumerate(amounts):
                out(f"{'el' if i else ''}if {w} == {p}w_{earlier}:")
                out(f"    {v} = {p}f_{earlier}")
            if amounts:
                out("else:")
                out.depth += 1
            out(f"{v} = Decimal({w})")
            out(f"if not {v}.is_finite():")
            out("    raise ValueError('not a finite decimal')")
            out.depth -= 2 if amounts else 1
            out("else:")
            out(f"    {v} = _decimal({w}, Decimal)")
            amounts.append(field.name)
        else:  # pragma: no cover - every model field has one of the types above
            raise TypeError(f"no hot code for {cls.__name__}.{field.name}: {field.type}")


def _emit_build(out: _Source, cls: type, p: str, namespace: dict[str, Any]) -> None:
    """Build the ``cls`` of the locals ``{p}f_<field>`` into ``{p}new``."""
    fields = _wire_fields(cls)
    namespace[f"_cls_{cls.__name__}"] = cls
    builder = _builder(cls)
    if builder is None:
        arguments = ", ".join(f"{p}f_{f.name}" for f in fields)
        out(f"{p}new = _cls_{cls.__name__}({arguments})")
        return
    namespace[f"_builder_{cls.__name__}"] = builder
    out(f"{p}new = _builder_{cls.__name__}()")
    for field in fields:
        out(f"{p}new.{field.name} = {p}f_{field.name}")
    # ``raw`` stays unset: it reads None (models._Wire), one store less per record.
    out(f"{p}new.__class__ = _cls_{cls.__name__}")


def _compile(cls: type, item: type | None = None) -> Callable[[Any], Any]:
    """Generate the hot structure function of ``cls`` (of ``Page[item]`` if ``item``)."""
    name = f"structure_{cls.__name__}" + (f"_{item.__name__}" if item is not None else "")
    namespace: dict[str, Any] = {
        "__name__": __name__,
        "_str": _str,
        "_int": _int,
        "_decimal": _decimal,
        "_symbol": _symbol,
        "_status": _status,
        "_STATUS_BY_VALUE": _STATUS_BY_VALUE,
        "_MAX_INT": MAX_WIRE_INT,
        "_MIN_INT": -MAX_WIRE_INT,
        "Decimal": Decimal,
        "OrderStatus": OrderStatus,
    }
    out = _Source()
    # A page's counters are read before its items: a page the tolerant path must redo
    # (one without a timestamp, as the live API sends) then fails before any record.
    _emit_fields(out, cls, "o", "")
    if item is not None:
        out("f_items = o['items']")
        out("if not isinstance(f_items, list):")
        out("    raise ValueError('items is not a list')")
        out("records = []")
        out("append = records.append")
        out("for r in f_items:")
        out.depth += 1
        _emit_fields(out, item, "r", "r_")
        _emit_build(out, item, "r_", namespace)
        out("append(r_new)")
        out.depth -= 1
        out("f_items = tuple(records)")
    _emit_build(out, cls, "", namespace)
    out("return new")
    source = f"def {name}(o):\n" + "".join(line + "\n" for line in out.lines)
    filename = f"<margin_async generated {name}>"
    # As attrs does for its generated methods: tracebacks, debuggers and inspect read
    # the source from linecache (mtime None: linecache.checkcache() never drops it).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # from the models' own fields only
    function: Callable[[Any], Any] = namespace[name]
    return function


_HOT: dict[object, Callable[[Any], Any]] = {}
_PAGE_ITEM: dict[object, type] = {}
for _model in _MODELS:
    _HOT[_model] = _compile(_model)
for _model in _ITEMS:
    _HOT[Page[_model]] = _compile(Page, _model)  # type: ignore[valid-type]
    _PAGE_ITEM[Page[_model]] = _model  # type: ignore[valid-type]

# -- the tolerant path ----------------------------------------------------------------
# Runs only when the hot function raised, on that record (or page) alone. Required
# fields (typed without None) go through the same hooks and a failure is a
# ProtocolError naming the wire field; an optional field that is missing, null or
# unreadable becomes None ("" for symbol), the record keeps its wire object in ``raw``,
# and a warning is logged once per (model, field, kind of problem).

_log = logging.getLogger("margin_async")
#: (model, field, kind) already warned about; kinds: missing, null, invalid, out of range.
_warned: set[tuple[str, str, str]] = set()
_MISSING: Any = object()


@attrs.frozen
class _Spec:
    name: str
    wire: str
    hook: Callable[[Any, type], Any]
    required: bool
    default: Any


def _specs(cls: type) -> tuple[_Spec, ...]:
    specs = []
    for f in _wire_fields(cls):
        if f.name == "items":
            continue  # a page's items: see _tolerant_page
        if f.name == "symbol":
            # Always a str: null is the exchange's cross margin, anything odd is "".
            specs.append(_Spec(f.name, "symbol", _symbol, required=False, default=""))
            continue
        base = _base(f.type)
        required = base is f.type  # typed without None
        specs.append(_Spec(f.name, wire_name(f.name), _STRICT[base], required, None))
    return tuple(specs)


_SPECS: dict[type, tuple[_Spec, ...]] = {cls: _specs(cls) for cls in (*_MODELS, Page)}


def _display(cls: object) -> str:
    item = _PAGE_ITEM.get(cls)
    return f"Page[{item.__name__}]" if item is not None else getattr(cls, "__name__", str(cls))


def _not_an_object(cls: object, value: object, path: str) -> ProtocolError:
    got = "null" if value is None else type(value).__name__
    return ProtocolError(f"unexpected reply for {_display(cls)}: {path} is {got}, not an object")


def _fields(
    cls: type, data: dict[str, Any], path: str, shown: object
) -> tuple[list[Any], list[tuple[_Spec, str, str]]]:
    """The values of ``cls``'s fields read from ``data``, and the problems tolerated."""
    values: list[Any] = []
    problems: list[tuple[_Spec, str, str]] = []
    for spec in _SPECS[cls]:
        value = data.get(spec.wire, _MISSING)
        if value is _MISSING:
            kind, detail = "missing", "is missing"
        else:
            try:
                values.append(spec.hook(value, object))
                continue
            except (ValueError, TypeError, ArithmeticError) as exc:
                if value is None:
                    kind, detail = "null", "is null"
                elif isinstance(exc, _OutOfRange):
                    kind, detail = "out of range", f"is out of range ({exc})"
                else:
                    kind, detail = "invalid", f"is invalid ({exc})"
        if spec.required:
            raise ProtocolError(
                f"unexpected reply shape for {_display(shown)}: {path}.{spec.wire} {detail}"
            )
        values.append(spec.default)
        problems.append((spec, kind, detail))
    return values, problems


def _warn(cls: type, problems: list[tuple[_Spec, str, str]]) -> None:
    for spec, kind, detail in problems:
        key = (cls.__name__, spec.name, kind)
        if key in _warned:
            continue
        _warned.add(key)
        _log.warning(
            "%s.%s: the exchange's %r %s; the %s is kept with %s=%r and its wire object "
            "in .raw (logged once per model, field and kind of problem)",
            cls.__name__,
            spec.name,
            spec.wire,
            detail,
            "page" if cls is Page else "record",
            spec.name,
            spec.default,
        )


def _tolerant(cls: type[T], data: Any, path: str, shown: object = None) -> T:
    """Build ``cls`` from a record the hot function refused (see above)."""
    if not isinstance(data, dict):
        raise _not_an_object(shown or cls, data, path)
    values, problems = _fields(cls, data, path, shown or cls)
    record = cls(*values, raw=data if problems else None)  # type: ignore[call-arg]
    _warn(cls, problems)
    return record


def _tolerant_page(cls: object, item: type[T], data: Any, path: str) -> Page[T]:
    """Build ``Page[item]`` from a page the hot function refused (see above)."""
    if not isinstance(data, dict):
        raise _not_an_object(cls, data, path)
    items = data.get("items", _MISSING)
    if not isinstance(items, list):
        got = "missing" if items is _MISSING else f"{_excerpt(items)}, not a list"
        raise ProtocolError(f"unexpected reply shape for {_display(cls)}: {path}.items is {got}")
    values, problems = _fields(Page, data, path, cls)
    hot = _HOT[item]
    try:
        records = tuple(map(hot, items))
    except Exception:
        records = tuple(
            _record(hot, item, entry, f"{path}.items[{index}]", cls)
            for index, entry in enumerate(items)
        )
    raw = {key: value for key, value in data.items() if key != "items"} if problems else None
    page: Page[T] = Page(records, *values, raw=raw)
    _warn(Page, problems)
    return page


def _record(hot: Callable[[Any], T], item: type[T], entry: Any, path: str, shown: object) -> T:
    try:
        return hot(entry)
    except Exception:
        return _tolerant(item, entry, path, shown)


def structure(data: Any, cls: type[T], *, what: str = "data") -> T:
    """Build ``cls`` from decoded JSON (``what`` names it in messages).

    Raises :class:`ProtocolError` naming the wire field when a required field is
    missing, null or unreadable; an optional one becomes ``None`` (see the models).
    """
    hot = _HOT.get(cls)
    if hot is not None:
        try:
            result: T = hot(data)
            return result
        except Exception:
            item = _PAGE_ITEM.get(cls)
            if item is not None:
                page: T = _tolerant_page(cls, item, data, what)  # type: ignore[assignment]
                return page
            return _tolerant(cls, data, what)
    try:
        return _reference.structure(data, cls)
    except Exception as error:
        if not isinstance(data, dict):
            raise _not_an_object(cls, data, what) from None
        details = "; ".join(
            _WIRE_PATH.sub(lambda m: "." + wire_name(m.group(1)), line)
            for line in cattrs.transform_error(error, path=what)
        )
        raise ProtocolError(f"unexpected reply shape for {_display(cls)}: {details}") from None


def page_server_time(data: Any) -> int | None:
    """The exchange's clock (epoch ms) when it served a history page, if the page says.

    ``None`` when the page has no readable ``timestamp`` (as ``Page.timestamp``).
    """
    served = data.get("timestamp") if isinstance(data, dict) else None
    try:
        return None if served is None else _int(served, int)
    except ValueError:
        return None


#: The models to_dict() accepts; nothing else (a Credentials above all) is ever dumped.
_DUMPABLE = (*_MODELS, Page)
_DUMP_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in _wire_fields(cls)) for cls in _DUMPABLE
}


def to_dict(obj: Any) -> dict[str, Any]:
    """A model as a flat dict with Python field names; amounts as exact strings.

    Only margin-async's models (``BorrowResult``, ``RepayResult``, ``BorrowOrder``,
    ``RepayOrder``, ``InterestRecord``, ``Page`` with its items as dicts) are accepted;
    anything else, credentials above all, is a :class:`ValidationError`. ``raw`` is not
    included; times stay epoch ms, absent values ``None``.
    """
    fields = _DUMP_FIELDS.get(type(obj))
    if fields is None:
        names = ", ".join(cls.__name__ for cls in _DUMPABLE)
        raise ValidationError(
            "obj",
            f"to_dict takes one of margin-async's models ({names}), "
            f"not {type(obj).__name__}; credentials are never dumped",
        )
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, OrderStatus):
            value = value.value
        elif name == "items" and isinstance(obj, Page):
            value = [to_dict(record) for record in value]
        out[name] = value
    return out
