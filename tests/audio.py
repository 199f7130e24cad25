"""Real audio for tests: eSpeak NG speech, silence and noise as 8 kHz μ-law/PCM16."""

from __future__ import annotations

import random

from agents.tts import synthesize_ulaw
from media.codecs import ulaw


def speech_ulaw(text: str = "Hello, I would like to book an appointment for Tuesday.") -> bytes:
    return synthesize_ulaw(text)


def speech_pcm(text: str = "Hello, I would like to book an appointment for Tuesday.") -> bytes:
    return ulaw.decode(speech_ulaw(text))


def silence_pcm(ms: int) -> bytes:
    return b"\x00\x00" * (8 * ms)


def noise_pcm(ms: int, amplitude: int = 300, seed: int = 7) -> bytes:
    """Low-level white noise (a quiet room / line hiss)."""
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(8 * ms):
        out += rng.randint(-amplitude, amplitude).to_bytes(2, "little", signed=True)
    return bytes(out)


def frames(data: bytes, frame_bytes: int) -> list[bytes]:
    """Split into whole frames; a short tail is dropped."""
    return [data[i : i + frame_bytes] for i in range(0, len(data) - frame_bytes + 1, frame_bytes)]
