"""A `via = "livekit"` job end to end through the real leadline app: the BullMQ job in the
real Redis, the dialer's gate and idempotency key in SQL, CreateSIPParticipant through
the real client against the Twirp fake, the fake room playing the callee in real time,
the app's media engine, clock and scripted brain, and the outcome as the job's
returnvalue. The app builds its LiveKit placer from `[livekit]`, as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from media.codecs import ulaw
from media.resample import resample
from telephony.livekit.dialing import LiveKitPlacer
from tests.audio import speech_ulaw
from tests.fakes.livekit_twirp import Callee, FakeLiveKit
from tests.telephony.dialer.rig import HUMAN, Rig, contact, make_rig
from tests.telephony.livekit.fake_room import FakeRoom

pytestmark = pytest.mark.e2e

BUSY = "+14155553001"
DOWN = "+14155553002"
MACHINE = "+14155553003"
GREETING = "Hi, you have reached Bay Dental. Please leave a message after the tone."


@dataclass
class LkRig:
    rig: Rig
    twirp: FakeLiveKit
    rooms: list[FakeRoom]
    placer: LiveKitPlacer


def _beep48(ms: int = 400, hz: float = 1000.0) -> bytes:
    t = np.arange(48000 * ms // 1000) / 48000
    return (9000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


async def _machine(room: FakeRoom) -> None:
    """A recorder: its greeting, the beep, then it records until the agent hangs up."""
    await asyncio.sleep(0.3)
    speech = resample(ulaw.decode(speech_ulaw(GREETING)), 8000, 48000)
    await room.say(speech + _beep48())
    room.recording_from_ms = room.heard_ms()  # type: ignore[attr-defined]
    for _ in range(150):  # 30 s at most
        if room.disconnected:
            return
        await room.silence(200)
    room.set_status("hangup")


async def _callee(room: FakeRoom) -> None:
    """Picks up, says hello, listens to the agent a while, then hangs up. (The scripted
    brain on an outbound call waits for a person before it greets: phone-tree mode.)"""
    await asyncio.sleep(1.0)
    speech = resample(ulaw.decode(speech_ulaw("Hello, front desk.")), 8000, 48000)
    await room.say(speech)
    await room.silence(4000)
    room.set_status("hangup")


@pytest.fixture
async def lk(tmp_path: Path) -> AsyncIterator[LkRig]:
    twirp = FakeLiveKit()
    await twirp.start()
    twirp.callees[BUSY] = Callee(sip_status_code=486)
    twirp.callees[DOWN] = Callee(http_status=503)
    rooms: list[FakeRoom] = []
    tasks: set[asyncio.Task[None]] = set()

    def make_room(url: str, token: str, callee: str) -> FakeRoom:
        room = FakeRoom(answered=False)
        rooms.append(room)
        return room

    async def answered(request: object) -> None:
        room = rooms[-1]
        room.set_status("active")
        play = _machine if getattr(request, "sip_call_to", "") == MACHINE else _callee
        task = asyncio.get_running_loop().create_task(play(room))
        tasks.add(task)

    twirp.on_answer = answered  # type: ignore[assignment]
    env = {"LEADLINE_LIVEKIT_URL": twirp.url, "LEADLINE_LIVEKIT_API_KEY": twirp.api_key,
           "LEADLINE_LIVEKIT_API_SECRET": twirp.api_secret,
           "LEADLINE_LIVEKIT_SIP_TRUNK_ID": "ST_fake0trunk",
           "LEADLINE_LIVEKIT_RINGING_TIMEOUT_S": "5"}
    async with make_rig(tmp_path, env) as rig:
        runtime = rig.server.runtime
        # The app built the placer from [livekit]; only the room is the fake one (the
        # SDK seam), everything else is what `leadline serve` runs.
        placer = runtime.livekit
        assert isinstance(placer, LiveKitPlacer) and runtime.dialer.dialer.livekit is placer
        placer.calls._room_factory = make_room
        try:
            yield LkRig(rig, twirp, rooms, placer)
        finally:
            for task in tasks:
                task.cancel()
            await twirp.stop()


async def test_a_livekit_job_is_dialed_talked_to_and_reported(lk: LkRig) -> None:
    job = await lk.rig.add({**contact(HUMAN), "via": "livekit"})
    done = await lk.rig.finished(job.id)
    assert done.failedReason in (None, ""), done.failedReason
    value = done.returnvalue
    assert value["outcome"] == "declined", value  # the keyless brain hears no words
    assert value["callSid"].startswith("LK") and value["durationS"] >= 2
    [req] = [r.request for r in lk.twirp.received if r.method == "CreateSIPParticipant"]
    assert req.sip_call_to == HUMAN and req.wait_until_answered
    assert lk.rig.twilio.creates == 0  # not a Twilio call
    room = lk.rooms[0]
    assert room.heard_ms() > 1000 and room.disconnected  # the greeting reached the room
    assert req.room_name in lk.twirp.deleted_rooms
    db = lk.rig.server.runtime.persistence.db
    record = await db.get_dial_by_call_sid(value["callSid"])
    assert record.status == "completed" and record.answered_at is not None
    assert record.media_ended_at is not None and record.job_id == job.id


async def test_a_machine_on_livekit_gets_the_message_after_its_beep(lk: LkRig) -> None:
    """LiveKit has no AMD: our own detector, armed from the answer, hears the beep in
    the room's audio; the voicemail is spoken after it and the room hung up."""
    job = await lk.rig.add({**contact(MACHINE), "via": "livekit"})
    done = await lk.rig.finished(job.id)
    assert done.returnvalue["outcome"] == "voicemail_left", done.returnvalue
    observer = lk.rig.server.runtime.dialer.observer
    assert observer.own_amd_verdicts.get("machine_end_beep") == 1, observer.own_amd_verdicts
    room = lk.rooms[0]
    assert room.disconnected  # we hung up: the room went, the recorder did not hang up
    # The message was heard by the recorder: more than a second of agent audio after
    # the beep (the message, not the tail of a greeting cut short).
    after_beep_ms = room.heard_ms() - room.recording_from_ms  # type: ignore[attr-defined]
    assert after_beep_ms > 1500, after_beep_ms


