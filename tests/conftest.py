"""Suite-wide isolation of process-wide state."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agents.realtime.breaker import default_breaker
from tests.fakes.clock import virtual_time  # noqa: F401  (the suite-wide fixture)

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def _fresh_realtime_breaker():
    """The circuit breaker is shared by all calls of a process; tests must not share it."""
    default_breaker.reset()
    yield
    default_breaker.reset()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of our own on the test Redis db; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
