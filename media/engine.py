"""All calls' media in one place, driven by the one media clock.

`MediaEngine.tick` is the clock's callback. Each tick it (a) runs the VAD
engine once over the streams of every call that received audio since the last
tick (one batch, not one inference per call), (b) feeds each call's decisions
and the tick into its `TurnMachine` and acts on the result, and (c) hands each
call's due playout frames and checkpoints to its sink, then `flush`es it once
(one write per call per tick). Between ticks the only
per-frame work is `CallMedia.receive`: decode μ-law for the VAD and append.

VAD decisions are placed on the clock's timeline relative to the newest
audio: a window ending `d` samples before the last sample fed is stamped
`now − d/8` ms. That keeps a burst of late frames in order without a
timestamp per frame.

A call's outside world is its `MediaSink` (the call object implements it).
Sinks are called synchronously from the tick, so they must not block. An
exception from one call's sink removes that call from the engine and is
reported through `on_call_error`; every other call carries on.

Counters are plain ints and bounded sample rings; a Prometheus collector
reads them at scrape time, the tick never touches a metric object.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from media.clock import SampleRing
from media.codecs import ulaw
from media.playout import Playout
from media.settings import MediaSettings, VadSettings
from media.turns import BargeIn, EndOfTurn, SpeechStarted, TurnAction, TurnMachine
from media.vad.base import VadEngine, VadStream

log = logging.getLogger(__name__)

_decode = ulaw.decode
_MS_PER_SAMPLE = 1000.0 / ulaw.SAMPLE_RATE
_LOG_INTERVAL_MS = 60_000.0
# Histogram buckets exported to Prometheus.
# End of turn: ms beyond vad.stop_ms (target: ≤ 25 ms p99).
END_OF_TURN_BOUNDS_MS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 75.0,
                         100.0, 200.0, 500.0)
# Barge-in: speech onset to clear (target: ≤ 150 ms p95).
BARGE_IN_BOUNDS_MS = (50.0, 75.0, 100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 175.0, 200.0,
                      250.0, 300.0, 500.0, 1000.0)
TICK_BOUNDS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class MediaSink(Protocol):
    """What a call does with its media events. Called from the clock tick: never block."""

    def send_media(self, frame: bytes) -> None:
        """Send one 20 ms μ-law frame to the caller."""

    def send_checkpoint(self, item_id: str, ms: int) -> None:
        """Have the leg report `played(item_id, ms)` once the audio sent so far has played.

        Carrier-neutral on purpose: Twilio turns it into a mark it echoes, a
        LiveKit leg into a position in its own frame queue."""

    def send_clear(self) -> None:
        """Flush the audio the carrier has buffered (barge-in). Goes out at once."""

    def flush(self) -> None:
        """Write out this tick's media and checkpoints (one write per call per tick).

        Optional: a sink without `flush` is taken to write through."""

    def speech_started(self) -> None:
        """The caller started a turn."""

    def end_of_turn(self, info: EndOfTurn) -> None:
        """The caller's turn ended: commit it to the brain."""

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        """Agent audio was cut; truncate `item_id` to `heard_ms` (delete if 0)."""

    def playout_idle(self) -> None:
        """Every bit of agent audio sent has played (or was flushed)."""


@dataclass(slots=True, frozen=True)
class CallStats:
    frames_in: int
    frames_out: int
    frames_dropped_in: int
    barge_ins: int
    end_of_turns: int
    underruns: int
    playout_dropped_ms: int


CallErrorHandler = Callable[["CallMedia", Exception], None]


