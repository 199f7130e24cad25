"""The coach's asyncio shell: one task per call, cancelled with the call.

The task sleeps until the core's next slot, asks the core whether a request is
due (nothing is sent when nothing new was said), sends it to the Chat
Completions endpoint under a hard `timeout_s`, and hands the note it gets back
to `deliver` (the brain's `coach_note`, which itself never interrupts the agent).
A slow, failing or nonsensical coach only costs its own slot: the call never
waits for it. A process-wide circuit breaker stops asking a coach that keeps
failing (every call would otherwise spend a request slot on it) and probes it
again after a cooldown.

Time comes from an injected `Schedule` (`now` + `sleep`): by default the
event loop's own, so the `virtual_time` fixture drives it; an end-to-end test
can hand a manual one and step the coach 15 s at a time under a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from agents.chat.llm import LlmClient, LlmError
from agents.coach.core import CoachCore
from agents.realtime.breaker import CircuitBreaker

log = logging.getLogger("leadline.agents.coach")

# Shared by every call of the process: a coach model that is down is down for all.
coach_breaker = CircuitBreaker(failures=5, window_s=60.0, cooldown_s=60.0)


class Schedule(Protocol):
    """Where the coach's time comes from."""

    def now(self) -> float: ...
    async def sleep(self, delay: float) -> None: ...


class LoopSchedule:
    """The running event loop's clock (virtual under the `virtual_time` fixture)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class CoachTask:
    """Runs one call's `CoachCore` against an `LlmClient` until cancelled."""

    def __init__(
        self,
        core: CoachCore,
        client: LlmClient,
        deliver: Callable[[str], None],
        *,
        timeout_s: float,
        schedule: Schedule,
        breaker: CircuitBreaker = coach_breaker,
        call_sid: str = "",
    ) -> None:
        self.core = core
        self.client = client
        self.deliver = deliver
        self.timeout_s = timeout_s
        self.schedule = schedule
        self.breaker = breaker
        self._extra = {"call_sid": call_sid}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"coach:{self._extra['call_sid']}")
        return self._task

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def run(self) -> None:
        core, schedule = self.core, self.schedule
        while True:
            delay = core.next_due_at - schedule.now()
            if delay > 0:
                await schedule.sleep(delay)
            if core.due():
                await self.ask()

    async def ask(self) -> None:
        """One request (the core said it is due): the note delivered, or the slot skipped."""
        core = self.core
        if not self.breaker.allow():
            core.skip("breaker_open")
            return
        messages: Sequence[dict[str, str]] = core.request()
        try:
            async with asyncio.timeout(self.timeout_s):
                text = await self.client.complete(messages, json_mode=True)
        except TimeoutError:
            self._failed("timeout", f"no answer within {self.timeout_s:g} s")
            return
        except LlmError as exc:
            self._failed(exc.kind, exc.detail)
            return
        except Exception as exc:  # a client bug must not end the coach, nor the call
            log.exception("coach request crashed", extra=self._extra)
            self._failed("error", repr(exc))
            return
        self.breaker.record_success()
        note = core.reply(text)
        if note is None:
            return
        try:
            self.deliver(note)
        except Exception:
            log.exception("coach note not delivered", extra=self._extra)

    def _failed(self, kind: str, detail: str) -> None:
        self.breaker.record_failure()
        self.core.failed(kind)
        log.info("coach request skipped: %s: %s", kind, detail[:200], extra=self._extra)
