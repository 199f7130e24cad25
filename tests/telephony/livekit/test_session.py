"""A LiveKit call end to end against the fakes: the real Twirp client dials the fake
server, the fake room at the SDK seam plays the callee in real time, and the real media
engine on the real 20 ms media clock runs the call with the keyless (scripted) brain:
greeting paced at real time, the callee's turn, the reply, a barge-in that clears the
room's queue and truncates at what was heard, the callee hanging up. Then the dials that
do not connect (busy, no answer, 5xx), and a room that drops mid-call."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.scripted import ScriptedBrain
from agents.settings import ScriptedSettings
from media.clock import MediaClock
from media.codecs import ulaw
from media.engine import MediaEngine
from media.resample import resample
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine
from telephony.calls import CallManager
from telephony.livekit.session import LiveKitCalls
from telephony.livekit.settings import LiveKitSettings
from telephony.livekit.sip import SipDialError
from tests.audio import speech_ulaw
from tests.fakes.livekit_twirp import Callee, FakeLiveKit
from tests.telephony.livekit.fake_room import FakeRoom

pytestmark = pytest.mark.e2e

GREETING = "Hello, thanks for calling. This is an automated assistant."
REPLY = "Thank you. Press one to leave a message, or stay on the line and we will help you."


@dataclass
class Rig:
    twirp: FakeLiveKit
    calls: LiveKitCalls
    manager: CallManager
    engine: MediaEngine
    rooms: list[FakeRoom]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    twirp = FakeLiveKit()
    await twirp.start()
    vad = VadSettings()
    engine = MediaEngine(make_engine(vad), vad, MediaSettings())
    clock = MediaClock(on_tick=engine.tick)
    scripted = ScriptedSettings(greeting=GREETING, reply=REPLY,
                                messages_directory=str(tmp_path / "messages"))
    manager = CallManager(engine, lambda ctx: ScriptedBrain(scripted),
                          lambda ctx: ScriptedBrain(scripted, fallback=True), 10)
    rooms: list[FakeRoom] = []

    def make_room(url: str, token: str, callee: str) -> FakeRoom:
        assert url == twirp.url and token
        room = FakeRoom(answered=False)
        rooms.append(room)
        return room

    async def answered(request: object) -> None:
        rooms[-1].set_status("active")  # LiveKit sets the attribute as the callee answers

    twirp.on_answer = answered  # type: ignore[assignment]
    settings = LiveKitSettings(url=twirp.url, api_key=twirp.api_key,
                               api_secret=twirp.api_secret, sip_trunk_id="ST_fake0trunk",
                               ringing_timeout_s=5, max_call_duration_s=60)
    calls = LiveKitCalls(lambda: settings, manager, room_factory=make_room)  # type: ignore[arg-type]
    clock.start()
    try:
        yield Rig(twirp, calls, manager, engine, rooms)
    finally:
        await calls.aclose()
        await clock.stop()
        await twirp.stop()


def _callee_speech(text: str) -> bytes:
    """The callee as the room delivers it: eSpeak at 8 kHz, resampled to 48 kHz."""
    return resample(ulaw.decode(speech_ulaw(text)), 8000, 48000)


async def _until(predicate, limit_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_call_from_dial_to_hang_up(rig: Rig) -> None:
    started = time.monotonic()
    dial, final = await rig.calls.start("+14155550100", from_number="+14155550199",
                                        parameters={"JobId": "7"})
    assert dial.status == "answered" and final is not None
    [req] = [r for r in rig.twirp.received if r.method == "CreateSIPParticipant"]
    assert req.request.wait_until_answered and req.request.room_name == dial.room
    room = rig.rooms[0]
    call = rig.manager.active[dial.call_sid]
    brain = call.brain
    assert isinstance(brain, ScriptedBrain) and call.context.parameters["JobId"] == "7"
    greeting_ms = len(speech_ulaw(GREETING)) / 8
    # The greeting plays at real time: not faster than it lasts, from frames 20 ms apart.
    await _until(lambda: room.heard_ms() >= greeting_ms - 30, 15, "the greeting")
    took = time.monotonic() - started
    assert took >= greeting_ms / 1000 - 0.1, (took, greeting_ms)
    starts = [s for s, _ in room.played]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert abs(sum(gaps) / len(gaps) - 0.02) < 0.002 and max(gaps) < 0.1
    # The callee answers; its turn ends in silence and the brain replies.
    await room.silence(300)
    await room.say(_callee_speech("Hi, I would like to book a cleaning next week."))
    heard_before_reply = room.heard_ms()
    await room.silence(1200)
    await _until(lambda: room.heard_ms() > heard_before_reply + 900, 10, "the reply")
    assert rig.engine.end_of_turns >= 1
    # Barge-in: the callee talks over the reply; the room's queue is cleared.
    clears = room.clears
    await room.say(_callee_speech("Sorry, wait, actually"))
    await _until(lambda: room.clears > clears, 3, "the clear")
    heard_reply = room.heard_ms() - heard_before_reply
    assert room.discarded_ms > 0 and rig.engine.barge_ins >= 1
    # The brain was told what the callee heard of the reply: never more, at most one
    # checkpoint interval (100 ms) and a tick less.
    await _until(lambda: len(brain.core.heard_ms) >= 1, 2, "the truncation")
    reply_item, truncated_ms = list(brain.core.heard_ms.items())[-1]
    assert reply_item.startswith("scripted")
    assert truncated_ms <= heard_reply + 3, (truncated_ms, heard_reply)
    assert truncated_ms >= heard_reply - 200, (truncated_ms, heard_reply)
    heard_at_clear = room.heard_ms()
    await asyncio.sleep(0.3)
    assert room.heard_ms() - heard_at_clear < 400  # whatever plays next is a new item
    # The callee hangs up: the call ends, the room is deleted and left.
    room.set_status("hangup")
    result = await asyncio.wait_for(final, 5)
    assert result.status == "completed" and result.end_reason == "callee hung up"
    assert dial.room in rig.twirp.deleted_rooms and room.disconnected
    assert dial.call_sid not in rig.manager.active and rig.manager.ended == 1
    assert rig.calls.results == {"completed": 1}


@pytest.mark.parametrize(("callee", "status"), [
    (Callee(sip_status_code=486), "busy"), (Callee(sip_status_code=480), "no_answer"),
    (Callee(sip_status_code=408, delay_s=0.2), "no_answer"),
    (Callee(sip_status_code=500), "failed")])
async def test_a_dial_the_callee_side_refused_is_its_outcome(rig: Rig, callee: Callee,
                                                             status: str) -> None:
    rig.twirp.callees["+14155550101"] = callee
    dial, final = await rig.calls.start("+14155550101")
    assert final is None and dial.status == status and not dial.answered
    assert rig.rooms[0].disconnected and not rig.manager.active and rig.manager.started == 0


async def test_a_dial_livekit_could_not_serve_raises_for_the_dialer_to_sort(rig: Rig) -> None:
    rig.twirp.callees["+14155550102"] = Callee(http_status=503)
    with pytest.raises(SipDialError) as info:
        await rig.calls.start("+14155550102")
    assert not info.value.permanent and info.value.outcome is None
    assert rig.rooms[0].disconnected and rig.manager.started == 0
    # Whatever LiveKit might still be ringing into the room is hung up with it.
    [deleted] = rig.twirp.deleted_rooms
    assert deleted == rig.twirp.received[0].request.room_name


async def test_a_room_that_drops_mid_call_ends_the_call(rig: Rig) -> None:
    _, final = await rig.calls.start("+14155550103")
    assert final is not None
    room = rig.rooms[0]
    await _until(lambda: room.heard_ms() > 300, 5, "the greeting")
    room.drop("SIGNAL_CLOSE")
    result = await asyncio.wait_for(final, 5)
    assert result.end_reason == "room disconnected: SIGNAL_CLOSE"
    assert not rig.manager.active and rig.manager.end_reasons == {
        "room disconnected: SIGNAL_CLOSE": 1}


async def test_the_agents_goodbye_is_heard_before_the_room_goes(rig: Rig) -> None:
    dial, final = await rig.calls.start("+14155550104")
    assert final is not None
    room = rig.rooms[0]
    call = rig.manager.active[dial.call_sid]
    await _until(lambda: room.heard_ms() > 200, 5, "the greeting")
    call.media.agent_audio("bye", speech_ulaw("Goodbye."))
    call.media.agent_done("bye")
    call.end_call("agent ended the call")
    result = await asyncio.wait_for(final, 15)
    assert result.end_reason == "agent ended the call"
    total_ms = (len(speech_ulaw(GREETING)) + len(speech_ulaw("Goodbye."))) / 8
    assert room.heard_ms() >= total_ms - 60, (room.heard_ms(), total_ms)
    assert room.discarded_ms == 0 and dial.room in rig.twirp.deleted_rooms


async def test_the_calls_dtmf_goes_out_of_band_on_a_livekit_leg(rig: Rig) -> None:
    """`Call.send_dtmf` (the IVR navigator's and the model's press) on a LiveKit call is
    RFC 4733 through `publish_dtmf`, not tones in the playout (those are Twilio's way)."""
    dial, final = await rig.calls.start("+14155550100", from_number="+14155550199")
    assert final is not None
    room = rig.rooms[0]
    call = rig.manager.active[dial.call_sid]
    await _until(lambda: room.heard_ms() > 200, 10, "the greeting under way")
    call.media.interrupt()  # the greeting cut: anything queued now would be tones
    call.send_dtmf("2#")
    await _until(lambda: len(room.dtmf_sent) == 2, 2, "the digits")
    assert room.dtmf_sent == [(2, "2"), (11, "#")]
    assert call.media.playout.queued_ms == 0  # nothing in-band
    call.send_dtmf("9x")  # a model's typo: dropped whole
    await asyncio.sleep(0.05)
    assert len(room.dtmf_sent) == 2
    room.set_status("hangup")
    await asyncio.wait_for(final, 5)
