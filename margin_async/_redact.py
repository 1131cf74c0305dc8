"""Removing secrets from text that came from elsewhere (reply excerpts, exchange messages).

A proxy or a misconfigured gateway can echo request headers back in its reply, and so
put the signed passphrase header into an error message, a log line or CLI output. Every
excerpt of a reply passes through :func:`redact` before anything shows it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "Redactor"]

#: What a secret is replaced with.
REDACTED = "[redacted]"
_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")


def _spellings(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a reply: raw, JSON-, URL- and HTML-escaped."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON encoders that escape "/"
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        html.escape(secret),
    }
    # %2f as well as %2F: percent-encoders differ in the case of their hex digits.
    forms.add(_LOWER_HEX.sub(lambda m: m.group(0).lower(), quote(secret, safe="")))
    return {form for form in forms if form}


# A secret shorter than this is not looked for: it would match ordinary text ("s" in
# every word) and garble every message, while hiding nothing a reader could use.
_MIN_SECRET = 4


class Redactor:
    """Replaces every spelling of the given secrets with :data:`REDACTED`."""

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= _MIN_SECRET:
                forms |= {form for form in _spellings(secret) if len(form) >= _MIN_SECRET}
        # Longest first: an escaped form can contain the raw one.
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced (case-sensitive, as secrets are)."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text
