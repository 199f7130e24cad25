"""DTMF tones as μ-law audio, for navigating phone trees from inside a call.

A `<Connect><Stream>` call cannot ask Twilio to send RFC 2833 digits without
leaving the stream, but in-band tones work on every carrier: the agent plays
them like speech, through the same paced playout.
"""

from __future__ import annotations

import numpy as np

from media.codecs import ulaw

_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
DIGITS = frozenset(_FREQS)


def tones_ulaw(digits: str, tone_ms: int = 120, gap_ms: int = 80, level: float = 0.3) -> bytes:
    """The tones for `digits` ('w' = 500 ms pause), 8 kHz μ-law; ValueError on others."""
    rate = ulaw.SAMPLE_RATE
    t = np.arange(rate * tone_ms // 1000) / rate
    gap = np.zeros(rate * gap_ms // 1000)
    parts: list[np.ndarray] = []
    for digit in digits.upper():
        if digit == "W":
            parts.append(np.zeros(rate // 2))
            continue
        if digit not in _FREQS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        low, high = _FREQS[digit]
        parts.append(level * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)) / 2)
        parts.append(gap)
    if not parts:
        return b""
    pcm = (np.concatenate(parts) * 32767).astype("<i2").tobytes()
    return ulaw.encode(pcm)
