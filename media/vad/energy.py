"""The energy gate in front of every VAD engine, and the tuning checks they share.

A phone line is silent most of the time (the caller listens while the agent
speaks), so the cheapest inference is the one not run: a window whose RMS is
below `min_volume` is decided silence (prob 0.0) by one C call, and neither
the model nor its state sees it. Both engines share this so that "quiet"
means the same thing whichever engine ops picks.
"""

from __future__ import annotations

from media.codecs.ulaw import rms

MAX_VOLUME = 32767
# A window as the engines hand it over: usually a memoryview into a stream buffer.
Pcm = bytes | bytearray | memoryview


def check_tuning(threshold: float, min_volume: int) -> None:
    """Reject settings no engine can honour, before any stream sees them."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
    if not 0 <= min_volume <= MAX_VOLUME:
        raise ValueError(f"min_volume must be between 0 and {MAX_VOLUME}, got {min_volume!r}")


class EnergyGate:
    """RMS gate with a counter of the windows it spared the model."""

    __slots__ = ("gated", "min_volume")

    def __init__(self, min_volume: int) -> None:
        check_tuning(0.5, min_volume)
        self.min_volume = min_volume
        # Windows decided silent without inference, since the engine began.
        self.gated = 0

    def quiet(self, window: Pcm) -> bool:
        """True if `window` (PCM16) is below the gate; counts it."""
        if rms(window) < self.min_volume:  # type: ignore[arg-type]
            self.gated += 1
            return True
        return False
