"""A real leadline server on a free port, in the test's event loop (see `tests.helpers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers import AUTH_TOKEN, Server, start_server

__all__ = ["AUTH_TOKEN", "Server", "server", "start_server"]


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[Server]:
    srv, runner = await start_server({
        "LEADLINE_RECORDING_ENABLED": "true",
        "LEADLINE_RECORDING_DIRECTORY": str(tmp_path / "rec"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
    })
    try:
        yield srv
    finally:
        await runner.cleanup()
