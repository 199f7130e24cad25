"""A real leadline server on a free port, in the test's event loop."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import pytest
from aiohttp import web

from ops import config as config_mod
from ops.app import RUNTIME, Runtime, build_app

AUTH_TOKEN = "test-auth-token-0123456789"


@dataclass
class Server:
    url: str
    runtime: Runtime
    app: web.Application


async def start_server(env: Mapping[str, str], config_path: str | None = None
                       ) -> tuple[Server, web.AppRunner]:
    data = tempfile.mkdtemp(prefix="leadline-test-")  # never the repo's ./data
    base = {"LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "LEADLINE_SERVER_RELOAD_POLL_S": "0.2",
            "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{data}/leadline.db",
            "LEADLINE_STORE_JOURNAL_DIR": f"{data}/journal",
            "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": f"{data}/messages"}
    cfg = config_mod.load(config_path, environ={**base, **env})
    app = build_app(cfg, config_path)

    async def _remove_data(_app: web.Application) -> None:
        shutil.rmtree(data, ignore_errors=True)

    app.on_cleanup.append(_remove_data)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Server(f"http://127.0.0.1:{port}", app[RUNTIME], app), runner


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
