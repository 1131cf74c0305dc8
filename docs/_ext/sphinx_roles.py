"""Griffe extension: the reST roles of margin-async's docstrings, as links in Markdown.

The docstrings are written for readers of the source and for ``help()``: ``:class:`X```,
``:meth:`close```, ``:mod:`margin_async.testing``` and friends. This turns each role into
an *optional* cross-reference (a link when the object is rendered somewhere in the site,
plain code when it is private), and a reST ``::`` literal-block lead-in into ``:``.

Attributes documented the Sphinx way, with ``#:`` comment lines just above them
(``Amount: TypeAlias = ...`` in ``margin_async.types``), get those lines as their
docstring, as Sphinx's autodoc gives them.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):`(~?)([^`<>]+?)`")
_LITERAL_LEAD_IN = re.compile(r"(\S)::\n\n", re.MULTILINE)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of every object of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is None and obj.is_attribute:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = self._rewrite(obj, obj.docstring.value, pkg)

    def _rewrite(self, obj: griffe.Object, text: str, pkg: griffe.Module) -> str:
        def role(match: re.Match[str]) -> str:
            short, target = match.group(1) == "~", match.group(2).strip()
            title = target.rsplit(".", 1)[-1] if short else target
            path = _resolve(obj, target, pkg)
            code = f"<code>{html.escape(title)}</code>"
            if path is None:
                return code
            return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

        text = _ROLE.sub(role, text)
        return _LITERAL_LEAD_IN.sub(r"\1:\n\n", text)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            found.extend(_walk(member))
    return found


def _comment_docstring(attr: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` lines right above an attribute, as its docstring."""
    if attr.lineno is None or attr.filepath is None or isinstance(attr.filepath, list):
        return None
    lines = attr.lines_collection[attr.filepath]
    found: list[str] = []
    index = attr.lineno - 2  # the line above (lineno counts from 1)
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        found.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    if not found:
        return None
    return griffe.Docstring("\n".join(found), lineno=index + 2, parent=attr)


def _resolve(obj: griffe.Object, target: str, pkg: griffe.Module) -> str | None:
    """The path of the object ``target`` names, seen from ``obj``'s docstring."""
    scopes: list[str] = []
    scope: griffe.Object | None = obj
    while scope is not None:  # the object itself, its class, its module, ... the package
        scopes.append(scope.path)
        scope = scope.parent
    candidates = [f"{s}.{target}" for s in scopes] + [target]
    for candidate in candidates:
        if candidate != pkg.path and not candidate.startswith(pkg.path + "."):
            continue
        relative = candidate[len(pkg.path) + 1 :]
        try:
            found: griffe.Object | griffe.Alias = pkg[relative] if relative else pkg
            if isinstance(found, griffe.Alias):
                return found.final_target.path
            return found.path
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    return None
