"""A LiveKit room as a `telephony.call.Leg`: the agent plays its own audio and knows
how much of it was heard.

The media engine drives this leg exactly like the Twilio one: on each 20 ms tick of the
shared media clock it hands over the frames due (and checkpoints between them), so the
pacing is the engine's. The leg converts each μ-law frame to 48 kHz and captures it into
the room's `AudioSource`, whose queue plays it out in real time. There are no marks to
echo: the leg knows what was handed to the source and how much of that is still
queued, so "played" is captured minus queued, and each checkpoint `(item_id, ms)` is
reported through `Call.played` once the audio before it has played. A clear (barge-in)
drops what was not captured yet, empties the source's queue, and forgets the
checkpoints behind it: the playout has already cut the item at the last one reported,
so the truncation the brain gets is never more than the callee heard.

One writer task per call does the captures (the tick never awaits), and wakes between
frames only to report a checkpoint when it comes due, never per frame. What arrives
is bounded: at most `MAX_PENDING` frames wait for the source; a room that stops taking
audio ends its own call ("slow room"), no other.

Inbound, the callee's 48 kHz frames go through the downlink to 20 ms μ-law frames for
`Call.caller_audio`; unusable frames (wrong rate, channels, size) are counted by reason
and dropped, logged once per reason per call. The callee's `sip.callStatus` attribute
moves the leg's state: `active` is answered, `hangup` (or the callee leaving, or the room
disconnecting) is the end of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from media.codecs import ulaw
from telephony.livekit.audio import BadFrame, Downlink, Uplink
from telephony.livekit.room import RoomPort

log = logging.getLogger("leadline.livekit")

# Frames waiting for the AudioSource (2 s): the engine sends ~lead_frames ahead, so
# a backlog this deep means the room stopped taking audio.
MAX_PENDING = 100
FRAME_MS = ulaw.FRAME_MS
# RFC 4733 event codes of the DTMF digits (what `publish_dtmf` sends as `code`).
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
              "A": 12, "B": 13, "C": 14, "D": 15}
# sip.callStatus values (LiveKit SIP participant attributes) and what they mean here.
ANSWERED_STATUSES = frozenset({"active"})
# A hang-up waits this long at most for queued agent audio to play out.
DRAIN_LIMIT_S = 2.0
# Hang-ups caused by the room itself: nothing more will play, so no wait.
_IMMEDIATE = frozenset({"slow room", "room audio failed"})
ENDED_STATUSES = frozenset({"hangup"})


class CallSide(Protocol):
    """The parts of `telephony.call.Call` the leg calls back into."""

    def caller_audio(self, ulaw: bytes) -> None: ...
    def caller_dtmf(self, digit: str) -> None: ...
    def played(self, item_id: str, ms: int) -> None: ...


class LegStats:
    """Plain counters, read at scrape time."""

    __slots__ = ("bad_frames", "capture_errors", "checkpoints", "cleared", "frames_in",
                 "frames_out", "overflows")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.checkpoints = 0
        self.cleared = 0
        self.overflows = 0
        self.capture_errors = 0
        self.bad_frames: dict[str, int] = {}


class LiveKitLeg:
    """One call's room, as a carrier-neutral leg. `start` after the room connected."""

    def __init__(self, port: RoomPort, *, on_hang_up: Callable[[str], None] | None = None,
                 on_state: Callable[[str], None] | None = None) -> None:
        self.port = port
        self.call: CallSide | None = None
        self._on_hang_up = on_hang_up
        self._on_state = on_state
        self.uplink = Uplink()
        self.downlink = Downlink()
        self.stats = LegStats()
        # μ-law frames handed over by the engine, not yet captured.
        self._pending: deque[bytes] = deque()
        # (position in sent ms, item_id, ms): reported when played reaches the position.
        self._checkpoints: deque[tuple[int, str, int]] = deque()
        self._sent_ms = 0  # agent audio handed to the leg
        self._captured_ms = 0  # of it, handed to the AudioSource
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self.state = "dialing"
        self.end_reason = ""
        self.ended = asyncio.Event()
        self._logged: set[str] = set()
        self._closing = False

    # -- life ------------------------------------------------------------------

    def start(self, call: CallSide) -> None:
        self.call = call
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write(),
                                                                  name="livekit-writer")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
            self._writer = None

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.state = "ended"
            self.end_reason = reason
            self.ended.set()
            if self._on_state is not None:
                self._on_state("ended")

    # -- Leg (engine → room) -----------------------------------------------------

    def send_media(self, ulaw_frame: bytes) -> bool:
        if self._closing:
            return False
        if len(self._pending) >= MAX_PENDING:
            self.stats.overflows += 1
            self.hang_up("slow room")
            return False
        self._pending.append(ulaw_frame)
        self._sent_ms += FRAME_MS
        self._wake.set()
        return True

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        self._checkpoints.append((self._sent_ms, item_id, ms))
        self._wake.set()
        return True

    def send_clear(self) -> bool:
        """Barge-in: nothing more of what was queued is played, or counted as played."""
        self.stats.cleared += 1
        queued = self.port.queued_ms()
        self._pending.clear()
        self._checkpoints.clear()
        self.port.clear_queue()
        # What the source still held was discarded, never heard.
        self._captured_ms = max(0, self._captured_ms - int(queued + 0.999))
        self._sent_ms = self._captured_ms
        self.uplink = Uplink()  # no tail of the cut audio ahead of the next item
        self._wake.set()
        return True

    def flush(self) -> None:
        """Writes happen in the writer task; a tick's frames are already waking it."""

    def hang_up(self, reason: str) -> None:
        """End the call once what was handed over has played (the agent's goodbye is
        heard to its end: the source still holds up to its queue of it), at most
        `DRAIN_LIMIT_S` later; at once when the room itself is the trouble."""
        if self._closing:
            return
        self._closing = True
        log.info("livekit leg hanging up", extra={"reason": reason})
        if reason in _IMMEDIATE or not (self._pending or self.port.queued_ms() > 0):
            self._hung_up(reason)
        else:
            asyncio.get_running_loop().create_task(self._drain_then_hang_up(reason))

    async def _drain_then_hang_up(self, reason: str) -> None:
        deadline = asyncio.get_running_loop().time() + DRAIN_LIMIT_S
        while (self._pending or self.port.queued_ms() > 0) and not self.ended.is_set():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(max(0.005, min(0.1, self.port.queued_ms() / 1000)))
        self._hung_up(reason)

    def _hung_up(self, reason: str) -> None:
        if self._on_hang_up is not None:
            self._on_hang_up(reason)
        self._end(reason)

    def send_dtmf(self, digits: str) -> bool:
        """Out-of-band DTMF (RFC 4733 through LiveKit SIP), one digit after the other."""
        codes = []
        for digit in digits.upper():
            if digit not in DTMF_CODES:
                log.warning("bad DTMF digit dropped", extra={"digit": digit[:4]})
                return False
            codes.append((DTMF_CODES[digit], digit))
        asyncio.get_running_loop().create_task(self._dtmf(codes))
        return True

    async def _dtmf(self, codes: list[tuple[int, str]]) -> None:
        for code, digit in codes:
            try:
                await self.port.publish_dtmf(code, digit)
            except Exception as exc:
                log.warning("DTMF not sent", extra={"digit": digit, "error": repr(exc)[:200]})
                return

    # -- playback position ---------------------------------------------------------

    @property
    def played_ms(self) -> int:
        """Agent audio the callee has heard, in ms of the leg's timeline.

        Counted in 20 ms μ-law frames captured, so it runs ahead of the room by the
        uplink resampler's delay (2 ms): the last checkpoint of an item is reached
        when its audio has played, not 2 ms after, when more audio pushes the tail out.
        """
        return max(0, self._captured_ms - int(self.port.queued_ms() + 0.999))

    def _report(self) -> None:
        checkpoints = self._checkpoints
        if not checkpoints or self.call is None:
            return
        played = self.played_ms
        while checkpoints and checkpoints[0][0] <= played:
            _, item_id, ms = checkpoints.popleft()
            self.stats.checkpoints += 1
            self.call.played(item_id, ms)

    async def _write(self) -> None:
        pending = self._pending
        while True:
            while pending:
                frame = pending.popleft()
                pcm = self.uplink.push(frame)
                if pcm:
                    try:
                        await self.port.capture_frame(pcm, len(pcm) // 2)
                    except Exception as exc:
                        self.stats.capture_errors += 1
                        log.warning("livekit capture failed",
                                    extra={"error": repr(exc)[:200]})
                        self.hang_up("room audio failed")
                        return
                self._captured_ms += FRAME_MS
                self.stats.frames_out += 1
                self._report()
            if self._checkpoints and self._timer is None:
                # One timer at a time, for when the first checkpoint will have played;
                # new audio wakes the task sooner.
                wait_s = max(0.001, (self._checkpoints[0][0] - self.played_ms) / 1000.0)
                self._timer = asyncio.get_running_loop().call_later(wait_s, self._timer_fired)
            await self._wake.wait()
            self._wake.clear()
            self._report()

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake.set()

    # -- RoomEvents (room → call) ----------------------------------------------------

    def on_audio(self, data: bytes | memoryview, sample_rate: int, channels: int,
                 samples: int) -> None:
        try:
            frames = self.downlink.push(data, sample_rate, channels, samples)
        except BadFrame as exc:
            bad = self.stats.bad_frames
            bad[exc.reason] = bad.get(exc.reason, 0) + 1
            if exc.reason not in self._logged:
                self._logged.add(exc.reason)
                log.warning("unusable frame from the room dropped", extra={"error": str(exc)})
            return
        call = self.call
        if call is None:
            return
        for frame in frames:
            self.stats.frames_in += 1
            call.caller_audio(frame)

    def on_dtmf(self, digit: str) -> None:
        if self.call is not None and len(digit) == 1 and digit.upper() in DTMF_CODES:
            self.call.caller_dtmf(digit.upper())

    def on_call_status(self, status: str) -> None:
        if status in ANSWERED_STATUSES and self.state == "dialing":
            self.state = "answered"
            if self._on_state is not None:
                self._on_state("answered")
        elif status in ENDED_STATUSES:
            self._closing = True
            self._end("callee hung up")
        # dialing, ringing, automation: not answered yet, nothing to do

    def on_disconnected(self, reason: str) -> None:
        self._closing = True
        self._end(f"room disconnected: {reason}"[:200])
