"""MediaEngine end to end with real speech, a deterministic fake VAD and a fake sink."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from media.codecs import ulaw
from media.codecs.ulaw import FRAME_BYTES, SILENT_FRAME
from media.engine import CallMedia, MediaEngine
from media.settings import MediaSettings, VadSettings
from media.turns import EndOfTurn, TurnState
from media.vad.base import VadEngine, VadStream
from tests.audio import frames, speech_ulaw

VAD = VadSettings(start_ms=60, stop_ms=500, barge_in_ms=100, min_volume=200)
MEDIA = MediaSettings(mark_interval_ms=100, lead_frames=2, send_chunk_frames=1)


class FakeStream(VadStream):
    window_samples = 160

    def __init__(self) -> None:
        self.buf = bytearray()
        self.samples = 0
        self.decisions: list[tuple[int, bool, float]] = []

    def feed(self, pcm16: bytes) -> None:
        self.buf += pcm16
        excess = len(self.buf) - 16_000
        if excess > 0:
            excess += excess % 2
            del self.buf[:excess]
            self.samples += excess // 2

    def take_decisions(self) -> list[tuple[int, bool, float]]:
        out, self.decisions = self.decisions, []
        return out

    def reset(self) -> None:
        self.buf.clear()
        self.decisions.clear()


class FakeVad(VadEngine):
    """Speech iff the window's RMS exceeds min_volume: deterministic, no model."""

    window_samples = 160

    def __init__(self, name: str = "webrtc") -> None:
        self.name = name
        self.min_volume = 0
        self.configured: list[tuple[float, int]] = []
        self.batches: list[int] = []
        self.fail = False

    def new_stream(self) -> FakeStream:
        return FakeStream()

    def process(self, streams: Sequence[VadStream]) -> int:
        if self.fail:
            raise RuntimeError("inference failed")
        self.batches.append(len(streams))
        n = 0
        for stream in streams:
            assert isinstance(stream, FakeStream)
            while len(stream.buf) >= 320:
                window = bytes(stream.buf[:320])
                del stream.buf[:320]
                stream.samples += 160
                speech = ulaw.rms(window) > self.min_volume
                stream.decisions.append((stream.samples, speech, 1.0 if speech else 0.0))
                n += 1
        return n

    def configure(self, threshold: float, min_volume: int) -> None:
        self.min_volume = min_volume
        self.configured.append((threshold, min_volume))


class FakeSink:
    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[tuple] = []
        self.fail_on = fail_on

    def _record(self, *event: object) -> None:
        if event[0] == self.fail_on:
            raise ConnectionError(f"{event[0]} failed")
        self.events.append(event)

    def send_media(self, frame: bytes) -> None:
        self._record("media", frame)

    def send_checkpoint(self, item_id: str, ms: int) -> None:
        self._record("mark", (item_id, ms))

    def send_clear(self) -> None:
        self._record("clear")

    def speech_started(self) -> None:
        self._record("speech_started")

    def end_of_turn(self, info: EndOfTurn) -> None:
        self._record("end_of_turn", info)

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        self._record("barge_in", item_id, heard_ms)

    def playout_idle(self) -> None:
        self._record("idle")

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


class Rig:
    """An engine on virtual time: each step is one inbound frame per call and one tick."""

    def __init__(self, vad: VadSettings = VAD, media: MediaSettings = MEDIA) -> None:
        self.now = 0.0
        self.vad = FakeVad()
        self.errors: list[tuple[CallMedia, Exception]] = []
        self.engine = MediaEngine(
            self.vad,
            vad,
            media,
            clock_now=lambda: self.now,
            on_call_error=lambda call, exc: self.errors.append((call, exc)),
        )

    def step(self, inbound: dict[CallMedia, bytes | None] | None = None, ticks: int = 1) -> None:
        for _ in range(ticks):
            for call, frame in (inbound or {}).items():
                if frame is not None:
                    call.receive(frame)
            self.now += 20.0
            self.engine.tick(self.now, 1)


@pytest.fixture(scope="module")
def caller_speech() -> list[bytes]:
    return frames(
        speech_ulaw("Hello, I would like to book an appointment for Tuesday."), FRAME_BYTES
    )


@pytest.fixture(scope="module")
def agent_speech() -> bytes:
    return speech_ulaw("Thanks for calling, how can I help you today?")


def first_loud(fs: list[bytes]) -> int:
    return next(i for i, f in enumerate(fs) if ulaw.rms(ulaw.decode(f)) > VAD.min_volume)


