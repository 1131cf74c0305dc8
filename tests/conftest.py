"""Fixtures shared by the unit tests (helpers live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aioresponses import aioresponses


@pytest.fixture
def mock() -> Iterator[aioresponses]:
    """aioresponses with nothing registered: an unregistered request fails to connect."""
    with aioresponses() as m:
        yield m
