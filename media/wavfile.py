"""Reading caller audio from WAV files (sim, tests) as 8 kHz μ-law."""

from __future__ import annotations

import wave

import numpy as np

from media.codecs import ulaw
from media.resample import RATES, resample


class WavError(ValueError):
    pass


def read_ulaw(path: str) -> bytes:
    """A PCM16 WAV (mono or stereo, any supported rate) as 8 kHz mono μ-law."""
    try:
        with wave.open(path, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise WavError(f"{path}: cannot read WAV: {exc}") from None
    if width != 2:
        raise WavError(f"{path}: need 16-bit PCM, got {8 * width}-bit")
    if rate not in RATES:
        raise WavError(f"{path}: unsupported sample rate {rate}; use one of {RATES}")
    if channels > 1:
        samples = np.frombuffer(data, dtype=np.int16).reshape(-1, channels)
        data = samples.mean(axis=1).astype(np.int16).tobytes()
    return ulaw.encode(resample(data, rate, ulaw.SAMPLE_RATE))
