"""One phone call: the glue between a phone leg, the media engine and a brain.

The leg (Twilio Media Streams today, LiveKit later) feeds caller frames and
marks in and sends what the call hands it; the media engine paces playout and
decides turns on the shared clock; the brain speaks. `Call` implements both
`MediaSink` (the engine's view) and `BrainOutput` (the brain's view), so
neither layer knows the other. Everything per call ends with the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from agents.brain import Brain, BrainOutput, CallContext, Role
from media.recording import CallRecorder

log = logging.getLogger("leadline.call")


class Leg(Protocol):
    """What a call needs from its phone leg; all non-blocking."""

    def send_media(self, ulaw_frame: bytes) -> bool: ...
    def send_mark(self, name: str) -> bool: ...
    def send_clear(self) -> bool: ...
    def hang_up(self, reason: str) -> None: ...


# The caller lookup (returning caller's name) may take this long before the greeting.
GREETING_LOOKUP_BUDGET_S = 0.1


class CallHooks(Protocol):
    """Process-wide services a call reports to (registry, store, metrics)."""

    async def before_greeting(self, call: Call) -> None: ...
    def on_transcript(self, call: Call, role: Role, text: str) -> None: ...
    def on_caller_named(self, call: Call, name: str) -> None: ...
    def on_transfer(self, call: Call, number: str) -> None: ...
    def on_send_dtmf(self, call: Call, digits: str) -> None: ...
    def fallback_brain(self, call: Call) -> Brain: ...


class Call(BrainOutput):
    """Per-call state; created when the leg's stream starts, closed when it ends."""

    def __init__(self, context: CallContext, leg: Leg, brain: Brain, hooks: CallHooks,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.context = context
        self.leg = leg
        self.brain = brain
        self.hooks = hooks
        self.media = None  # CallMedia, attached by the engine
        self._now = now
        self.started_at = now()
        self.ended_at: float | None = None
        self.end_reason = ""
        self.hangup_reason: str | None = None
        self.fell_back = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.transcript_tail: list[tuple[Role, str]] = []
        self.send_failures = 0
        self.recorder: CallRecorder | None = None

    @property
    def call_sid(self) -> str:
        return self.context.call_sid

    def spawn(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        """A child task of the call: cancelled when the call ends, errors logged."""
        task = asyncio.create_task(coro, name=f"{name}:{self.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception(),
                      extra={"call_sid": self.call_sid, "task": task.get_name()})

    async def start_brain(self) -> None:
        if not self.fell_back:
            try:  # never let a slow lookup hold the greeting back
                await asyncio.wait_for(self.hooks.before_greeting(self),
                                       GREETING_LOOKUP_BUDGET_S)
            except Exception as exc:  # TimeoutError included: greet without the name
                log.info("caller lookup skipped", extra={"call_sid": self.call_sid,
                                                         "reason": type(exc).__name__})
        try:
            await self.brain.start(self.context, self)
        except Exception as exc:
            log.warning("brain failed to start", extra={"call_sid": self.call_sid,
                                                        "brain": self.brain.kind,
                                                        "error": str(exc)})
            self.brain_failed(f"start: {exc}")

    # -- leg → call ----------------------------------------------------------------

    def caller_audio(self, ulaw: bytes) -> None:
        """Hot path: one inbound frame of caller audio."""
        self.media.receive(ulaw)  # type: ignore[union-attr]
        self.brain.push_audio(ulaw)
        if self.recorder is not None:
            self.recorder.caller(ulaw)

    def caller_dtmf(self, digit: str) -> None:
        self.brain.dtmf(digit)

    def mark_played(self, name: str) -> None:
        self.media.on_mark(name)  # type: ignore[union-attr]

    # -- MediaSink (engine → call) -----------------------------------------------

    def send_media(self, frame: bytes) -> None:
        if not self.leg.send_media(frame):
            self.send_failures += 1
        if self.recorder is not None:
            self.recorder.agent(frame)

    def send_mark(self, name: str) -> None:
        self.leg.send_mark(name)

    def send_clear(self) -> None:
        self.leg.send_clear()

    def speech_started(self) -> None:
        pass

    def end_of_turn(self, info: object) -> None:
        if self.hangup_reason is None:
            self.brain.commit()

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        self.brain.cancel()
        if item_id is not None:
            self.brain.truncate(item_id, heard_ms)

    def playout_idle(self) -> None:
        if self.hangup_reason is not None:
            self.leg.hang_up(self.hangup_reason)

    def failed(self, exc: BaseException) -> None:
        log.error("call media failed", exc_info=exc, extra={"call_sid": self.call_sid})
        self.leg.hang_up("media error")

    # -- BrainOutput (brain → call) ----------------------------------------------

    def agent_audio(self, item_id: str, ulaw: bytes) -> None:
        self.media.agent_audio(item_id, ulaw)  # type: ignore[union-attr]

    def agent_audio_done(self, item_id: str) -> None:
        self.media.agent_done(item_id)  # type: ignore[union-attr]

    def transcript(self, role: Role, text: str, item_id: str | None = None) -> None:
        self.transcript_add(role, text)

    def transcript_add(self, role: Role, text: str) -> None:
        if len(self.transcript_tail) >= 200:  # bounded: the store keeps the whole record
            del self.transcript_tail[0]
        self.transcript_tail.append((role, text))
        self.hooks.on_transcript(self, role, text)

    def caller_speech_started(self) -> None:
        self.media.interrupt()  # type: ignore[union-attr]

    def end_call(self, reason: str) -> None:
        self.hangup_reason = reason or "agent ended the call"
        if self.media is not None and self.media.playout.idle:  # type: ignore[attr-defined]
            self.leg.hang_up(self.hangup_reason)

    def caller_named(self, name: str) -> None:
        self.context.caller_name = name
        self.hooks.on_caller_named(self, name)

    def transfer_call(self, number: str) -> None:
        self.hooks.on_transfer(self, number)

    def send_dtmf(self, digits: str) -> None:
        self.hooks.on_send_dtmf(self, digits)

    def brain_failed(self, error: str) -> None:
        """Degrade, never go silent: swap in the keyless brain, once."""
        if self.fell_back:
            log.error("fallback brain failed too; ending call",
                      extra={"call_sid": self.call_sid, "error": error})
            self.leg.hang_up("brain failure")
            return
        self.fell_back = True
        log.warning("brain failed, switching to keyless brain",
                    extra={"call_sid": self.call_sid, "error": error})
        old = self.brain
        self.brain = self.hooks.fallback_brain(self)
        self.spawn(old.close(), "brain-close")
        if self.media is not None:
            self.media.interrupt()  # type: ignore[union-attr]
        self.spawn(self.start_brain(), "brain-start")

    # -- end -----------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        if self.ended_at is not None:
            return
        self.ended_at = self._now()
        self.end_reason = reason
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.brain.close()
        if self.recorder is not None:
            self.recorder.close()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    @property
    def duration_s(self) -> float:
        return (self.ended_at or self._now()) - self.started_at
