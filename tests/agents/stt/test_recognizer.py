"""The keyless recognizer on real eSpeak speech through 8 kHz μ-law (asserts on key words:
the recognizer is imperfect by nature, BENCHMARKS.md has its error rates)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.nlu.triage import triage
from agents.stt import recognizer as rec
from agents.stt.recognizer import (
    RecognizerBusy,
    SphinxPool,
    corpus_lines,
    decode_turn,
    prepare_pcm,
)
from agents.tts import synthesize_pcm
from media.codecs import ulaw
from media.resample import resample
from tests.audio import noise_pcm, speech_ulaw

PAUSE = ulaw.SILENT_FRAME * 25
PHRASES = Path(__file__).with_name("phrases.tsv")


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_pocketsphinx_is_installed_and_available() -> None:
    # The default `[scripted] stt` follows this; the project depends on the wheel.
    assert rec.available() is True


PRIORS = ("Hello there.", "Okay.", "Press nine.")


def renders(text: str) -> list[bytes]:
    """`text` three times, each right after another sentence: eSpeak's intonation
    depends on what it said before, so one rendering is one sample, not the phrase."""
    out = []
    for prior in PRIORS:
        synthesize_pcm(prior)
        pcm, rate = synthesize_pcm(text)
        out.append(PAUSE + ulaw.encode(resample(pcm, rate, ulaw.SAMPLE_RATE)) + PAUSE)
    return out


@pytest.mark.parametrize(("said", "key"), [
    ("We have no hot water since this morning.", {"hot", "water"}),
    ("What are your hours on Saturday?", {"saturday"}),
    ("I can smell gas near the water heater.", {"water", "heater"}),
    ("I think there is a gas leak in the basement.", {"gas", "leak"}),
])
def test_key_words_survive_ulaw_and_recognition(said: str, key: set[str]) -> None:
    heard = [decode_turn(audio) for audio in renders(said)]
    assert sum(key <= words(h.text) for h in heard) >= 2, heard
    for h, audio in zip(heard, renders(said), strict=True):
        assert 0.0 <= h.confidence <= 1.0 and h.cpu_s > 0
        assert h.audio_s == pytest.approx(len(audio) / 8000, abs=0.5)


def test_a_gas_turn_still_triages_urgent_after_recognition() -> None:
    heard = [decode_turn(a) for a in renders("I think there is a gas leak in the basement.")]
    results = [triage(h.text, industry="plumbing") for h in heard]
    assert sum(r.priority == "URGENT" and r.life_safety for r in results) >= 2, heard


def test_silence_and_line_noise_are_not_decoded() -> None:
    assert decode_turn(ulaw.SILENT_FRAME * 100).text == ""
    assert decode_turn(b"").text == ""
    hiss = ulaw.encode(noise_pcm(2000, amplitude=150))
    assert prepare_pcm(hiss) == b""
    heard = decode_turn(hiss)
    assert (heard.text, heard.confidence, heard.audio_s) == ("", 0.0, 2.0)


def test_prepare_trims_the_pauses_and_upsamples_to_16k() -> None:
    speech = speech_ulaw("Hello there.")
    pcm = prepare_pcm(ulaw.SILENT_FRAME * 200 + speech + ulaw.SILENT_FRAME * 200)
    samples = len(pcm) // 2
    # 4 s of silence around the words is cut to the pads; the rate doubles.
    assert 2 * len(speech) * 0.6 < samples < 2 * (len(speech) + 2 * rec.PAD_MS * 8)
    assert np.abs(np.frombuffer(pcm, np.int16)).max() > rec.SPEECH_RMS


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=4000))
def test_any_bytes_are_a_turn(data: bytes) -> None:
    heard = decode_turn(data)
    assert isinstance(heard.text, str) and 0.0 <= heard.confidence <= 1.0


def test_benchmark_phrases_are_not_in_the_training_corpus() -> None:
    corpus = set(corpus_lines())
    norm = [" ".join(re.findall(r"[a-z']+", line.split("\t", 1)[1].lower()))
            for line in PHRASES.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    assert len(norm) == 40
    assert not [p for p in norm if p in corpus]


async def test_pool_decodes_off_the_loop_and_refuses_when_full() -> None:
    pool = SphinxPool(workers=1, max_pending=2)
    try:
        await pool.warm_up()
        audio = PAUSE + speech_ulaw("Stop calling this number.") + PAUSE
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        first, second = pool.recognize(audio), pool.recognize(audio)
        results = await asyncio.gather(first, second)
        task.cancel()
        assert all("calling" in r.text for r in results)
        assert ticks > 5  # the loop kept running while the decoder worked
        # Two turns waiting is the bound: a third is refused at once, not queued.
        waiting = [asyncio.ensure_future(pool.recognize(audio)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(RecognizerBusy):
            await pool.recognize(audio)
        await asyncio.gather(*waiting)
        assert pool.pending == 0
    finally:
        pool.shutdown()


def test_pool_workers_are_bounded() -> None:
    with pytest.raises(ValueError):
        SphinxPool(workers=0)
    assert rec.shared_pool(1) is rec.shared_pool(1)


def test_workers_run_at_the_lowest_priority(tmp_path) -> None:
    """A decode must never take the CPU from the media clock of the server's calls."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from agents.stt.recognizer import _worker_init

    with ProcessPoolExecutor(1, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
        assert pool.submit(os.nice, 0).result(timeout=60) == 19
