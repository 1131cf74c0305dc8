"""One walk of a history: filters, the window pinned to the exchange's clock, pages."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

from margin_async.convert import page_server_time, structure
from margin_async.endpoints._params import HistoryFilter, HistorySpec
from margin_async.models import Page
from margin_async.pagination import PageFetcher, Paginator
from margin_async.reconcile import CLOCK_TOLERANCE_MS
from margin_async.session import Session

__all__ = ["history_walk"]

T = TypeVar("T")


def history_walk(
    session: Session, spec: HistorySpec[T], filters: HistoryFilter, size: int, prefetch: int
) -> Paginator[T]:
    """A :class:`Paginator` over ``spec`` with ``filters``, ``size`` records per page."""
    page_type = spec.page_type

    def open_window(start: int | None) -> PageFetcher:
        walk: HistoryFilter | None = None

        async def fetch(page: int) -> Any:
            nonlocal walk
            if walk is not None:
                return await session.request(spec.request(walk, page, size))
            # Page 1, alone: pin the window. The end is the exchange's "now", so that
            # records arriving during the walk fall after it and cannot shift pages.
            walk = pin(start, session.now_ms())
            data = await session.request(spec.request(walk, page, size))
            served = page_server_time(data)
            assert walk.end_time is not None
            if served is not None and walk.end_time - CLOCK_TOLERANCE_MS <= served < walk.end_time:
                # Our clock is ahead of the exchange's (by less than its 5 s check, or
                # the request would have been refused): pin to the time the exchange
                # served page 1, and read it again.
                walk = pin(start, served)
                data = await session.request(spec.request(walk, page, size))
            return data

        return fetch

    def pin(start: int | None, now: int) -> HistoryFilter:
        end = now if filters.end_time is None else min(filters.end_time, now)
        if start is not None and filters.start_time is not None:
            start = max(start, filters.start_time)
        elif start is None:
            start = filters.start_time
        if start is not None:
            end = max(start, end)
        return attrs.evolve(filters, start_time=start, end_time=end)

    def parse(data: Any) -> Page[T]:
        page: Page[T] = structure(data, page_type)
        return page

    return Paginator(
        lambda: open_window(None),
        prefetch=prefetch,
        parse=parse,
        open_window=open_window,
        start_time=filters.start_time or 0,
    )
