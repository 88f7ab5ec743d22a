"""Fixtures of the unit tier (no network, no subprocess)."""

from __future__ import annotations

import pytest

from amo_pipelines import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for the SDK: a limiter, breaker, retry or token store built on it."""
    return FakeClock()
