"""The leg's audio edge: the room's 48 kHz PCM16 ⇄ the engine's 8 kHz μ-law.

The media engine, the VAD and the brain all work on 20 ms frames of 8 kHz μ-law
(what Twilio carries), so a LiveKit leg converts at its edge and nothing behind it
knows the room runs at 48 kHz. Both directions use PyAV's swresample, which keeps its
filter state across calls and hands out a steady amount per chunk after a fixed delay
of well under a millisecond (a soxr stream hands audio out in bursts of several
frames, which would break the 20 ms pacing). 8 → 48 kHz is an exact factor of six,
so every 20 ms μ-law frame becomes one 960-sample frame once the delay is filled.

Frames from the room are checked before they touch the resampler: the wrong rate,
the wrong channel count, a byte length that does not match the sample count, or an
absurd size raise `BadFrame` with the reason, and the leg counts and drops them.
"""

from __future__ import annotations

import av

from media.codecs import ulaw

ROOM_RATE = 48000
ROOM_FRAME_SAMPLES = ROOM_RATE * ulaw.FRAME_MS // 1000  # 960
# Largest frame accepted from the room (the SDK hands out 10 ms frames by default).
MAX_ROOM_FRAME_MS = 100


class BadFrame(ValueError):
    """A frame from the room that cannot be used; `reason` is short and stable (a label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class _Resampler:
    """One direction of stateful conversion, PCM16 mono bytes in and out.

    Input frames are reused per size (the room and the engine each send one or two
    sizes), so the per-frame cost is the copy into the frame and swresample itself.
    """

    __slots__ = ("_av", "_frames", "in_rate")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self._av = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
        self._frames: dict[int, av.AudioFrame] = {}

    def _frame(self, samples: int) -> av.AudioFrame:
        frame = self._frames.get(samples)
        if frame is None:
            if len(self._frames) >= 8:  # bounded: a peer changing sizes all the time
                self._frames.clear()
            frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
            frame.sample_rate = self.in_rate
            self._frames[samples] = frame
        return frame

    def process(self, pcm16: bytes) -> bytes:
        frame = self._frame(len(pcm16) // 2)
        frame.planes[0].update(pcm16)
        frame.pts = None
        out = b""
        for converted in self._av.resample(frame):
            out += bytes(converted.planes[0])[: converted.samples * 2]
        return out


class Downlink:
    """Callee audio: room frames of any length at 48 kHz → 20 ms μ-law frames."""

    __slots__ = ("_buf", "_resampler", "frames", "rate")

    def __init__(self, rate: int = ROOM_RATE) -> None:
        self.rate = rate
        self._resampler = _Resampler(rate, ulaw.SAMPLE_RATE)
        self._buf = bytearray()
        self.frames = 0

    def check(self, data: bytes | memoryview, sample_rate: int, channels: int,
              samples: int) -> None:
        """Raise `BadFrame` unless this is a usable mono frame at our rate."""
        if sample_rate != self.rate:
            raise BadFrame("wrong_rate", f"{sample_rate} Hz, expected {self.rate}")
        if channels != 1:
            raise BadFrame("wrong_channels", f"{channels} channels, expected 1")
        if not 0 < samples <= self.rate * MAX_ROOM_FRAME_MS // 1000:
            raise BadFrame("wrong_size", f"{samples} samples per frame")
        if len(data) != samples * channels * 2:
            raise BadFrame("wrong_size", f"{len(data)} bytes for {samples} samples")

    def push(self, data: bytes | memoryview, sample_rate: int, channels: int,
             samples: int) -> list[bytes]:
        """The complete 8 kHz μ-law frames this room frame finishes (often one, or none)."""
        self.check(data, sample_rate, channels, samples)
        buf = self._buf
        buf += self._resampler.process(bytes(data))
        out: list[bytes] = []
        step = ulaw.FRAME_SAMPLES * 2
        while len(buf) >= step:
            out.append(ulaw.encode(bytes(buf[:step])))
            del buf[:step]
        self.frames += len(out)
        return out


class Uplink:
    """Agent audio: 20 ms μ-law frames → 48 kHz PCM16 for the room's AudioSource."""

    __slots__ = ("_resampler",)

    def __init__(self, rate: int = ROOM_RATE) -> None:
        self._resampler = _Resampler(ulaw.SAMPLE_RATE, rate)

    def push(self, ulaw_frame: bytes) -> bytes:
        """PCM16 at the room rate; 960 samples per frame once the filter delay is filled."""
        return self._resampler.process(ulaw.decode(ulaw_frame))
