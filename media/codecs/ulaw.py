"""G.711 μ-law ↔ PCM16 (8 kHz mono, little endian).

audioop is C and does a 20 ms frame in well under a microsecond; on Python
≥ 3.13 the same module comes from the `audioop-lts` package.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES = FRAME_SAMPLES  # one byte per μ-law sample
# μ-law of PCM 0: what a silent frame is made of.
SILENCE_BYTE = 0xFF
SILENT_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES


def decode(ulaw: bytes) -> bytes:
    """μ-law bytes → PCM16 bytes (twice as long)."""
    return audioop.ulaw2lin(ulaw, 2)


def encode(pcm16: bytes) -> bytes:
    """PCM16 bytes → μ-law bytes (half as long). A trailing odd byte is dropped."""
    if len(pcm16) & 1:
        pcm16 = pcm16[:-1]
    return audioop.lin2ulaw(pcm16, 2)


def rms(pcm16: bytes) -> int:
    """Root mean square of PCM16 samples (the energy gate's measure)."""
    return audioop.rms(pcm16, 2)