class CallMedia:
    """One call's media: inbound VAD feed, turn-taking and paced playout.

    Created by `MediaEngine.add_call`. `receive` is the per-frame hot path;
    the other methods are called per brain event or per leg report.
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_engine",
        "_fed",
        "_flush",
        "_got_audio",
        "_max_pending",
        "_pending",
        "_queued",
        "_stream",
        "_tick_frames_in",
        "_was_idle",
        "_window_ms",
        "barge_ins",
        "end_of_turns",
        "frames_dropped_in",
        "frames_in",
        "frames_out",
        "key",
        "playout",
        "sink",
        "turns",
    )

    def __init__(
        self,
        engine: MediaEngine,
        sink: MediaSink,
        stream: VadStream,
        vad_settings: VadSettings,
        media_settings: MediaSettings,
        clock: Callable[[], float],
        key: str,
    ) -> None:
        self._engine = engine
        self.sink = sink
        self._flush: Callable[[], None] | None = getattr(sink, "flush", None)
        self.key = key
        self._clock = clock
        self.turns = TurnMachine(vad_settings)
        self.playout = Playout(media_settings, clock=clock)
        self._closed = False
        self._queued = False
        self._got_audio = False
        self._pending = 0
        self._tick_frames_in = 0
        self._was_idle = True
        self._max_pending = media_settings.max_inbound_ms * ulaw.SAMPLE_RATE // 1000
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped_in = 0
        self.barge_ins = 0
        self.end_of_turns = 0
        self._set_stream(stream)

    # -- hot path --------------------------------------------------------

    def receive(self, ulaw_frame: bytes) -> None:
        """Caller audio as it arrives (any length, usually 160 bytes)."""
        n = len(ulaw_frame)
        if self._pending + n > self._max_pending or self._closed:
            # A burst beyond max_inbound_ms before the next tick (or a late
            # frame of a removed call): drop it, VAD lags no further.
            self.frames_dropped_in += 1
            self._engine.frames_dropped_in += 1
            return
        if not n:
            return
        self._pending += n
        self._fed += n
        self._tick_frames_in += 1
        self._stream.feed(_decode(ulaw_frame))
        if not self._queued:
            self._queued = True
            self._engine._active.append(self)

    # -- brain and carrier events ----------------------------------------

    def agent_audio(self, item_id: str, ulaw_audio: bytes) -> None:
        """Queue agent speech for paced playout."""
        if not self._closed:
            self.playout.push(item_id, ulaw_audio)
            self._check_idle()

    def agent_done(self, item_id: str) -> None:
        if not self._closed:
            self.playout.finish(item_id)
            self._check_idle()

    def played(self, item_id: str, ms: int) -> None:
        """The leg played the audio up to checkpoint `(item_id, ms)` (or flushed it)."""
        if not self._closed:
            self.playout.played(item_id, ms)
            self._check_idle()

    def interrupt(self) -> bool:
        """Barge-in decided elsewhere (the brain's own VAD); False if nothing played."""
        if self._closed or self.playout.idle:
            return False
        self.turns.agent_stopped(self._clock())
        self._barge()
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> CallStats:
        return CallStats(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped_in=self.frames_dropped_in,
            barge_ins=self.barge_ins,
            end_of_turns=self.end_of_turns,
            underruns=self.playout.underruns,
            playout_dropped_ms=self.playout.dropped_ms,
        )

    # -- driven by the engine --------------------------------------------

    def _set_stream(self, stream: VadStream) -> None:
        self._stream = stream
        self._fed = 0
        self._window_ms = stream.window_samples * _MS_PER_SAMPLE

    def _update_settings(self, vad: VadSettings, media: MediaSettings) -> None:
        self.turns.update_settings(vad)
        self.playout.update_settings(media)
        self._max_pending = media.max_inbound_ms * ulaw.SAMPLE_RATE // 1000

    def _tick(self, now_ms: float, frames_due: int) -> None:
        turns = self.turns
        playout = self.playout
        # `playout.speaking` and `.idle`, read inline: two property calls per
        # call per tick were ~4 % of the media path (py-spy).
        speaking = bool(playout._sendq) or playout._ahead > 0
        if speaking is not turns.agent_playing:
            if speaking:
                turns.agent_started(now_ms)
            else:
                turns.agent_stopped(now_ms)
        if self._got_audio:
            self._got_audio = False
            self._pending = 0
            self.frames_in += self._tick_frames_in
            self._engine.frames_in += self._tick_frames_in
            self._tick_frames_in = 0
            decisions = self._stream.take_decisions()
            if decisions:
                fed = self._fed
                window_ms = self._window_ms
                for end_sample, is_speech, prob in decisions:
                    stamp = now_ms - (fed - end_sample) * _MS_PER_SAMPLE
                    actions = turns.vad(stamp, is_speech, window_ms, prob > 0.0)
                    if actions:
                        self._dispatch(actions)
        actions = turns.tick(now_ms)
        if actions:
            self._dispatch(actions)
        underruns = playout.underruns
        out = playout.frames_due(frames_due)
        if out:
            sink = self.sink
            sent = 0
            for frame, checkpoint in out:
                if frame is not None:
                    sink.send_media(frame)
                    sent += 1
                if checkpoint is not None:
                    sink.send_checkpoint(*checkpoint)
            if self._flush is not None:
                self._flush()
            self.frames_out += sent
            self._engine.frames_out += sent
        if playout.underruns != underruns:
            self._engine.underruns += playout.underruns - underruns
        if self._was_idle is bool(playout._unsettled):  # idle changed
            self._check_idle()

    def _dispatch(self, actions: tuple[TurnAction, ...]) -> None:
        engine = self._engine
        for action in actions:
            if type(action) is EndOfTurn:
                self.end_of_turns += 1
                engine.end_of_turns += 1
                engine.end_of_turn_latency_ms.add(
                    action.silence_ms - self.turns.settings.stop_ms)
                self.sink.end_of_turn(action)
            elif type(action) is BargeIn:
                engine.barge_in_latency_ms.add(action.at_ms - action.onset_ms)
                self._barge()
            elif type(action) is SpeechStarted:
                engine.speech_starts += 1
                self.sink.speech_started()

    def _barge(self) -> None:
        """Cut the agent: flush our queue, then the leg's, then tell the brain."""
        truncation = self.playout.clear()
        self.barge_ins += 1
        self._engine.barge_ins += 1
        sink = self.sink
        sink.send_clear()
        if truncation is None:
            sink.barge_in(None, 0)
        else:
            sink.barge_in(truncation.item_id, truncation.heard_ms)
        self._check_idle()

    def _check_idle(self) -> None:
        idle = self.playout.idle
        if idle is self._was_idle:
            return
        self._was_idle = idle
        if idle:
            self.sink.playout_idle()


class MediaEngine:
    """Every call's `CallMedia`, one VAD engine, and the tick that drives them.

    Register `engine.tick` with the `MediaClock`. `clock_now` returns ms on
    the same clock the media clock passes to `tick`.
    """

    def __init__(
        self,
        vad_engine: VadEngine,
        vad_settings: VadSettings,
        media_settings: MediaSettings,
        clock_now: Callable[[], float] = _monotonic_ms,
        *,
        on_call_error: CallErrorHandler | None = None,
        sample_window: int = 3000,
    ) -> None:
        self._vad = vad_engine
        self._vad_settings = vad_settings
        self._media_settings = media_settings
        self._clock = clock_now
        self.on_call_error = on_call_error
        self._calls: dict[int, CallMedia] = {}
        # Calls that received audio since the last tick, and a spare list to swap in.
        self._active: list[CallMedia] = []
        self._spare: list[CallMedia] = []
        self._keys = itertools.count(1)
        self._vad_error_logged_at = -_LOG_INTERVAL_MS
        vad_engine.configure(vad_settings.threshold, vad_settings.min_volume)
        # Counters (monotonic; read by the metrics collector).
        self.frames_in = 0
        self.frames_dropped_in = 0
        self.frames_out = 0
        self.barge_ins = 0
        self.end_of_turns = 0
        self.speech_starts = 0
        self.underruns = 0
        self.vad_batches = 0
        self.vad_inferences = 0
        self.vad_errors = 0
        self.call_errors = 0
        self.ticks = 0
        # Recent samples, bounded. End of turn: how much longer than `vad.stop_ms`
        # the caller's silence lasted before we committed (EndOfTurn.silence_ms minus
        # stop_ms: the silence we wait for on purpose is not latency). Barge-in:
        # speech onset → decision.
        self.end_of_turn_latency_ms = SampleRing(sample_window, END_OF_TURN_BOUNDS_MS)
        self.barge_in_latency_ms = SampleRing(sample_window, BARGE_IN_BOUNDS_MS)
        self.tick_seconds = SampleRing(sample_window, TICK_BOUNDS_S)

    # -- calls -----------------------------------------------------------

    def add_call(self, sink: MediaSink, key: str = "") -> CallMedia:
        """Start media for a call; `key` names it in logs (e.g. the call SID)."""
        serial = next(self._keys)
        call = CallMedia(
            self,
            sink,
            self._vad.new_stream(),
            self._vad_settings,
            self._media_settings,
            self._clock,
            key or f"call-{serial}",
        )
        self._calls[id(call)] = call
        return call

    def remove_call(self, call: CallMedia) -> None:
        """Stop media for a call (idempotent); its pending audio is dropped."""
        call._closed = True
        self._calls.pop(id(call), None)

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def calls(self) -> tuple[CallMedia, ...]:
        return tuple(self._calls.values())

    @property
    def vad_engine(self) -> VadEngine:
        return self._vad

    # -- settings --------------------------------------------------------

    def update_settings(self, vad: VadSettings, media: MediaSettings) -> bool:
        """Hot reload into every live call. Returns True if `vad.engine` names
        another engine kind: the caller then builds one and `replace_vad_engine`s it."""
        self._vad_settings = vad
        self._media_settings = media
        self._vad.configure(vad.threshold, vad.min_volume)
        for call in self._calls.values():
            call._update_settings(vad, media)
        return vad.engine != self._vad.name

    def replace_vad_engine(self, vad_engine: VadEngine) -> None:
        """Swap the VAD engine; every call gets a fresh stream (≤ one tick of audio lost)."""
        vad_engine.configure(self._vad_settings.threshold, self._vad_settings.min_volume)
        self._vad = vad_engine
        for call in self._active:
            call._queued = False
        self._active.clear()
        for call in self._calls.values():
            call._set_stream(vad_engine.new_stream())
            call._pending = 0

    # -- the tick --------------------------------------------------------

    def tick(self, now_ms: float, frames_due: int = 1) -> None:
        """The media clock's callback: VAD batch, turn-taking, playout, for all calls."""
        started = time.perf_counter()
        self.ticks += 1
        active = self._active
        self._active = self._spare
        if active:
            for call in active:
                call._queued = False
                call._got_audio = True
            streams = [call._stream for call in active if not call._closed]
            active.clear()
            if streams:
                self.vad_batches += 1
                try:
                    self.vad_inferences += self._vad.process(streams)
                except Exception as exc:
                    self._vad_failed(exc, now_ms)
        for call in tuple(self._calls.values()):
            try:
                call._tick(now_ms, frames_due)
            except Exception as exc:
                self._call_failed(call, exc)
        self._spare = active
        self.tick_seconds.add(time.perf_counter() - started)

    # -- failures --------------------------------------------------------

    def _call_failed(self, call: CallMedia, exc: Exception) -> None:
        self.call_errors += 1
        self.remove_call(call)
        handler = self.on_call_error
        if handler is None:
            log.error("media of %s failed; call removed", call.key, exc_info=exc)
            return
        try:
            handler(call, exc)
        except Exception:
            log.exception("on_call_error failed for %s", call.key)

    def _vad_failed(self, exc: Exception, now_ms: float) -> None:
        """Playout goes on without VAD this tick (streams bound their own backlog)."""
        self.vad_errors += 1
        if now_ms - self._vad_error_logged_at >= _LOG_INTERVAL_MS:
            self._vad_error_logged_at = now_ms
            log.error(
                "VAD engine %s failed (%d so far)", self._vad.name, self.vad_errors, exc_info=exc
            )
