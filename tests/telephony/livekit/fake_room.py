"""A LiveKit room at the SDK seam: the `RoomPort` the leg uses, played like the real one.

The agent's frames go into a queue that plays out in real time, the way
`rtc.AudioSource` does it (its `queued_duration` is the same sum: audio captured minus
time elapsed), with `capture_frame` waiting when more than `queue_ms` is queued and
`clear_queue` discarding what has not played. What was played is kept with its start
time, so tests can check the pacing and hear exactly what the callee heard. The callee
side speaks 48 kHz frames in real time, changes its `sip.callStatus`, presses keys,
and the room can drop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from telephony.livekit.room import RoomEvents

RATE = 48000


class FakeRoom:
    def __init__(self, *, queue_ms: int = 400, clock: Callable[[], float] = time.monotonic,
                 answered: bool = True) -> None:
        self.queue_ms = queue_ms
        self.clock = clock
        self.answered = answered
        self.events: RoomEvents | None = None
        self.connected = asyncio.Event()
        self.disconnected = False
        # (start time, pcm16 bytes) of every frame played or playing.
        self.played: list[tuple[float, bytes]] = []
        self.captures: list[float] = []  # when each capture_frame was called
        self.discarded_ms = 0.0
        self.clears = 0
        self.dtmf_sent: list[tuple[int, str]] = []
        self.block_capture = False
        self.fail_capture = False
        self._end = 0.0

    # -- RoomPort --------------------------------------------------------------

    async def connect(self, events: RoomEvents) -> None:
        self.events = events
        self.connected.set()
        events.on_call_status("active" if self.answered else "dialing")

    async def capture_frame(self, pcm16: bytes, samples: int) -> None:
        assert len(pcm16) == samples * 2, (len(pcm16), samples)
        if self.fail_capture:
            raise RuntimeError("capture failed: source closed")
        if self.block_capture:
            await asyncio.Event().wait()
        now = self.clock()
        self.captures.append(now)
        start = max(now, self._end)
        self._end = start + samples / RATE
        self.played.append((start, pcm16))
        excess = self._end - now - self.queue_ms / 1000
        if excess > 0:
            await asyncio.sleep(excess)

    def queued_ms(self) -> float:
        return max(0.0, self._end - self.clock()) * 1000

    def clear_queue(self) -> None:
        now = self.clock()
        self.clears += 1
        kept: list[tuple[float, bytes]] = []
        for start, pcm in self.played:
            if start >= now:
                self.discarded_ms += len(pcm) / 2 / RATE * 1000
                continue
            end = start + len(pcm) / 2 / RATE
            if end > now:  # playing right now: cut where it is
                keep = int((now - start) * RATE)
                self.discarded_ms += (len(pcm) // 2 - keep) / RATE * 1000
                pcm = pcm[: keep * 2]
            kept.append((start, pcm))
        self.played = kept
        self._end = min(self._end, now)

    async def publish_dtmf(self, code: int, digit: str) -> None:
        self.dtmf_sent.append((code, digit))

    async def disconnect(self) -> None:
        self.disconnected = True

    # -- what the callee heard -------------------------------------------------

    def heard_pcm(self) -> bytes:
        """The agent audio played up to now (48 kHz PCM16), silence gaps left out."""
        now = self.clock()
        out = bytearray()
        for start, pcm in self.played:
            if start >= now:
                break
            upto = min(len(pcm) // 2, int((now - start) * RATE + 0.5))
            out += pcm[: upto * 2]
        return bytes(out)

    def heard_ms(self) -> float:
        return len(self.heard_pcm()) / 2 / RATE * 1000

    # -- the callee's side -----------------------------------------------------

    async def say(self, pcm48: bytes, frame_samples: int = 480) -> None:
        """Speak 48 kHz PCM16 into the room in real time, `frame_samples` per frame."""
        assert self.events is not None
        step = frame_samples * 2
        period = frame_samples / RATE
        started = time.monotonic()
        for n, i in enumerate(range(0, len(pcm48) - step + 1, step)):
            delay = started + n * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.events.on_audio(pcm48[i : i + step], RATE, 1, frame_samples)

    async def silence(self, ms: int) -> None:
        await self.say(np.zeros(RATE * ms // 1000, dtype=np.int16).tobytes())

    def set_status(self, status: str) -> None:
        assert self.events is not None
        self.events.on_call_status(status)

    def drop(self, reason: str = "SIGNAL_CLOSE") -> None:
        assert self.events is not None
        self.events.on_disconnected(reason)
