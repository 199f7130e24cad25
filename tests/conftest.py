"""Suite-wide isolation of process-wide state."""

from __future__ import annotations

import pytest

from agents.realtime.breaker import default_breaker


@pytest.fixture(autouse=True)
def _fresh_realtime_breaker():
    """The circuit breaker is shared by all calls of a process; tests must not share it."""
    default_breaker.reset()
    yield
    default_breaker.reset()
