"""aioresponses 0.7.9 on aiohttp 3.14: its mocked responses lack ``stream_writer``.

aiohttp 3.14's ``ClientResponse.__init__`` takes a required ``stream_writer`` and, for a
request already sent (``writer=None``, as aioresponses builds them), reads its
``output_size``. aioresponses does not pass one, so every mocked request fails with a
``TypeError``. Until upstream releases a fix, :func:`install` makes aioresponses build
its responses from a subclass that supplies a writer which has sent nothing more.

A second change of 3.14 bites bodies over the stream's high-water mark (128 KiB): the
reader asks its protocol to pause reading, and 3.14's protocol asserts that it has a
parser, which aioresponses' stand-in protocol has not. There is no socket to pause here,
so the shim's protocol ignores the request. On an aiohttp before 3.14 nothing changes.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse
from aiohttp.client_proto import ResponseHandler
from aiohttp.streams import StreamReader

__all__ = ["NEEDED", "CompatResponse", "install"]

#: Whether this aiohttp's ClientResponse needs the shim.
NEEDED = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class _SentWriter:
    """A stream writer whose request is already on the wire: nothing left to count."""

    output_size = 0


class CompatResponse(ClientResponse):
    """A ``ClientResponse`` that aioresponses can build on aiohttp 3.14 and earlier."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if NEEDED:
            kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


class _Unpausable(ResponseHandler):
    """The protocol behind a mocked body: nothing to pause, the body is all in memory."""

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        pass

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        pass


def _stream_reader(loop: asyncio.AbstractEventLoop | None = None) -> StreamReader:
    return StreamReader(_Unpausable(loop=loop), limit=2**16, loop=loop)  # type: ignore[arg-type]


def install() -> None:
    """Make aioresponses build :class:`CompatResponse` bodies it can feed (idempotent)."""
    if NEEDED:
        aioresponses.core.ClientResponse = CompatResponse  # type: ignore[misc]
        aioresponses.core.stream_reader_factory = _stream_reader
