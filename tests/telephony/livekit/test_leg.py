"""The LiveKit leg against a fake room at the SDK seam: real-time playout through the
room's queue, checkpoints reported once heard, clear on barge-in, a room that stalls or
fails or drops, call status, DTMF, and bad frames from the room."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from media.codecs import ulaw
from telephony.livekit.leg import MAX_PENDING, LiveKitLeg
from tests.audio import frames, speech_ulaw
from tests.telephony.livekit.fake_room import FakeRoom


class Side:
    """The call's side of the leg: what it was told, and when."""

    def __init__(self, room: FakeRoom) -> None:
        self.room = room
        self.audio: list[bytes] = []
        self.digits: list[str] = []
        self.played: list[tuple[str, int, float, float]] = []  # item, ms, at, room heard ms

    def caller_audio(self, ulaw_frame: bytes) -> None:
        self.audio.append(ulaw_frame)

    def caller_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    def played_cb(self, item_id: str, ms: int) -> None:
        self.played.append((item_id, ms, time.monotonic(), self.room.heard_ms()))


async def _leg(room: FakeRoom, **kw: object) -> tuple[LiveKitLeg, Side]:
    hung: list[str] = []
    states: list[str] = []
    leg = LiveKitLeg(room, on_hang_up=hung.append, on_state=states.append)  # type: ignore[arg-type]
    leg.hung = hung  # type: ignore[attr-defined]
    leg.states = states  # type: ignore[attr-defined]
    side = Side(room)
    side.played = []
    await room.connect(leg)
    leg.start(type("CallSide", (), {"caller_audio": side.caller_audio,
                                    "caller_dtmf": side.caller_dtmf,
                                    "played": side.played_cb})())
    return leg, side


async def _tick_out(leg: LiveKitLeg, audio: bytes, every: int = 5, item: str = "item_1",
                    stop_after: int | None = None) -> int:
    """Hand frames over like the engine does: one per 20 ms tick, a checkpoint every
    `every` frames. Returns frames sent."""
    started = time.monotonic()
    sent = 0
    for n, frame in enumerate(frames(audio, ulaw.FRAME_BYTES)):
        if stop_after is not None and n >= stop_after:
            break
        delay = started + n * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        leg.send_media(frame)
        sent += 1
        if sent % every == 0:
            leg.send_checkpoint(item, sent * 20)
    return sent


async def test_audio_plays_in_real_time_and_checkpoints_follow_what_was_heard() -> None:
    room = FakeRoom()
    leg, side = await _leg(room)
    audio = speech_ulaw("Thanks for calling, how can I help you today?")
    started = time.monotonic()
    sent = await _tick_out(leg, audio)
    await asyncio.sleep(0.3)
    await leg.close()
    total_ms = sent * 20
    # Every checkpoint reported, in order, and never before its audio had played.
    assert [ms for _, ms, _, _ in side.played] == list(range(100, total_ms + 1, 100))
    for _, ms, at, heard in side.played:
        assert heard + 2 >= ms, (ms, heard)  # ≤ the resampler's 2 ms filter delay early
        assert at - started <= ms / 1000 + 0.08, (ms, at - started)  # and soon after
    # The room played it paced: the frames' start times are 20 ms apart (no bursts).
    starts = [s for s, _ in room.played]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]  # the first is 18 ms
    assert max(gaps) < 0.05 and abs(sum(gaps) / len(gaps) - 0.02) < 0.002
    assert abs(room.heard_ms() - (total_ms - 2)) <= 2  # all of it, less the filter delay
    assert leg.stats.frames_out == sent and not leg.hung  # type: ignore[attr-defined]


