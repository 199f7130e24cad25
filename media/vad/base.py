"""One interface for every VAD engine.

Per call there is a `VadStream` holding that call's unprocessed caller audio
(PCM16, 8 kHz) and model state. The process holds one engine; on each media
clock tick `VadEngine.process` consumes every complete window of every stream
it is given, in as few inferences as the engine allows (Silero: one batched
inference per window position across all calls). Frames below the energy gate
(`min_volume`) are decided as silence without inference.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence


class VadStream(abc.ABC):
    """A call's VAD state. `feed` is called per inbound frame; it only appends."""

    # Samples (8 kHz) per decision window of this engine.
    window_samples: int

    @abc.abstractmethod
    def feed(self, pcm16: bytes) -> None:
        """Append caller PCM16 (8 kHz mono, little endian); bounded, oldest dropped."""

    @abc.abstractmethod
    def take_decisions(self) -> list[tuple[int, bool, float]]:
        """Decisions made since the last call: (window_end_sample, is_speech, prob).

        `window_end_sample` counts samples since the stream began, so the turn
        machine can place each decision on the caller's audio timeline.
        """

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget buffered audio and model state."""


class BufferedStream(VadStream):
    """The bounded audio buffer and decision list every engine's stream shares.

    `_buf` holds undecided PCM16 (after `head_bytes` an engine may keep in
    front, e.g. Silero's context); overflow drops the oldest whole windows so
    the window grid stays aligned and the newest audio, the part a turn
    decision needs, survives. `_consumed` counts samples of the timeline
    before the current window, so decisions keep true positions across drops.
    """

    __slots__ = ("_buf", "_consumed", "_decisions", "_max_bytes", "dropped_windows")

    def __init__(self, max_buffer_samples: int, head_bytes: int = 0) -> None:
        self._buf = bytearray(head_bytes)
        self._max_bytes = head_bytes + max_buffer_samples * 2
        self._decisions: list[tuple[int, bool, float]] = []
        self._consumed = 0
        # Whole windows thrown away because the engine fell behind.
        self.dropped_windows = 0

    def feed(self, pcm16: bytes) -> None:
        if len(pcm16) & 1:
            raise ValueError("PCM16 must have an even number of bytes")
        buf = self._buf
        buf += pcm16
        if len(buf) > self._max_bytes:
            window_bytes = 2 * self.window_samples
            windows = -(-(len(buf) - self._max_bytes) // window_bytes)
            del buf[: windows * window_bytes]
            self._consumed += windows * self.window_samples
            self.dropped_windows += windows

    def take_decisions(self) -> list[tuple[int, bool, float]]:
        decisions = self._decisions
        if decisions:
            self._decisions = []
        else:
            decisions = []
        return decisions


class VadEngine(abc.ABC):
    name: str
    window_samples: int

    @abc.abstractmethod
    def new_stream(self) -> VadStream: ...

    @abc.abstractmethod
    def process(self, streams: Sequence[VadStream]) -> int:
        """Decide every complete window of `streams`; return inferences run."""

    @abc.abstractmethod
    def configure(self, threshold: float, min_volume: int) -> None:
        """Apply new settings to the engine and all its streams (hot reload)."""
