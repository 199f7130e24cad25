"""WebRTC VAD (the GMM from libwebrtc): no model file, a few µs per 20 ms frame.

It is the default engine because it is cheap enough to never need batching:
`process` walks every stream's complete 20 ms windows and asks that stream's
own detector (libwebrtc keeps per-instance history, so one per call). It gives
a yes/no, never a probability, so `threshold` picks its aggressiveness instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import webrtcvad

from media.vad.base import BufferedStream, VadEngine, VadStream
from media.vad.energy import EnergyGate, check_tuning

SAMPLE_RATE = 8000
WINDOW_SAMPLES = 160  # 20 ms: one Twilio frame, one decision
WINDOW_BYTES = WINDOW_SAMPLES * 2
DEFAULT_MAX_BUFFER_SAMPLES = SAMPLE_RATE  # 1 s


def aggressiveness(threshold: float) -> int:
    """Map the engine-neutral threshold onto libwebrtc's modes 1..3.

    Mode 0 is left out: it calls line hiss speech, which on a phone line
    means an agent that never gets a silence to answer into.
    """
    if threshold < 0.35:
        return 1
    if threshold < 0.65:
        return 2
    return 3


class WebRtcStream(BufferedStream):
    """One call's pending audio (bounded) and its libwebrtc detector."""

    window_samples = WINDOW_SAMPLES

    __slots__ = ("_mode", "_vad")

    def __init__(self, mode: int, max_buffer_samples: int) -> None:
        super().__init__(max_buffer_samples)
        self._vad = webrtcvad.Vad(mode)
        self._mode = mode

    def reset(self) -> None:
        # Buffered audio is forgotten, not unheard: the timeline moves past it.
        self._consumed += len(self._buf) // 2
        self._buf.clear()
        self._decisions.clear()
        self._vad = webrtcvad.Vad(self._mode)

    @property
    def pending_samples(self) -> int:
        """Samples fed but not yet decided."""
        return len(self._buf) // 2


class WebRtcVad(VadEngine):
    """The process's WebRTC engine; streams pick up `configure` on their next window."""

    name = "webrtc"
    window_samples = WINDOW_SAMPLES

    def __init__(
        self,
        threshold: float = 0.5,
        min_volume: int = 120,
        max_buffer_samples: int = DEFAULT_MAX_BUFFER_SAMPLES,
    ) -> None:
        check_tuning(threshold, min_volume)
        if max_buffer_samples < WINDOW_SAMPLES:
            raise ValueError(f"max_buffer_samples must be at least {WINDOW_SAMPLES}")
        self.threshold = threshold
        self.mode = aggressiveness(threshold)
        self.max_buffer_samples = max_buffer_samples
        self.gate = EnergyGate(min_volume)
        # Frames the detector actually ran on (gated frames excluded).
        self.inferences = 0

    def new_stream(self) -> WebRtcStream:
        return WebRtcStream(self.mode, self.max_buffer_samples)

    def configure(self, threshold: float, min_volume: int) -> None:
        check_tuning(threshold, min_volume)
        self.threshold = threshold
        self.mode = aggressiveness(threshold)
        self.gate.min_volume = min_volume

    def process(self, streams: Sequence[VadStream]) -> int:
        mode = self.mode
        quiet = self.gate.quiet
        ran = 0
        for stream in streams:
            if not isinstance(stream, WebRtcStream):
                raise TypeError("WebRtcVad can only process its own streams")
            buf = stream._buf
            end = len(buf) - WINDOW_BYTES
            if end < 0:
                continue
            vad = stream._vad
            if stream._mode != mode:
                vad.set_mode(mode)
                stream._mode = mode
            decisions = stream._decisions
            position = stream._consumed
            offset = 0
            # One view per stream per tick; released before the buffer shrinks.
            with memoryview(buf) as view:
                while offset <= end:
                    window = view[offset : offset + WINDOW_BYTES]
                    position += WINDOW_SAMPLES
                    if quiet(window):
                        decisions.append((position, False, 0.0))
                    else:
                        speech = vad.is_speech(window, SAMPLE_RATE, WINDOW_SAMPLES)
                        decisions.append((position, speech, 1.0 if speech else 0.0))
                        ran += 1
                    window.release()
                    offset += WINDOW_BYTES
            del buf[:offset]
            stream._consumed = position
        self.inferences += ran
        return ran