async def test_a_clear_drops_the_queue_and_reports_no_more_than_was_heard() -> None:
    room = FakeRoom(queue_ms=400)
    leg, side = await _leg(room)
    audio = speech_ulaw("Thanks for calling, this is the scheduling assistant, how can I help?")
    # The engine runs a few frames ahead; here 10 frames (200 ms) were handed over early.
    for frame in frames(audio, ulaw.FRAME_BYTES)[:10]:
        leg.send_media(frame)
    leg.send_checkpoint("item_1", 200)
    await _tick_out(leg, audio[10 * 160 :], every=5, stop_after=30)
    leg.send_clear()
    heard_at_clear = room.heard_ms()
    await asyncio.sleep(0.25)
    await leg.close()
    assert room.clears == 1 and room.discarded_ms > 100
    assert room.heard_ms() == pytest.approx(heard_at_clear, abs=0.5)  # nothing after it
    reported = max(ms for _, ms, _, _ in side.played)
    assert reported <= heard_at_clear + 2
    assert leg.played_ms <= heard_at_clear + 3  # the uplink's 2 ms filter delay


async def test_a_room_that_stops_taking_audio_ends_only_its_call() -> None:
    room = FakeRoom()
    leg, _ = await _leg(room)
    room.block_capture = True
    results = [leg.send_media(ulaw.SILENT_FRAME) for _ in range(MAX_PENDING + 5)]
    await asyncio.sleep(0)
    assert results.count(False) == 5 and leg.stats.overflows == 1
    assert leg.hung == ["slow room"] and leg.ended.is_set()  # type: ignore[attr-defined]
    assert leg.end_reason == "slow room"
    await leg.close()


async def test_a_failing_capture_hangs_up() -> None:
    room = FakeRoom()
    leg, _ = await _leg(room)
    room.fail_capture = True
    leg.send_media(ulaw.SILENT_FRAME)
    await asyncio.wait_for(leg.ended.wait(), 1)
    assert leg.hung == ["room audio failed"] and leg.stats.capture_errors == 1  # type: ignore[attr-defined]
    assert not leg.send_media(ulaw.SILENT_FRAME)
    await leg.close()


async def test_call_status_moves_the_call_and_a_dropped_room_ends_it() -> None:
    room = FakeRoom(answered=False)
    leg, _ = await _leg(room)
    assert leg.state == "dialing"
    room.set_status("automation")
    assert leg.state == "dialing"
    room.set_status("active")
    assert leg.state == "answered" and leg.states == ["answered"]  # type: ignore[attr-defined]
    room.set_status("hangup")
    assert leg.ended.is_set() and leg.end_reason == "callee hung up"
    assert leg.states == ["answered", "ended"]  # type: ignore[attr-defined]
    await leg.close()
    room2 = FakeRoom()
    leg2, _ = await _leg(room2)
    room2.drop("SIGNAL_CLOSE")
    assert leg2.ended.is_set() and leg2.end_reason == "room disconnected: SIGNAL_CLOSE"
    assert not leg2.send_media(ulaw.SILENT_FRAME)
    await leg2.close()


async def test_dtmf_both_ways() -> None:
    room = FakeRoom()
    leg, side = await _leg(room)
    assert leg.send_dtmf("12*#a")
    await asyncio.sleep(0.01)
    assert room.dtmf_sent == [(1, "1"), (2, "2"), (10, "*"), (11, "#"), (12, "A")]
    assert not leg.send_dtmf("1x")  # a model's typo: dropped whole, nothing sent
    await asyncio.sleep(0.01)
    assert len(room.dtmf_sent) == 5
    for digit in ("5", "#", "xx", "", "e"):
        leg.on_dtmf(digit)
    assert side.digits == ["5", "#"]
    await leg.close()


async def test_callee_audio_reaches_the_call_and_bad_frames_are_counted() -> None:
    room = FakeRoom()
    leg, side = await _leg(room)
    await room.silence(200)  # 20 frames of 10 ms → 10 μ-law frames, less the filter delay
    assert len(side.audio) == 9 and all(len(f) == 160 for f in side.audio)
    leg.on_audio(bytes(320), 16000, 1, 160)
    leg.on_audio(bytes(320), 16000, 1, 160)
    leg.on_audio(bytes(1920), 48000, 2, 480)
    leg.on_audio(bytes(100), 48000, 1, 480)
    assert leg.stats.bad_frames == {"wrong_rate": 2, "wrong_channels": 1, "wrong_size": 1}
    assert len(side.audio) == 9 and leg.stats.frames_in == 9
    await leg.close()
