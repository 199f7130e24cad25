"""Call recording: real speech on both sides, real files, the shared writer thread."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs import ulaw
from media.recording import FLUSH_SAMPLES, CallRecorder, RecordingWriter, TrackAligner
from tests.audio import frames, speech_ulaw

CALLER = "Hi, I need someone to look at a leaking pipe under my kitchen sink."
AGENT = "Of course. We have a plumber free tomorrow morning at nine."


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data[0::2], data[1::2]


def pcm(ulaw_audio: bytes) -> np.ndarray:
    return np.frombuffer(ulaw.decode(ulaw_audio), dtype="<i2")


async def test_both_sides_land_on_their_channel_sample_exact(tmp_path: Path) -> None:
    caller = frames(speech_ulaw(CALLER), 160)
    agent = frames(speech_ulaw(AGENT), 160)
    n = min(len(caller), len(agent))
    rec = CallRecorder(str(tmp_path / "call.wav"))
    for i in range(n):
        rec.caller(caller[i])
        rec.agent(agent[i])
        rec.tick()
    await rec.aclose()
    left, right = read_stereo(tmp_path / "call.wav")
    assert len(left) == n * 160
    assert np.array_equal(left, pcm(b"".join(caller[:n])))
    assert np.array_equal(right, pcm(b"".join(agent[:n])))
    assert rec.errors == 0


async def test_a_silent_side_is_padded_so_turns_keep_their_time(tmp_path: Path) -> None:
    """Caller talks, then the agent answers: nobody sends audio while listening."""
    caller = frames(speech_ulaw(CALLER), 160)
    agent = frames(speech_ulaw(AGENT), 160)
    rec = CallRecorder(str(tmp_path / "sub" / "dir" / "call.wav"))  # directory created
    for frame in caller:
        rec.caller(frame)
        rec.tick()
    for _ in range(25):  # half a second where neither side sends anything
        rec.tick()
    for frame in agent:
        rec.agent(frame)
        rec.tick()
    await rec.aclose()
    left, right = read_stereo(tmp_path / "sub" / "dir" / "call.wav")
    a, g = len(caller) * 160, len(agent) * 160
    assert len(left) == a + 25 * 160 + g
    assert np.array_equal(left[:a], pcm(b"".join(caller)))
    assert not left[a:].any()
    assert not right[: a + 4000].any()
    assert np.array_equal(right[a + 4000 :], pcm(b"".join(agent)))
    # Real speech, so each channel carries energy only in its own turn.
    assert np.abs(left[:a].astype(np.int32)).mean() > 300
    assert np.abs(right[a + 4000 :].astype(np.int32)).mean() > 300


async def test_a_burst_is_not_split_by_padding(tmp_path: Path) -> None:
    caller = frames(speech_ulaw(CALLER), 160)[:20]
    rec = CallRecorder(str(tmp_path / "burst.wav"))
    for i in range(0, 20, 2):  # two frames arrive, then a tick with none
        rec.caller(caller[i])
        rec.caller(caller[i + 1])
        rec.tick()
        rec.tick()
    await rec.aclose()
    left, right = read_stereo(tmp_path / "burst.wav")
    assert np.array_equal(left, pcm(b"".join(caller)))
    assert len(right) == len(left)


async def test_audio_reaches_disk_every_second_before_the_end(tmp_path: Path) -> None:
    writer = RecordingWriter()
    path = tmp_path / "long.wav"
    rec = CallRecorder(str(path), writer=writer)
    speech = frames(speech_ulaw(CALLER), 160)
    for i in range(3 * 50 + 10):  # 3.2 s
        rec.caller(speech[i % len(speech)])
        rec.tick()
    assert writer.drain(timeout=10)
    with wave.open(str(path), "rb") as wav:  # the header is kept current
        assert wav.getnframes() == 3 * FLUSH_SAMPLES
    await rec.aclose()
    with wave.open(str(path), "rb") as wav:
        assert wav.getnframes() == 160 * 160


async def test_unwritable_directory_is_counted_and_the_call_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = CallRecorder(str(blocker / "call.wav"))
    speech = frames(speech_ulaw(CALLER), 160)
    for frame in speech:
        rec.caller(frame)
        rec.agent(frame)
        rec.tick()
    await rec.aclose()
    assert rec.errors == 1
    assert rec.done.done()
    rec.caller(speech[0])
    rec.tick()
    rec.close()


async def test_a_writer_over_budget_drops_and_counts_but_finalises(tmp_path: Path) -> None:
    rec = CallRecorder(str(tmp_path / "drop.wav"), writer=RecordingWriter(max_pending_bytes=0))
    speech = frames(speech_ulaw(CALLER), 160)
    for i in range(120):
        rec.caller(speech[i % len(speech)])
        rec.tick()
    await rec.aclose()
    assert rec.errors == 3  # two full seconds and the final 0.4 s
    with wave.open(str(tmp_path / "drop.wav"), "rb") as wav:
        assert wav.getnchannels() == 2
        assert wav.getnframes() == 0


async def test_close_is_idempotent_and_ignores_late_frames(tmp_path: Path) -> None:
    rec = CallRecorder(str(tmp_path / "c.wav"))
    frame = speech_ulaw(CALLER)[4000:4160]
    rec.caller(frame)
    rec.tick()
    await rec.aclose()
    rec.caller(frame)
    rec.agent(frame)
    rec.tick()
    rec.close()
    await rec.aclose()
    left, right = read_stereo(tmp_path / "c.wav")
    assert np.array_equal(left, pcm(frame))
    assert not right.any()


def test_a_stalled_clock_bounds_the_buffer() -> None:
    aligner = TrackAligner(max_track_samples=800)
    frame = speech_ulaw(CALLER)[4000:4160]
    for _ in range(10):
        aligner.caller(frame)
    assert aligner.dropped_frames == 5
    caller, agent = aligner.take(final=True)
    assert len(caller) == len(agent) == 800


# -- the aligner, fuzzed -------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.just(("tick", 0)),
        st.tuples(st.just("caller"), st.integers(1, 3)),
        st.tuples(st.just("agent"), st.integers(1, 3)),
        st.just(("take", 0)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops)
def test_aligner_keeps_order_length_and_never_moves_audio_earlier(ops) -> None:
    aligner = TrackAligner()
    out = {"caller": bytearray(), "agent": bytearray()}
    sent = {"caller": bytearray(), "agent": bytearray()}
    # (track, frame index, timeline at arrival) for every frame pushed.
    arrivals: list[tuple[str, int, int]] = []
    ticks = 0
    serial = 0

    def take(final: bool) -> None:
        chunk = aligner.take(final)
        if chunk is not None:
            assert len(chunk[0]) == len(chunk[1])
            out["caller"] += chunk[0]
            out["agent"] += chunk[1]

    for op, count in ops:
        if op == "tick":
            ticks += 1
            aligner.tick()
        elif op == "take":
            take(False)
        else:
            for _ in range(count):
                # Frames made of one byte that is never μ-law silence (0xFF).
                frame = bytes([serial % 255]) * 160
                arrivals.append((op, serial, ticks * 160))
                serial += 1
                sent[op] += frame
                getattr(aligner, op)(frame)
    take(True)
    assert len(out["caller"]) == len(out["agent"]) >= ticks * 160
    for track in ("caller", "agent"):
        data = bytes(out[track])
        # Padding only adds silence: the track's own audio is all there, in order.
        assert data.replace(b"\xff", b"") == bytes(sent[track])
        positions = {}
        pos = 0
        while pos < len(data):
            if data[pos] != 0xFF:
                positions.setdefault(data[pos], pos)
                pos += 160
            else:
                pos += 1
        for name, index, timeline in arrivals:
            if name == track:
                assert positions[index % 255] >= timeline or index >= 255
