"""The process's live calls: creation, the shared engine, bookkeeping for /health."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from agents.brain import Brain, CallContext, Role
from media.recording import CallRecorder
from telephony.call import Call, Leg

log = logging.getLogger("leadline.calls")

BrainFactory = Callable[[CallContext], Brain]


class CallObserver:
    """How calls tell the world outside telephony what happened, and what they need.

    The one way out of a call: the composition root hands its observers (the
    store, the carrier's REST actions) to `CallManager` at construction, so
    telephony never imports the store or ops, and nothing is patched onto the
    manager afterwards. The defaults do nothing; every method but
    `before_greeting` must return at once (queue the I/O). Exceptions are
    logged and never reach the call.
    """

    async def before_greeting(self, call: Call) -> None:
        """Runs under a 100 ms budget before the greeting (e.g. set caller_name)."""

    def call_started(self, call: Call) -> None: ...
    def call_ended(self, call: Call) -> None: ...
    def transcript(self, call: Call, role: Role, text: str) -> None: ...
    def caller_named(self, call: Call, name: str) -> None: ...

    def transfer(self, call: Call, number: str) -> bool:
        """Hand the caller to a human at `number`; True when this observer took it on."""
        return False


class CallManager:
    """Creates calls, attaches them to the media engine, remembers how they went.

    `observers` hear every call's events in order; `recording_dir` is read per
    call (None: recording is off), so a reloaded config applies to new calls.
    """

    def __init__(self, engine: Any, brain_factory: BrainFactory,
                 fallback_factory: BrainFactory, max_calls: int, *,
                 observers: Sequence[CallObserver] = (),
                 recording_dir: Callable[[], str | None] = lambda: None) -> None:
        self.engine = engine
        self.brain_factory = brain_factory
        self.fallback_factory = fallback_factory
        self.max_calls = max_calls
        self.active: dict[str, Call] = {}
        self.started = 0
        self.ended = 0
        self.rejected = 0
        self._durations: deque[float] = deque(maxlen=1000)
        self.end_reasons: dict[str, int] = {}
        self.observers = tuple(observers)
        self.recording_dir = recording_dir
        self.recording: set[Call] = set()

    @property
    def full(self) -> bool:
        return len(self.active) >= self.max_calls

    def open(self, context: CallContext, leg: Leg) -> Call:
        brain = self.brain_factory(context)
        call = Call(context, leg, brain, self)
        call.media = self.engine.add_call(call)
        # Twilio may reuse nothing, but a replayed start must not leak the old call.
        old = self.active.pop(context.call_sid, None)
        if old is not None:
            log.warning("duplicate call sid; replacing", extra={"call_sid": context.call_sid})
        self.active[context.call_sid] = call
        self.started += 1
        directory = self.recording_dir()
        if directory:
            safe = re.sub(r"[^A-Za-z0-9_-]", "_", context.call_sid) or "call"
            call.recorder = CallRecorder(os.path.join(directory, f"{safe}.wav"))
            self.recording.add(call)
        self._notify("call_started", call)
        call.spawn(call.start_brain(), "brain-start")
        log.info("call started", extra={"call_sid": context.call_sid, "brain": brain.kind,
                                        "from": context.from_number, "to": context.to_number})
        return call

    async def close(self, call: Call, reason: str) -> None:
        if call.ended_at is not None:
            return
        if self.active.get(call.call_sid) is call:
            del self.active[call.call_sid]
        if call.media is not None:
            self.engine.remove_call(call.media)
        self.recording.discard(call)
        await call.close(reason)
        self._notify("call_ended", call)
        self.ended += 1
        self._durations.append(call.duration_s)
        self.end_reasons[reason] = self.end_reasons.get(reason, 0) + 1
        log.info("call ended", extra={"call_sid": call.call_sid, "reason": reason,
                                      "duration_s": round(call.duration_s, 3)})

    def tick_recorders(self, now_ms: float, frames_due: int) -> None:
        """Media clock callback: keeps each recording's two tracks on the call's timeline."""
        for call in self.recording:
            for _ in range(frames_due):
                call.recorder.tick()  # type: ignore[union-attr]

    def average_duration_s(self) -> float:
        durations = list(self._durations)
        now = time.monotonic()
        durations += [now - c.started_at for c in self.active.values()]
        return sum(durations) / len(durations) if durations else 0.0

    # -- CallHooks ----------------------------------------------------------------

    def _notify(self, what: str, call: Call, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, what)(call, *args)
            except Exception:
                log.exception("call observer failed", extra={"call_sid": call.call_sid,
                                                             "hook": what})

    async def before_greeting(self, call: Call) -> None:
        """All observers at once: the call's greeting budget bounds them together."""
        results = await asyncio.gather(*(o.before_greeting(call) for o in self.observers),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("call observer failed before the greeting",
                            extra={"call_sid": call.call_sid, "error": repr(result)})

    def on_transcript(self, call: Call, role: Role, text: str) -> None:
        self._notify("transcript", call, role, text)

    def on_caller_named(self, call: Call, name: str) -> None:
        self._notify("caller_named", call, name)

    def on_transfer(self, call: Call, number: str) -> None:
        for observer in self.observers:
            try:
                if observer.transfer(call, number):
                    return
            except Exception:
                log.exception("call transfer failed", extra={"call_sid": call.call_sid})
                return
        log.warning("transfer requested but nothing here can carry it out",
                    extra={"call_sid": call.call_sid})

    def fallback_brain(self, call: Call) -> Brain:
        return self.fallback_factory(call.context)
