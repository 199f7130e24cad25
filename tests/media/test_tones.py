"""The beep detector on synthesized tones, real eSpeak speech, noise and DTMF."""

from __future__ import annotations

import numpy as np
import pytest

from agents.tts import synthesize_ulaw
from media.codecs import ulaw
from media.tones import Beep, ToneDetector
from tests.audio import frames, noise_pcm, silence_pcm, speech_pcm

FRAME = 320  # 20 ms of PCM16 at 8 kHz


def tone(hz: float, ms: int, db: float, *, second_hz: float | None = None) -> bytes:
    t = np.arange(8 * ms) / 8000.0
    amp = 32767 * 10 ** (db / 20)
    wave = np.sin(2 * np.pi * hz * t)
    if second_hz is not None:
        wave = 0.5 * (wave + np.sin(2 * np.pi * second_hz * t))
    return (amp * wave).astype("<i2").tobytes()


def mix(a: bytes, b: bytes) -> bytes:
    x = np.frombuffer(a, "<i2").astype(np.int32)
    y = np.frombuffer(b, "<i2").astype(np.int32)
    n = min(len(x), len(y))
    return np.clip(x[:n] + y[:n], -32768, 32767).astype("<i2").tobytes()


def beeps_in(pcm: bytes, **kw: float) -> list[Beep]:
    det = ToneDetector(**kw)  # type: ignore[arg-type]
    out = [b for f in frames(pcm, FRAME) if (b := det.feed(f)) is not None]
    out += [b for _ in range(3) if (b := det.feed(b"\0\0" * 160)) is not None]
    return out


@pytest.mark.parametrize("hz", [440, 850, 1000, 1400, 1950])
@pytest.mark.parametrize("db", [-6.0, -20.0, -35.0])
@pytest.mark.parametrize("ms", [100, 400, 1500])
def test_beeps_found_at_their_frequency_time_and_length(hz: int, db: float, ms: int) -> None:
    pcm = silence_pcm(500) + tone(hz, ms, db) + silence_pcm(300)
    pcm = mix(pcm, noise_pcm(len(pcm) // 16, amplitude=100))
    [beep] = beeps_in(pcm)
    assert abs(beep.frequency_hz - hz) < 8
    assert beep.start_ms == 500 and abs(beep.end_ms - (500 + ms)) <= 20
    assert abs(beep.level_db - (db - 3.0)) < 1.5  # RMS of a sine is 3 dB under its peak


def test_beep_after_a_spoken_greeting_and_in_line_noise() -> None:
    greeting = speech_pcm("You have reached Dana. Please leave a message after the tone.")
    pcm = greeting + silence_pcm(400) + tone(1000, 600, -18) + silence_pcm(500)
    pcm = mix(pcm, noise_pcm(len(pcm) // 16, amplitude=400))
    [beep] = beeps_in(pcm)
    start = (len(greeting) // 2 + 400 * 8) // 8
    assert abs(beep.start_ms - start) <= 20 and abs(beep.duration_ms - 600) <= 40


@pytest.mark.parametrize("text", [
    "Hi, you've reached the Johnson residence. We can't come to the phone right now.",
    "Hello? Hello? Is anybody there?",
    "Eeeeeeeee. Ooooooooo. Mmmmmmmmm. Aaaaaaah.",
    "Thank you for calling Riverside Dental, how can I help you today?",
    "He is not available right now, can I take a message for him?",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "Beep. Beeeeeeeep. Please hold.",
])
@pytest.mark.parametrize(("voice", "rate"), [("en-us", 165), ("en", 120), ("en-us+f3", 200)])
def test_no_beep_in_real_speech(text: str, voice: str, rate: int) -> None:
    pcm = ulaw.decode(synthesize_ulaw(text, voice=voice, rate=rate))
    assert len(pcm) > 16000  # real speech came out, at least a second of it
    assert beeps_in(pcm) == []


@pytest.mark.parametrize("amplitude", [100, 3000, 12000])
def test_no_beep_in_noise(amplitude: int) -> None:
    assert beeps_in(noise_pcm(4000, amplitude=amplitude, seed=amplitude)) == []


def test_not_a_beep_too_long_too_short_too_low_or_two_tones() -> None:
    assert beeps_in(silence_pcm(200) + tone(1000, 3000, -15) + silence_pcm(200)) == []
    assert beeps_in(silence_pcm(200) + tone(1000, 60, -15) + silence_pcm(200)) == []
    assert beeps_in(silence_pcm(200) + tone(300, 500, -15) + silence_pcm(200)) == []
    assert beeps_in(silence_pcm(200) + tone(2600, 500, -15) + silence_pcm(200)) == []
    # DTMF "5" (770 + 1336 Hz): a keypress, not a recorder's beep.
    assert beeps_in(silence_pcm(200) + tone(770, 300, -10, second_hz=1336) + silence_pcm(200)) == []


def test_quiet_tone_in_loud_noise_is_not_reported() -> None:
    pcm = mix(silence_pcm(300) + tone(1000, 500, -50) + silence_pcm(300),
              noise_pcm(1100, amplitude=3000))
    assert beeps_in(pcm) == []


def test_two_beeps_back_to_back_and_in_tone_flag() -> None:
    det = ToneDetector()
    pcm = tone(800, 200, -12) + silence_pcm(200) + tone(1200, 200, -12) + silence_pcm(200)
    seen = []
    during = False
    for f in frames(pcm, FRAME):
        b = det.feed(f)
        during = during or det.in_tone
        if b is not None:
            seen.append(round(b.frequency_hz, -2))
    assert seen == [800, 1200] and during and det.beeps == 2


def test_odd_frame_sizes_and_bad_bytes_do_not_crash() -> None:
    det = ToneDetector()
    for chunk in (b"", b"\x01", b"\x00" * 7, b"\xff" * 1001, tone(1000, 10, -10)):
        assert det.feed(chunk) is None
    pcm = silence_pcm(100) + tone(1000, 300, -12) + silence_pcm(200)
    beeps = [b for i in range(0, len(pcm), 480) if (b := det.feed(pcm[i:i + 480]))]
    assert len(beeps) == 1  # 30 ms chunks work as well as 20 ms ones
