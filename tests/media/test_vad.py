"""Both VAD engines on real speech, silence and line noise; batching; bounds; tuning."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.settings import VadSettings
from media.vad import VadEngine, VadStream, make_engine
from media.vad.energy import EnergyGate
from media.vad.silero import SileroStream, SileroVad, new_session
from media.vad.webrtc import WebRtcStream, WebRtcVad, aggressiveness
from tests.audio import frames, noise_pcm, silence_pcm, speech_pcm

FRAME = 320  # 20 ms of 8 kHz PCM16, as the call feeds it
TEXTS = [
    "Hello, I would like to book an appointment for Tuesday.",
    "No thanks, please call me back later.",
    "What time do you open on Saturday?",
    "Yes.",
    "My name is Maria and my number is five five five, one two three four.",
]
Decision = tuple[int, bool, float]


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return new_session()


@pytest.fixture(scope="module")
def speech() -> bytes:
    return speech_pcm(TEXTS[0])


@pytest.fixture(scope="module")
def utterances() -> list[bytes]:
    return [speech_pcm(t) for t in TEXTS]


EngineFactory = Callable[..., VadEngine]


@pytest.fixture(params=["webrtc", "silero"])
def make(request: pytest.FixtureRequest, session: ort.InferenceSession) -> EngineFactory:
    if request.param == "silero":
        return lambda **kw: SileroVad(session=session, **kw)
    return lambda **kw: WebRtcVad(**kw)


def run(engine: VadEngine, pcm: bytes, stream: VadStream | None = None) -> list[Decision]:
    """Feed 20 ms frames and tick the engine after each, as the media clock does."""
    stream = stream or engine.new_stream()
    for frame in frames(pcm, FRAME):
        stream.feed(frame)
        engine.process([stream])
    return stream.take_decisions()


def speech_share(decisions: list[Decision]) -> float:
    return sum(d[1] for d in decisions) / len(decisions)


# --- what the engines hear ---------------------------------------------------


def test_speech_is_mostly_speech(make: EngineFactory, speech: bytes) -> None:
    engine = make()
    decisions = run(engine, speech)
    assert len(decisions) == len(speech) // 2 // engine.window_samples
    assert speech_share(decisions) > 0.5
    assert engine.inferences > 0


def test_silence_is_silence_without_inference(make: EngineFactory) -> None:
    engine = make()
    decisions = run(engine, silence_pcm(2000))
    assert decisions and not any(d[1] for d in decisions)
    assert all(d[2] == 0.0 for d in decisions)
    assert engine.inferences == 0
    assert engine.gate.gated == len(decisions)


def test_line_noise_is_not_speech(make: EngineFactory) -> None:
    noise = noise_pcm(2000, amplitude=300)
    engine = make()
    decisions = run(engine, noise)
    # Above the energy gate, so the model itself has to say no.
    assert engine.inferences > 0
    assert speech_share(decisions) <= 0.1


def test_energy_gate_spares_the_model(make: EngineFactory, speech: bytes) -> None:
    engine = make(min_volume=32767)
    decisions = run(engine, speech)
    assert engine.inferences == 0
    assert not any(d[1] for d in decisions)
    assert engine.gate.gated == len(decisions) > 0


def test_window_positions_follow_the_timeline(make: EngineFactory, speech: bytes) -> None:
    engine = make()
    audio = silence_pcm(300) + speech + noise_pcm(300)
    decisions = run(engine, audio)
    w = engine.window_samples
    assert [d[0] for d in decisions] == [w * (i + 1) for i in range(len(decisions))]
    assert all(0.0 <= d[2] <= 1.0 for d in decisions)


def test_silero_follows_the_model_contract(session: ort.InferenceSession, speech: bytes) -> None:
    # The 8 kHz contract run by hand: 256-sample windows, the previous
    # window's last 32 samples prepended, recurrent state carried over.
    samples = np.frombuffer(speech, dtype=np.int16).astype(np.float32) / 32768.0
    context = np.zeros(32, dtype=np.float32)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    want = []
    for start in range(0, len(samples) - 255, 256):
        window = samples[start : start + 256]
        row = np.concatenate([context, window])[None, :]
        out, state = session.run(
            None, {"input": row, "state": state, "sr": np.array(8000, dtype=np.int64)}
        )
        want.append(float(out[0, 0]))
        context = window[-32:]
    got = run(SileroVad(session=session, min_volume=0), speech)
    assert len(got) == len(want)
    assert max(abs(g[2] - w) for g, w in zip(got, want, strict=True)) < 1e-5


# --- batching -----------------------------------------------------------------


def test_batched_equals_one_by_one(session: ort.InferenceSession, utterances: list[bytes]) -> None:
    # Streams start at different moments (phases) and carry different speech.
    audio = [
        silence_pcm(20 * i) + noise_pcm(100 * i, seed=i) + u + noise_pcm(200, seed=9)
        for i, u in enumerate(utterances * 3)
    ]
    audio = [a[: len(a) // FRAME * FRAME] for a in audio]

    alone = SileroVad(session=session)
    expected = [run(alone, a) for a in audio]

    batched = SileroVad(session=session)
    streams = [batched.new_stream() for _ in audio]
    for offset in range(0, max(map(len, audio)), FRAME):
        for stream, a in zip(streams, audio, strict=True):
            if offset < len(a):
                stream.feed(a[offset : offset + FRAME])
        batched.process(streams)
    got = [s.take_decisions() for s in streams]

    for want, have in zip(expected, got, strict=True):
        assert [d[:2] for d in have] == [d[:2] for d in want]
        assert max(abs(h[2] - w[2]) for h, w in zip(have, want, strict=True)) < 1e-4
    assert batched.batch_items == alone.batch_items
    assert batched.inferences < alone.inferences / 5
    assert batched.largest_batch > 5
    assert batched.inference_seconds > 0.0


def test_backlog_is_drained_in_batched_rounds(
    session: ort.InferenceSession, utterances: list[bytes]
) -> None:
    engine = SileroVad(session=session, max_buffer_samples=80_000)
    streams = [engine.new_stream() for _ in utterances]
    for stream, u in zip(streams, utterances, strict=True):
        stream.feed(u)
    ran = engine.process(streams)
    longest = max(len(u) for u in utterances) // 2 // engine.window_samples
    assert ran == engine.inferences <= longest  # one inference per window position
    assert all(s.pending_samples < engine.window_samples for s in streams)
    alone = SileroVad(session=session, max_buffer_samples=80_000)
    for stream, u in zip(streams, utterances, strict=True):
        single = alone.new_stream()
        single.feed(u)
        alone.process([single])
        got, want = stream.take_decisions(), single.take_decisions()
        assert [d[:2] for d in got] == [d[:2] for d in want]
        assert max(abs(g[2] - w[2]) for g, w in zip(got, want, strict=True)) < 1e-4


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=30),
    ticks=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_chunking_does_not_change_decisions(
    make: EngineFactory, speech: bytes, cuts: list[int], ticks: list[bool]
) -> None:
    audio = speech[:16000]  # 1 s
    reference = make(max_buffer_samples=8000)
    stream = reference.new_stream()
    stream.feed(audio)
    reference.process([stream])
    want = stream.take_decisions()

    engine = make(max_buffer_samples=8000)
    stream = engine.new_stream()
    got: list[Decision] = []
    offset = 0
    for cut, tick in zip(cuts, ticks, strict=False):
        size = 2 * cut
        stream.feed(audio[offset : offset + size])
        offset += size
        if tick:
            engine.process([stream])
            got += stream.take_decisions()
    stream.feed(audio[offset:])
    engine.process([stream])
    got += stream.take_decisions()
    assert [d[:2] for d in got] == [d[:2] for d in want]
    assert all(abs(g[2] - w[2]) < 1e-4 for g, w in zip(got, want, strict=True))


# --- tuning -------------------------------------------------------------------


def test_configure_changes_silero_threshold_live(
    session: ort.InferenceSession, speech: bytes
) -> None:
    plain = SileroVad(session=session)
    want = run(plain, speech)

    engine = SileroVad(session=session, threshold=0.5)
    stream = engine.new_stream()
    half = len(speech) // 2 // FRAME * FRAME
    first = run(engine, speech[:half], stream)
    engine.configure(threshold=0.999, min_volume=120)
    second = run(engine, speech[half:], stream)

    got = first + second
    assert [round(d[2], 4) for d in got] == [round(d[2], 4) for d in want]
    assert all(d[1] == (d[2] >= 0.5) for d in first)
    assert all(d[1] == (d[2] >= 0.999) for d in second)
    assert speech_share(second) < speech_share(want[len(first) :])


def test_configure_changes_webrtc_aggressiveness_live(speech: bytes) -> None:
    audio = noise_pcm(1000, amplitude=600) + speech + noise_pcm(1000, amplitude=600, seed=3)
    fresh = WebRtcVad(threshold=0.9)
    want = run(fresh, audio)
    engine = WebRtcVad(threshold=0.1)
    stream = engine.new_stream()  # made at mode 1
    engine.configure(threshold=0.9, min_volume=120)
    assert run(engine, audio, stream) == want
    lenient = run(WebRtcVad(threshold=0.1), audio)
    assert sum(d[1] for d in lenient) > sum(d[1] for d in want)


def test_configure_min_volume_live(make: EngineFactory, speech: bytes) -> None:
    engine = make()
    stream = engine.new_stream()
    run(engine, speech, stream)
    before = engine.inferences
    assert before > 0
    engine.configure(threshold=0.5, min_volume=32767)
    decisions = run(engine, speech, stream)
    assert engine.inferences == before
    assert not any(d[1] for d in decisions)


@pytest.mark.parametrize(
    ("threshold", "min_volume"), [(0.0, 100), (1.0, 100), (-0.5, 100), (0.5, -1), (0.5, 40000)]
)
def test_bad_tuning_is_rejected(make: EngineFactory, threshold: float, min_volume: int) -> None:
    with pytest.raises(ValueError):
        make(threshold=threshold, min_volume=min_volume)
    engine = make(threshold=0.3, min_volume=50)
    with pytest.raises(ValueError):
        engine.configure(threshold, min_volume)
    assert engine.threshold == 0.3 and engine.gate.min_volume == 50


@pytest.mark.parametrize(
    ("threshold", "mode"),
    [(0.01, 1), (0.34, 1), (0.35, 2), (0.5, 2), (0.64, 2), (0.65, 3), (0.99, 3)],
)
def test_aggressiveness_mapping(threshold: float, mode: int) -> None:
    assert aggressiveness(threshold) == mode
    assert WebRtcVad(threshold=threshold).mode == mode


# --- bounds and bad input -----------------------------------------------------


def test_buffer_bound_drops_oldest_whole_windows(make: EngineFactory, speech: bytes) -> None:
    engine = make(max_buffer_samples=1000)
    w = engine.window_samples
    stream = engine.new_stream()
    fed = 0
    for frame in frames(speech, FRAME):  # 3 s fed, never processed
        stream.feed(frame)
        fed += FRAME // 2
        assert stream.pending_samples <= 1000
    dropped = stream.dropped_windows
    assert dropped > 0
    assert dropped * w + stream.pending_samples == fed
    engine.process([stream])
    decisions = stream.take_decisions()
    assert len(decisions) == (fed - dropped * w) // w
    # Positions continue the timeline past the dropped audio.
    assert decisions[0][0] == (dropped + 1) * w
    assert decisions[-1][0] == (dropped + len(decisions)) * w


def test_one_huge_feed_stays_bounded(make: EngineFactory) -> None:
    engine = make(max_buffer_samples=2000)
    stream = engine.new_stream()
    stream.feed(noise_pcm(3000))  # 24000 samples at once
    assert stream.pending_samples <= 2000
    assert stream.dropped_windows * engine.window_samples + stream.pending_samples == 24000


def test_bound_below_one_window_is_rejected(make: EngineFactory) -> None:
    with pytest.raises(ValueError):
        make(max_buffer_samples=100)


def test_odd_length_feed_is_rejected(make: EngineFactory) -> None:
    stream = make().new_stream()
    with pytest.raises(ValueError):
        stream.feed(b"\x00\x01\x02")
    assert stream.pending_samples == 0


def test_foreign_stream_is_rejected(session: ort.InferenceSession) -> None:
    silero, webrtc = SileroVad(session=session), WebRtcVad()
    with pytest.raises(TypeError):
        silero.process([webrtc.new_stream()])
    with pytest.raises(TypeError):
        webrtc.process([silero.new_stream()])


def test_take_decisions_hands_each_decision_once(make: EngineFactory, speech: bytes) -> None:
    engine = make()
    stream = engine.new_stream()
    first = run(engine, speech, stream)
    assert first
    assert stream.take_decisions() == []
    assert engine.process([]) == 0


def test_reset_forgets_audio_and_state(make: EngineFactory, speech: bytes) -> None:
    engine = make()
    stream = engine.new_stream()
    run(engine, speech, stream)
    stream.feed(speech[:1000])  # 500 samples left pending
    assert stream.pending_samples > 0
    fed = len(speech) // FRAME * FRAME // 2 + 500
    stream.reset()
    assert stream.pending_samples == 0
    assert stream.take_decisions() == []
    again = run(engine, speech, stream)
    fresh = run(engine, speech)
    # Same probabilities as a fresh stream, shifted along the timeline.
    assert [d[1:] for d in again] == [d[1:] for d in fresh]
    # Reset forgets the pending audio but not that it was heard.
    assert again[0][0] - fresh[0][0] == fed


# --- factory --------------------------------------------------------------------


def test_make_engine_builds_the_configured_engine() -> None:
    silero = make_engine(VadSettings(engine="silero", threshold=0.7, min_volume=200))
    assert isinstance(silero, SileroVad)
    assert (silero.name, silero.window_samples, silero.threshold) == ("silero", 256, 0.7)
    assert isinstance(silero.new_stream(), SileroStream)
    webrtc = make_engine(VadSettings(engine="webrtc", threshold=0.7), max_buffer_samples=4000)
    assert isinstance(webrtc, WebRtcVad)
    assert (webrtc.name, webrtc.window_samples, webrtc.mode) == ("webrtc", 160, 3)
    assert webrtc.max_buffer_samples == 4000
    assert isinstance(webrtc.new_stream(), WebRtcStream)
    assert webrtc.gate.min_volume == 120


def test_make_engine_rejects_unknown_engine() -> None:
    # msgspec checks the Literal when decoding the config file; this guards
    # settings built in code.
    with pytest.raises(ValueError):
        make_engine(VadSettings(engine="nope"))  # type: ignore[arg-type]


def test_energy_gate_counts_only_quiet_windows() -> None:
    gate = EnergyGate(min_volume=100)
    assert gate.quiet(silence_pcm(20))
    assert not gate.quiet(noise_pcm(20, amplitude=1000))
    assert gate.gated == 1
    assert not EnergyGate(min_volume=0).quiet(silence_pcm(20))


def test_gated_silence_after_speech_does_not_leak_into_noise(
    session: ort.InferenceSession, speech: bytes
) -> None:
    """A pause the model never saw must not leave it 'hearing' speech in the next noise."""
    engine = SileroVad(session=session)
    stream = engine.new_stream()
    run(engine, speech, stream)
    run(engine, silence_pcm(500), stream)  # all gated: no inference
    decisions = run(engine, noise_pcm(600, amplitude=300), stream)
    assert engine.inferences > 0
    # Without a reset the first ~320 ms of noise came out as speech: a false barge-in.
    assert sum(d[1] for d in decisions[:10]) <= 1
