"""One phone call: the glue between a phone leg, the media engine and a brain.

The leg (Twilio Media Streams, or a LiveKit room) feeds caller frames and
playback progress in and sends what the call hands it; the media engine paces
playout and decides turns on the shared clock; the brain speaks. `Call` implements both
`MediaSink` (the engine's view) and `BrainOutput` (the brain's view), so
neither layer knows the other. Everything per call ends with the call.

Because the call sits between the two, it is where a turn's latency can be
split fairly: the brain's share ends at its first audio, ours at the first
frame handed to the leg. Samples go to the process-wide `LATENCY`, once per
turn; the per-frame cost is one attribute test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from agents.brain import Brain, BrainOutput, CallContext, Role
from media.clock import SampleRing
from media.dtmf import tones_ulaw
from media.recording import CallRecorder

if TYPE_CHECKING:
    from media.engine import CallMedia

log = logging.getLogger("leadline.call")


class Leg(Protocol):
    """What a call needs from its phone leg; all non-blocking.

    Carrier-neutral: the leg reports what the caller actually heard by calling
    `Call.played(item_id, ms)` for each checkpoint it was handed, once the
    audio before the checkpoint has played. Twilio does that through a mark
    it echoes; a leg that plays audio itself (LiveKit) knows its position and
    reports it. Barge-in truncation then reads the same numbers either way.
    """

    def send_media(self, ulaw_frame: bytes) -> bool: ...
    def send_checkpoint(self, item_id: str, ms: int) -> bool: ...
    def send_clear(self) -> bool: ...
    def flush(self) -> None: ...
    def hang_up(self, reason: str) -> None: ...


# The caller lookup (returning caller's name) may take this long before the greeting.
GREETING_LOOKUP_BUDGET_S = 0.1

# Histogram bucket bounds (seconds) of the latency figures below.
TURN_BOUNDS_S = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
# Our share is one tick (20 ms) plus processing: fine buckets around it.
OURS_BOUNDS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.1, 0.25)
START_BOUNDS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class BrainLatency:
    """Latency samples of the calls served by one kind of brain.

    The split answers "whose fault is a slow answer": `brain` is the end of
    the caller's turn (our commit) to the first audio the brain produced,
    `ours` is that first audio to its first frame handed to the leg (media
    clock wait included: at most one 20 ms tick), `turn` is the sum as the
    caller experiences it, up to the carrier. Bounded rings with cumulative
    buckets; /metrics reads them at scrape time.
    """

    __slots__ = ("brain", "greeting", "ours", "start", "turn")

    def __init__(self, window: int) -> None:
        self.turn = SampleRing(window, TURN_BOUNDS_S)
        self.brain = SampleRing(window, TURN_BOUNDS_S)
        self.ours = SampleRing(window, OURS_BOUNDS_S)
        # Stream start → first greeting frame sent (the 1 s greeting promise).
        self.greeting = SampleRing(window, TURN_BOUNDS_S)
        # Brain.start (for OpenAI: connect + session setup), successful starts.
        self.start = SampleRing(window, START_BOUNDS_S)


class CallLatency:
    """Process-wide latency figures, by brain kind ("openai", "scripted").

    One per process (`LATENCY`), like the metrics registry: samples are added
    once per turn, never per frame, and a kind's rings are made on first use.
    """

    def __init__(self, window: int = 3000) -> None:
        self.window = window
        self.by_brain: dict[str, BrainLatency] = {}

    def of(self, kind: str) -> BrainLatency:
        rings = self.by_brain.get(kind)
        if rings is None:
            rings = self.by_brain[kind] = BrainLatency(self.window)
        return rings


LATENCY = CallLatency()


class CallHooks(Protocol):
    """The call's only outlet: whoever runs it (`CallManager`, which passes each
    event on to the `CallObserver` it was built with, isolating their errors)."""

    async def before_greeting(self, call: Call) -> None: ...
    def on_transcript(self, call: Call, role: Role, text: str) -> None: ...
    def on_caller_named(self, call: Call, name: str) -> None: ...
    def on_transfer(self, call: Call, number: str) -> None: ...
    def fallback_brain(self, call: Call) -> Brain: ...


class Call(BrainOutput):
    """Per-call state; created when the leg's stream starts, closed when it ends."""

    def __init__(self, context: CallContext, leg: Leg, brain: Brain, hooks: CallHooks,
                 now: Callable[[], float] = time.monotonic,
                 latency: CallLatency = LATENCY) -> None:
        self.context = context
        self.leg = leg
        self.brain = brain
        self.hooks = hooks
        # Attached by `CallManager.open` (the engine needs the call first), so before
        # any frame or brain event; None only in between.
        self.media: CallMedia = None  # type: ignore[assignment]
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
        # An observer's look at the caller's frames (the dialer's machine detection,
        # for the first seconds only): one attribute test per frame while it is None.
        self.audio_tap: Callable[[bytes], None] | None = None
        # Turn latency bookkeeping (monotonic s; 0.0 = nothing pending). Between
        # a commit and the brain's first audio `_turn_end_at` is set; between
        # that audio and its first frame sent, `_frame_due` is. send_media reads
        # only `_frame_due`: one attribute test per frame.
        self.latency = latency
        self._turn_end_at = 0.0
        self._turn_started_at = 0.0
        self._first_audio_at = 0.0
        self._greeting_due = True
        self._frame_due = True  # the greeting's first frame

    @property
    def call_sid(self) -> str:
        return self.context.call_sid

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
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
        brain = self.brain
        if hasattr(brain, "on_first_audio"):  # the Realtime brain stamps its first delta
            brain.on_first_audio = self._brain_first_audio  # type: ignore[attr-defined]
        started = self._now()
        try:
            await brain.start(self.context, self)
        except Exception as exc:
            log.warning("brain failed to start", extra={"call_sid": self.call_sid,
                                                        "brain": self.brain.kind,
                                                        "error": str(exc)})
            self.brain_failed(f"start: {exc}")
            return
        self.latency.of(brain.kind).start.add(self._now() - started)

    # -- leg → call ----------------------------------------------------------------

    def caller_audio(self, ulaw: bytes) -> None:
        """Hot path: one inbound frame of caller audio."""
        self.media.receive(ulaw)
        self.brain.push_audio(ulaw)
        if self.recorder is not None:
            self.recorder.caller(ulaw)
        tap = self.audio_tap
        if tap is not None:
            tap(ulaw)

    def caller_dtmf(self, digit: str) -> None:
        self.brain.dtmf(digit)

    def played(self, item_id: str, ms: int) -> None:
        """The leg played agent audio up to checkpoint `(item_id, ms)`."""
        self.media.played(item_id, ms)

    # -- MediaSink (engine → call) -----------------------------------------------

    def send_media(self, frame: bytes) -> None:
        if self._frame_due:
            self._first_frame_sent()
        if not self.leg.send_media(frame):
            self.send_failures += 1
        if self.recorder is not None:
            self.recorder.agent(frame)

    def send_checkpoint(self, item_id: str, ms: int) -> None:
        self.leg.send_checkpoint(item_id, ms)

    def send_clear(self) -> None:
        self.leg.send_clear()

    def flush(self) -> None:
        self.leg.flush()

    def speech_started(self) -> None:
        pass

    def end_of_turn(self, info: object) -> None:
        if self.hangup_reason is None:
            self._turn_end_at = self._now()
            self.brain.commit()

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        # What was waiting for its first frame was flushed: measure nothing of it.
        self._frame_due = self._greeting_due = False
        self._first_audio_at = 0.0
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
        if self._turn_end_at:  # a brain without the first-audio hook answers a turn
            self._brain_first_audio(item_id, self._now())
        self.media.agent_audio(item_id, ulaw)

    def agent_audio_done(self, item_id: str) -> None:
        self.media.agent_done(item_id)

    def transcript(self, role: Role, text: str, item_id: str | None = None) -> None:
        self.transcript_add(role, text)

    def transcript_add(self, role: Role, text: str) -> None:
        if len(self.transcript_tail) >= 200:  # bounded: the store keeps the whole record
            del self.transcript_tail[0]
        self.transcript_tail.append((role, text))
        self.hooks.on_transcript(self, role, text)

    def caller_speech_started(self) -> None:
        self.media.interrupt()

    def drop_agent_audio(self) -> None:
        # The same cut as a barge-in: playout cleared, the leg's buffer cleared, the brain
        # told what was heard (nothing happens when nothing is queued).
        if self.media is not None:
            self.media.interrupt()

    def end_call(self, reason: str) -> None:
        self.hangup_reason = reason or "agent ended the call"
        if self.media is not None and self.media.playout.idle:
            self.leg.hang_up(self.hangup_reason)

    def caller_named(self, name: str) -> None:
        self.context.caller_name = name
        self.hooks.on_caller_named(self, name)

    def transfer_call(self, number: str) -> None:
        self.hooks.on_transfer(self, number)

    def send_dtmf(self, digits: str) -> None:
        """Keys for a phone menu: out of band when the leg can, else in-band tones.

        A leg with its own `send_dtmf` (LiveKit: RFC 4733 events through
        `publish_dtmf`) carries them as telephone events, which a far-end IVR reads
        more reliably than tones through a codec. Twilio cannot inject DTMF into a
        live `<Connect><Stream>` by REST (the update tears the stream down), so there
        the tones go through the call's own playout, like speech. Bad digits are
        logged and dropped: they come from a model, not from the caller.
        """
        out_of_band = getattr(self.leg, "send_dtmf", None)
        if out_of_band is not None:
            if not out_of_band(digits):
                log.warning("bad DTMF digits", extra={"call_sid": self.call_sid,
                                                      "digits": digits[:8]})
            return
        try:
            audio = tones_ulaw(digits)
        except ValueError as exc:
            log.warning("bad DTMF digits", extra={"call_sid": self.call_sid, "error": str(exc)})
            return
        media = self.media
        if media is None:
            return
        item = f"dtmf-{media.playout.sent_frames}"
        media.agent_audio(item, audio)
        media.agent_done(item)

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
        if self.media is not None:  # cut the failed brain's audio while it is still ours
            self.media.interrupt()
        old = self.brain
        self.brain = self.hooks.fallback_brain(self)
        self.spawn(old.close(), "brain-close")
        self.spawn(self.start_brain(), "brain-start")

    # -- latency -------------------------------------------------------------------

    def _brain_first_audio(self, item_id: str, at: float) -> None:
        """The brain's first audio of a response; `at` on the monotonic clock.

        Only the first response after a committed caller turn counts. Its first
        frame is measured only if nothing else is queued ahead of it: otherwise
        the wait would be the earlier audio playing, not our overhead.
        """
        turn_end = self._turn_end_at
        if not turn_end:
            return
        self._turn_end_at = 0.0
        self.latency.of(self.brain.kind).brain.add(max(0.0, at - turn_end))
        media = self.media
        if media is not None and media.playout.queued_ms == 0:
            self._turn_started_at = turn_end
            self._first_audio_at = at
            self._frame_due = True

    def _first_frame_sent(self) -> None:
        """Once per response (not per frame): the first frame is leaving for the leg."""
        self._frame_due = False
        now = self._now()
        rings = self.latency.of(self.brain.kind)
        if self._greeting_due:
            self._greeting_due = False
            rings.greeting.add(now - self.started_at)
        first_audio = self._first_audio_at
        if first_audio:
            self._first_audio_at = 0.0
            rings.ours.add(max(0.0, now - first_audio))
            rings.turn.add(max(0.0, now - self._turn_started_at))

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
