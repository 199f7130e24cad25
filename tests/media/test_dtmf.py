from __future__ import annotations

import numpy as np
import pytest

from media.codecs import ulaw
from media.dtmf import tones_ulaw


def _peaks(pcm: bytes) -> list[float]:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    top = np.argsort(spectrum)[::-1]
    found: list[float] = []
    for idx in top:
        if all(abs(freqs[idx] - f) > 40 for f in found):
            found.append(float(freqs[idx]))
        if len(found) == 2:
            break
    return sorted(found)


@pytest.mark.parametrize(("digit", "low", "high"),
                         [("1", 697, 1209), ("5", 770, 1336), ("#", 941, 1477), ("0", 941, 1336)])
def test_each_tone_has_the_two_dtmf_frequencies(digit, low, high):
    audio = tones_ulaw(digit, tone_ms=120, gap_ms=0)
    assert len(audio) == 960
    lo, hi = _peaks(ulaw.decode(audio))
    assert abs(lo - low) < 20 and abs(hi - high) < 20


def test_sequence_length_and_pause():
    assert len(tones_ulaw("12w", tone_ms=100, gap_ms=50)) == 2 * 1200 + 4000
    assert tones_ulaw("") == b""


def test_rejects_non_digits():
    with pytest.raises(ValueError, match="DTMF"):
        tones_ulaw("1x")
