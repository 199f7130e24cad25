"""The drain loop both outbox senders (SMS, email) run: claim due rows, send, wait.

Kept in one place because the subtle parts are the same for every channel: the wake
event is cleared *before* a claim (a `wake()` during a round must not wait a whole
poll), a round that claimed rows is followed at once by another (more may be due),
and nothing that goes wrong in a round — a database outage included — ends the loop:
it is counted, logged at most once a minute, and retried after `LOOP_RETRY_S`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from store.errors import StoreError

# A failed round is retried after this long; its error is logged at most once a minute.
LOOP_RETRY_S = 1.0
ERROR_LOG_EVERY_S = 60.0


class OutboxLoop(abc.ABC):
    """Subclasses set `task_name` and `_log`, call `_init_loop`, keep a `stats` object
    with a `loop_errors` counter and implement `drain_once`."""

    task_name = "outbox"
    _log = logging.getLogger("leadline.outbox")
    stats: Any

    def _init_loop(self, poll_s: Callable[[], float],
                   sleep: Callable[[float], Awaitable[None]]) -> None:
        self._poll_s = poll_s
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_error_log = -ERROR_LOG_EVERY_S

    @abc.abstractmethod
    async def drain_once(self) -> int:
        """Claim due rows and send them; the number claimed."""

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                name=self.task_name)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """A row was just queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.drain_once()
            except Exception as exc:  # never let the worker die: count, log, go on
                self._loop_error(exc)
                await self._sleep(LOOP_RETRY_S)
                continue
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s()):
                    await self._wake.wait()

    def _loop_error(self, exc: BaseException) -> None:
        self.stats.loop_errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_EVERY_S:
            self._last_error_log = now
            self._log.error("%s: %s", self.task_name, exc,
                            exc_info=not isinstance(exc, StoreError))