def test_speech_then_silence_ends_the_turn_once(caller_speech: list[bytes]) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink, "CA1")
    for frame in caller_speech + [SILENT_FRAME] * 60:
        rig.step({call: frame})
    assert sink.kinds() == ["speech_started", "end_of_turn"]
    info = sink.of("end_of_turn")[0][1]
    assert info.silence_ms == pytest.approx(500.0)
    assert info.speech_ms > 1500
    assert rig.engine.end_of_turns == 1 and call.stats.end_of_turns == 1
    assert rig.engine.frames_in == len(caller_speech) + 60 == call.stats.frames_in
    assert rig.engine.vad_batches == len(caller_speech) + 60
    assert len(rig.engine.end_of_turn_latency_ms) == 1
    assert len(rig.engine.tick_seconds) == rig.engine.ticks


def test_turn_ends_when_twilio_skips_the_silent_chunks(caller_speech: list[bytes]) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    for frame in caller_speech:
        rig.step({call: frame})
    assert sink.kinds() == ["speech_started"]
    rig.step(ticks=40)  # no audio at all
    assert sink.kinds() == ["speech_started", "end_of_turn"]


def test_agent_audio_is_paced_one_frame_per_tick_with_marks(agent_speech: bytes) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    call.agent_audio("resp_1", agent_speech)
    call.agent_done("resp_1")
    rig.step()
    assert sink.kinds() == ["media"] * 3
    for n in range(4, 12):
        rig.step({call: SILENT_FRAME})
        assert len(sink.of("media")) == n
    assert sink.events[5] == ("mark", ("resp_1", 100))
    assert call.turns.state is TurnState.AGENT_SPEAKING
    n_frames = -(-len(agent_speech) // FRAME_BYTES)
    rig.step(ticks=n_frames)
    media = [e[1] for e in sink.of("media")]
    assert len(media) == n_frames == rig.engine.frames_out == call.stats.frames_out
    assert b"".join(media)[: len(agent_speech)] == agent_speech
    marks = [e[1] for e in sink.of("mark")]
    assert marks[-1] == ("resp_1", len(agent_speech) // 8)
    rig.step(ticks=5)
    assert call.turns.state is TurnState.LISTENING  # playout ran dry
    assert "idle" not in sink.kinds()
    for checkpoint in marks:
        call.played(*checkpoint)
    assert sink.kinds()[-1] == "idle"
    assert rig.engine.underruns == 0


def test_caller_speech_over_the_agent_clears_and_reports_what_was_heard(
    caller_speech: list[bytes], agent_speech: bytes
) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    call.agent_audio("resp_1", agent_speech)
    rig.step({call: SILENT_FRAME}, ticks=20)
    marks = [e[1] for e in sink.of("mark")]
    assert marks[:2] == [("resp_1", 100), ("resp_1", 200)]
    call.played("resp_1", 100)
    call.played("resp_1", 200)
    start = first_loud(caller_speech)
    for frame in caller_speech[start : start + 15]:
        rig.step({call: frame})
        if "barge_in" in sink.kinds():
            break
    kinds = sink.kinds()
    at = kinds.index("clear")
    assert kinds[at : at + 2] == ["clear", "barge_in"]
    assert sink.events[at + 1] == ("barge_in", "resp_1", 200)
    assert rig.engine.barge_ins == 1 and call.stats.barge_ins == 1
    assert rig.engine.barge_in_latency_ms.values()[0] >= VAD.barge_in_ms
    assert call.turns.state is TurnState.CALLER_SPEAKING
    # Flushed marks and late audio of the cancelled response change nothing.
    call.played("resp_1", 300)
    call.agent_audio("resp_1", agent_speech[:1600])
    n_media = len(sink.of("media"))
    rig.step({call: SILENT_FRAME}, ticks=30)
    assert len(sink.of("media")) == n_media
    assert sink.kinds()[-1] == "end_of_turn"


def test_a_cough_over_the_agent_does_not_interrupt(
    caller_speech: list[bytes], agent_speech: bytes
) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    call.agent_audio("resp_1", agent_speech)
    rig.step({call: SILENT_FRAME}, ticks=10)
    start = first_loud(caller_speech)
    cough = caller_speech[start : start + 3]  # 60 ms of voice
    for frame in cough + [SILENT_FRAME] * 20 + cough + [SILENT_FRAME] * 20:
        rig.step({call: frame})
    assert "clear" not in sink.kinds() and "barge_in" not in sink.kinds()
    assert "speech_started" not in sink.kinds()
    assert call.turns.state is TurnState.AGENT_SPEAKING


def test_interrupt_from_the_brain(agent_speech: bytes) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    assert call.interrupt() is False
    call.agent_audio("resp_1", agent_speech)
    rig.step(ticks=8)
    call.played("resp_1", 100)
    assert call.interrupt() is True
    assert sink.kinds()[-3:] == ["clear", "barge_in", "idle"]
    assert sink.events[-2] == ("barge_in", "resp_1", 100)
    assert call.interrupt() is False


def test_a_failing_sink_takes_down_only_its_own_call(agent_speech: bytes) -> None:
    rig = Rig()
    bad_sink, good_sink = FakeSink(fail_on="media"), FakeSink()
    bad = rig.engine.add_call(bad_sink, "bad")
    good = rig.engine.add_call(good_sink, "good")
    for call in (bad, good):
        call.agent_audio("r", agent_speech)
    rig.step({bad: SILENT_FRAME, good: SILENT_FRAME}, ticks=5)
    assert [(c.key, type(e)) for c, e in rig.errors] == [("bad", ConnectionError)]
    assert rig.engine.call_errors == 1 and bad.closed and len(rig.engine) == 1
    assert len(good_sink.of("media")) == 7
    bad.receive(SILENT_FRAME)  # a closed call's late frames are dropped, not fed
    rig.step({good: SILENT_FRAME}, ticks=5)
    assert len(good_sink.of("media")) == 12


def test_vad_runs_once_per_tick_for_all_calls_with_audio() -> None:
    rig = Rig()
    calls = [rig.engine.add_call(FakeSink()) for _ in range(5)]
    rig.step({c: SILENT_FRAME for c in calls[:3]}, ticks=4)
    rig.step()  # nobody sent audio: no inference at all
    assert rig.vad.batches == [3, 3, 3, 3]
    rig.engine.remove_call(calls[0])
    rig.engine.remove_call(calls[0])
    rig.step({c: SILENT_FRAME for c in calls[:3]})
    assert rig.vad.batches[-1] == 2


def test_vad_failure_does_not_stop_playout(agent_speech: bytes) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    call.agent_audio("r", agent_speech)
    rig.vad.fail = True
    rig.step({call: SILENT_FRAME}, ticks=3)
    assert rig.engine.vad_errors == 3
    assert len(sink.of("media")) == 5


def test_inbound_audio_is_bounded_between_ticks() -> None:
    rig = Rig(media=MediaSettings(max_inbound_ms=100))
    call = rig.engine.add_call(FakeSink())
    for _ in range(8):
        call.receive(SILENT_FRAME)
    call.receive(b"")
    assert call.stats.frames_in == 0  # counted at the tick
    assert call.stats.frames_dropped_in == 3 == rig.engine.frames_dropped_in
    rig.step()
    assert call.stats.frames_in == 5 == rig.engine.frames_in
    call.receive(SILENT_FRAME)  # room again after the tick
    assert call.stats.frames_dropped_in == 3


def test_update_settings_reaches_live_calls_and_engine_swap(caller_speech: list[bytes]) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    for frame in caller_speech:
        rig.step({call: frame})
    rig.step(ticks=12)  # 240 ms of silence so far
    assert not rig.engine.update_settings(
        VadSettings(stop_ms=200, min_volume=300), MediaSettings(mark_interval_ms=200)
    )
    assert rig.vad.configured[-1] == (0.5, 300)
    assert call.turns.settings.stop_ms == 200
    rig.step()
    assert sink.kinds() == ["speech_started", "end_of_turn"]

    assert rig.engine.update_settings(VadSettings(engine="silero"), MEDIA) is True
    new_vad = FakeVad("silero")
    rig.engine.replace_vad_engine(new_vad)
    assert rig.engine.vad_engine is new_vad and new_vad.configured == [(0.5, 120)]
    start = first_loud(caller_speech)
    for frame in caller_speech[start : start + 10]:
        rig.step({call: frame})
    assert new_vad.batches and sink.kinds()[-1] == "speech_started"


def test_odd_sized_and_empty_chunks_are_accepted(caller_speech: list[bytes]) -> None:
    rig = Rig()
    sink = FakeSink()
    call = rig.engine.add_call(sink)
    audio = b"".join(caller_speech)
    # Twilio chunks are usually 20 ms but not guaranteed: feed 7 ms and 33 ms pieces.
    pos, sizes = 0, [56, 264, 0, 1]
    while pos < len(audio):
        for size in sizes:
            call.receive(audio[pos : pos + size])
            pos += size
        rig.step()
    rig.step(ticks=40)
    assert sink.kinds() == ["speech_started", "end_of_turn"]
    assert call.stats.frames_dropped_in == 0
