"""The Twilio leg: checkpoints become marks and back; barge-in reads the same numbers
as a leg that counts what it played itself (the LiveKit shape)."""

from __future__ import annotations

import base64
from collections import deque

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from agents.brain import Brain, BrainOutput, CallContext
from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine
from telephony.call import Call, CallLatency
from telephony.twilio.leg import MAX_MARK_NAME, MediaStreamLeg, mark_name, parse_mark
from tests.audio import speech_ulaw


@given(st.text(max_size=64), st.integers(0, 10**7))
def test_mark_names_round_trip_even_with_colons_in_the_item_id(item_id: str, ms: int) -> None:
    assert parse_mark(mark_name(item_id, ms)) == (item_id, ms)


def test_marks_that_are_not_ours_do_not_parse() -> None:
    for name in ("nocolon", "", "a:", "a:x", "a:-5", "a:+5", "a: 5", "a:٣", "a:1" + "0" * 300):
        assert parse_mark(name) is None, name
    assert len("a:1" + "0" * 300) > MAX_MARK_NAME


class _Writer:
    """FrameWriter's surface as the leg uses it; keeps each message."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []
        self.overflowed = False

    def ready(self) -> bool:
        return True

    def queue(self, data: bytes) -> bool:
        self.queued.append(data)
        return True

    def send(self, data: bytes) -> bool:
        self.queued.append(data)
        return True

    def flush(self) -> None:
        pass


class TwilioPlayback:
    """Plays the Twilio leg's output like Twilio: marks are echoed once the media
    before them has played; a clear flushes the rest (flushed marks echo too)."""

    def __init__(self) -> None:
        self.writer = _Writer()
        self.leg = MediaStreamLeg(None, self.writer, "MZ" + "7" * 32)  # type: ignore[arg-type]
        self.frames = 0
        self._marks: deque[tuple[int, str]] = deque()

    def _read(self) -> None:
        for data in self.writer.queued:
            msg = msgspec.json.decode(data)
            if msg["event"] == "media":  # one message may carry several frames
                self.frames += len(base64.b64decode(msg["media"]["payload"])) // 160
            elif msg["event"] == "mark":
                self._marks.append((self.frames, msg["mark"]["name"]))
            else:  # clear: every mark still out comes back, flushed
                while self._marks:
                    self.leg.mark_echoed(self._marks.popleft()[1])
        self.writer.queued.clear()

    def play(self, frames: int) -> None:
        self._read()
        while self._marks and self._marks[0][0] <= frames:
            self.leg.mark_echoed(self._marks.popleft()[1])


class CountingLeg:
    """A leg that plays the audio itself and knows its position, as a LiveKit
    AudioSource does: it reports each checkpoint once its frames were played."""

    def __init__(self) -> None:
        self.leg = self
        self.frames = 0
        self.call: Call | None = None
        self._checkpoints: deque[tuple[int, str, int]] = deque()

    def send_media(self, ulaw_frame: bytes) -> bool:
        self.frames += 1
        return True

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        self._checkpoints.append((self.frames, item_id, ms))
        return True

    def send_clear(self) -> bool:
        self._checkpoints.clear()
        return True

    def flush(self) -> None:
        pass

    def hang_up(self, reason: str) -> None:
        pass

    def play(self, frames: int) -> None:
        while self._checkpoints and self._checkpoints[0][0] <= frames:
            _, item_id, ms = self._checkpoints.popleft()
            assert self.call is not None
            self.call.played(item_id, ms)


class _Brain(Brain):
    kind = "scripted"

    def __init__(self) -> None:
        self.truncations: list[tuple[str, int]] = []

    async def start(self, context: CallContext, output: BrainOutput) -> None:
        pass

    def push_audio(self, ulaw: bytes) -> None:
        pass

    def commit(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self.truncations.append((item_id, audio_end_ms))

    async def close(self) -> None:
        pass


def _barge_in_after(played_frames: int, playback: TwilioPlayback | CountingLeg,
                    chunk: int = 5) -> list:
    now = [0.0]
    engine = MediaEngine(make_engine(VadSettings()), VadSettings(),
                         MediaSettings(mark_interval_ms=100, lead_frames=2,
                                       send_chunk_frames=chunk),
                         clock_now=lambda: now[0])
    brain = _Brain()
    call = Call(CallContext("CA" + "1" * 32), playback.leg, brain, None,  # type: ignore[arg-type]
                now=lambda: now[0] / 1000, latency=CallLatency(window=4))
    call.media = engine.add_call(call)
    if isinstance(playback, CountingLeg):
        playback.call = call
    else:
        playback.leg.on_played = call.played
    call.agent_audio("item_1", speech_ulaw("Thanks for calling, how can I help you today?"))
    for _ in range(played_frames + 5):
        now[0] += 20.0
        engine.tick(now[0], 1)
    playback.play(played_frames)
    call.caller_speech_started()  # the brain's own VAD heard the caller: cut
    playback.play(10**6)  # what a clear flushed must not count
    return brain.truncations


def test_barge_in_truncates_to_what_each_kind_of_leg_played() -> None:
    for chunk in (1, 5):  # one frame per tick, or chunks: the same truncation
        for frames in (3, 24, 37):
            heard = frames * 20 // 100 * 100  # down to the last checkpoint played
            assert _barge_in_after(frames, TwilioPlayback(), chunk) == [("item_1", heard)]
            assert _barge_in_after(frames, CountingLeg(), chunk) == [("item_1", heard)]


def test_consecutive_frames_leave_as_one_media_message_cut_at_each_mark() -> None:
    playback = TwilioPlayback()
    leg = playback.leg
    frames = [bytes([i]) * 160 for i in range(7)]
    for frame in frames[:3]:
        assert leg.send_media(frame)
    assert leg.send_checkpoint("r", 60)
    for frame in frames[3:]:
        assert leg.send_media(frame)
    leg.flush()
    msgs = [msgspec.json.decode(m) for m in playback.writer.queued]
    assert [m["event"] for m in msgs] == ["media", "mark", "media"]
    assert base64.b64decode(msgs[0]["media"]["payload"]) == b"".join(frames[:3])
    assert msgs[1]["mark"]["name"] == "r:60"
    assert base64.b64decode(msgs[2]["media"]["payload"]) == b"".join(frames[3:])
    leg.flush()  # nothing pending: nothing more
    assert len(playback.writer.queued) == 3


def test_a_clear_goes_after_the_audio_already_handed_to_the_leg() -> None:
    playback = TwilioPlayback()
    playback.leg.send_media(b"\x01" * 160)
    playback.leg.send_clear()
    assert [msgspec.json.decode(m)["event"] for m in playback.writer.queued] == ["media", "clear"]


def test_a_long_backlog_is_cut_into_bounded_messages() -> None:
    from telephony.twilio.leg import MAX_MEDIA_BYTES

    playback = TwilioPlayback()
    for _ in range(2 * MAX_MEDIA_BYTES // 160 + 1):
        playback.leg.send_media(b"\x02" * 160)
    playback.leg.flush()
    sizes = [len(base64.b64decode(msgspec.json.decode(m)["media"]["payload"]))
             for m in playback.writer.queued]
    assert sizes == [MAX_MEDIA_BYTES, MAX_MEDIA_BYTES, 160]


def test_a_forged_mark_cannot_raise_what_the_caller_heard() -> None:
    playback = TwilioPlayback()
    assert not playback.leg.mark_echoed("item_1:100")  # no call bound yet: dropped
    got: list[tuple[str, int]] = []
    playback.leg.on_played = lambda item_id, ms: got.append((item_id, ms))
    assert playback.leg.mark_echoed("resp:1:300") and got == [("resp:1", 300)]
    assert not playback.leg.mark_echoed("resp:1:x") and len(got) == 1
