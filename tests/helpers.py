"""Waiting and serving, once for the whole suite.

`eventually` is how a test waits for a background effect (a write-behind, a
task, a socket closing): it polls, and when the bound runs out it FAILS with
what it was waiting for. A helper that returned quietly instead would let the
next assertion run against a state that never arrived, or pass for the wrong
reason. The bound is on the loop's clock, so the same helper works under the
`virtual_time` fixture.

`serve_app` puts an aiohttp app on a free loopback port in the test's own loop;
`start_server` does that for the real leadline app built from config, the way
`leadline serve` does, with its data in a temporary directory.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

AUTH_TOKEN = "test-auth-token-0123456789"


async def eventually(check: Callable[[], Awaitable[T] | T], what: str, *,
                     limit_s: float = 10.0, interval_s: float = 0.01) -> T:
    """Poll `check` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError naming `what` once `limit_s` passed: the generous
    bound only turns a hang into a failure, it is not a timing claim.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"never happened within {limit_s} s: {what}")
        await asyncio.sleep(interval_s)


async def serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 at a free port; the caller cleans the runner up."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@dataclass
class Server:
    url: str
    runtime: Any  # ops.app.Runtime
    app: web.Application


async def start_server(env: Mapping[str, str], config_path: str | None = None
                       ) -> tuple[Server, web.AppRunner]:
    """The real leadline app on a free port, configured by `env` over test defaults."""
    from ops import config as config_mod
    from ops.app import RUNTIME, build_app

    data = tempfile.mkdtemp(prefix="leadline-test-")  # never the repo's ./data
    base = {"LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "LEADLINE_SERVER_RELOAD_POLL_S": "0.2",
            "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{data}/leadline.db",
            "LEADLINE_STORE_JOURNAL_DIR": f"{data}/journal",
            "LEADLINE_ARTIFACTS_DIRECTORY": f"{data}/artifacts",
            "LEADLINE_ARTIFACTS_SPOOL_DIRECTORY": f"{data}/artifacts-spool",
            "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": f"{data}/messages"}
    cfg = config_mod.load(config_path, environ={**base, **env})
    app = build_app(cfg, config_path)

    async def _remove_data(_app: web.Application) -> None:
        shutil.rmtree(data, ignore_errors=True)

    app.on_cleanup.append(_remove_data)
    runner, port = await serve_app(app)
    return Server(f"http://127.0.0.1:{port}", app[RUNTIME], app), runner


async def calls_closed(server: Server, limit_s: float = 5.0) -> None:
    """Every call of `server` has ended (the sim hung up; the server must notice)."""
    await eventually(lambda: not server.runtime.calls.active,
                     "the server closed every call", limit_s=limit_s, interval_s=0.05)
