"""Resampling keeps length, content and continuity, on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from media.resample import RATES, StreamResampler, resample
from tests.audio import noise_pcm, speech_pcm

PAIRS = [
    (8000, 16000),
    (8000, 48000),
    (48000, 8000),
    (16000, 24000),
    (24000, 8000),
    (22050, 8000),
    (8000, 24000),
]


@pytest.fixture(scope="module")
def speech() -> bytes:
    return speech_pcm()


def as_array(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_one_shot_length_follows_rate_ratio(speech: bytes, in_rate: int, out_rate: int) -> None:
    src = resample(speech, 8000, in_rate)
    out = resample(src, in_rate, out_rate)
    expected = len(src) // 2 * out_rate / in_rate
    assert abs(len(out) // 2 - expected) <= 1
    assert len(out) % 2 == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_streaming_matches_one_shot(speech: bytes, in_rate: int, out_rate: int) -> None:
    src = resample(speech, 8000, in_rate)
    one_shot = as_array(resample(src, in_rate, out_rate))
    stream = StreamResampler(in_rate, out_rate)
    chunk = in_rate // 50 * 2  # 20 ms frames, as a call delivers them
    parts = [stream.process(src[i : i + chunk]) for i in range(0, len(src), chunk)]
    parts.append(stream.process(b"", last=True))
    streamed = as_array(b"".join(parts))
    assert abs(len(streamed) - len(one_shot)) <= 1
    n = min(len(streamed), len(one_shot))
    # Same filter, same state carried across chunks: equal within rounding.
    assert np.max(np.abs(streamed[:n] - one_shot[:n])) <= 4


def test_speech_survives_8k_16k_8k(speech: bytes) -> None:
    original = as_array(speech)
    back = as_array(resample(resample(speech, 8000, 16000), 16000, 8000))
    assert len(back) == len(original)
    assert correlation(original, back) > 0.99
    # Energy kept: the filter is not eating the speech band.
    assert 0.9 < np.sqrt(np.mean(back**2)) / np.sqrt(np.mean(original**2)) < 1.1


def test_downsampling_removes_content_above_new_nyquist() -> None:
    # White noise at 48 kHz has most of its energy above 4 kHz; 48k → 8k must
    # filter it out rather than fold it back (what audioop.ratecv would do).
    noise = noise_pcm(1000, amplitude=8000)  # 8000 samples; treat them as 48 kHz
    down = as_array(resample(noise, 48000, 8000))
    kept = np.sqrt(np.mean(down**2)) / np.sqrt(np.mean(as_array(noise) ** 2))
    assert 0.25 < kept < 0.5  # ≈ sqrt(4/24) ≈ 0.41 for a flat spectrum


def test_same_rate_is_identity(speech: bytes) -> None:
    assert resample(speech, 8000, 8000) == speech
    stream = StreamResampler(16000, 16000)
    assert stream.process(speech) == speech


@pytest.mark.parametrize("bad", [0, -8000, 11025, 44100, 96000])
def test_bad_rate_is_rejected(bad: int) -> None:
    assert bad not in RATES
    with pytest.raises(ValueError):
        resample(b"\x00\x00" * 10, bad, 8000)
    with pytest.raises(ValueError):
        resample(b"\x00\x00" * 10, 8000, bad)
    with pytest.raises(ValueError):
        StreamResampler(bad, 8000)
    with pytest.raises(ValueError):
        StreamResampler(8000, bad)


def test_empty_input() -> None:
    assert resample(b"", 8000, 16000) == b""
    assert StreamResampler(8000, 16000).process(b"", last=True) == b""
