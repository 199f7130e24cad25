"""Hot reload of the config file: on SIGHUP and when its mtime changes.

A file that no longer parses or validates keeps the old values; the error is
logged and kept for /health, so a typo in production never drops a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from ops import config as config_mod
from ops.config import Config, ConfigError

log = logging.getLogger("leadline.reload")


@dataclass(slots=True)
class ReloadResult:
    ok: bool
    at: float
    error: str | None = None
    trigger: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "error": self.error,
            "trigger": self.trigger,
        }


class ConfigReloader:
    def __init__(self, path: str | None, current: Config,
                 apply: Callable[[Config, Config], None], poll_s: float) -> None:
        self.path = path
        self.current = current
        self._apply = apply
        self._poll_s = poll_s
        self._mtime = self._stat()
        self._task: asyncio.Task[None] | None = None
        self.last: ReloadResult | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0

    def _stat(self) -> float | None:
        if self.path is None:
            return None
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def reload(self, trigger: str) -> ReloadResult:
        try:
            new = config_mod.load(self.path)
        except ConfigError as exc:
            self.reloads_failed += 1
            self.last = ReloadResult(False, time.time(), str(exc), trigger)
            log.error("config reload rejected, keeping previous values",
                      extra={"error": str(exc), "trigger": trigger})
            return self.last
        old, self.current = self.current, new
        try:
            self._apply(old, new)
        except Exception as exc:  # a bug in applying must not kill the server
            self.reloads_failed += 1
            self.last = ReloadResult(False, time.time(), f"apply failed: {exc}", trigger)
            log.exception("config apply failed")
            return self.last
        self.reloads_ok += 1
        self.last = ReloadResult(True, time.time(), None, trigger)
        log.info("config reloaded", extra={"trigger": trigger})
        return self.last

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload, "sighup")
        if self.path is not None and self._poll_s > 0:
            self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            mtime = self._stat()
            if mtime != self._mtime:
                self._mtime = mtime
                if mtime is not None:
                    self.reload("file-change")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