async def test_busy_is_an_outcome_and_livekit_down_fails_the_attempt(lk: LkRig) -> None:
    job = await lk.rig.add({**contact(BUSY), "via": "livekit"})
    done = await lk.rig.finished(job.id)
    assert done.failedReason in (None, ""), done.failedReason
    assert done.returnvalue["outcome"] == "busy"
    record = await lk.rig.server.runtime.persistence.db.get_dial_by_call_sid(
        done.returnvalue["callSid"])
    assert record.status == "busy" and record.answered_at is None
    job = await lk.rig.add({**contact(DOWN), "via": "livekit"})
    done = await lk.rig.finished(job.id)
    assert "livekit 503" in (done.failedReason or ""), done.failedReason
    assert lk.placer.calls.results.get("completed", 0) == 0
    samples = await _metrics(lk.rig.server.url)
    assert samples[("leadline_livekit_dials_total", ())] == 2
    assert samples[("leadline_livekit_dial_errors_total", (("kind", "busy"),))] == 1
    assert samples[("leadline_livekit_dial_errors_total", (("kind", "transient"),))] == 1
    assert samples[("leadline_livekit_calls_total", (("result", "busy"),))] == 1
    assert samples[("leadline_livekit_active_calls", ())] == 0


async def test_a_talked_call_and_bad_room_frames_show_on_metrics(lk: LkRig) -> None:
    job = await lk.rig.add({**contact(HUMAN), "via": "livekit"})
    runtime = lk.rig.server.runtime
    await _until_active(lk)
    room = lk.rooms[0]
    assert room.events is not None
    room.events.on_audio(bytes(320), 16000, 1, 160)  # a frame of the wrong rate
    await lk.rig.finished(job.id)
    samples = await _metrics(lk.rig.server.url)
    assert samples[("leadline_livekit_calls_total", (("result", "completed"),))] == 1
    assert samples[("leadline_livekit_bad_frames_total", (("reason", "wrong_rate"),))] == 1
    assert samples[("leadline_livekit_frames_out_total", ())] > 50
    assert samples[("leadline_livekit_frames_in_total", ())] > 50
    assert not runtime.livekit.calls.active


async def _until_active(lk: LkRig) -> None:
    for _ in range(500):
        if lk.placer.calls.active:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no LiveKit call came up")


async def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}
