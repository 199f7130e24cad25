"""The fake callee's DTMF ear, against our own in-band tones (media.dtmf) and speech."""

from __future__ import annotations

from media.codecs import ulaw
from media.dtmf import tones_ulaw
from ops.dev.fake_twilio import DtmfEar
from tests.audio import speech_ulaw


def heard(audio: bytes) -> list[str]:
    ear = DtmfEar()
    out = []
    for i in range(0, len(audio) - ulaw.FRAME_BYTES + 1, ulaw.FRAME_BYTES):
        digit = ear.frame(audio[i:i + ulaw.FRAME_BYTES])
        if digit:
            out.append(digit)
    return out


def test_hears_every_digit_once() -> None:
    assert heard(tones_ulaw("0123456789*#")) == list("0123456789*#")
    assert heard(tones_ulaw("22")) == ["2", "2"]


def test_speech_and_silence_are_not_digits() -> None:
    assert heard(speech_ulaw("Thank you for calling, for the front desk press two.")) == []
    assert heard(ulaw.SILENT_FRAME * 50) == []
