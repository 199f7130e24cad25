"""The outbound dialer end to end through the real server: BullMQ jobs in the real Redis,
the real leadline app (worker sidecar, callbacks, media path, SQL), and the fake Twilio
that places the call and plays the callee over a real Media Stream (`tests/telephony/
dialer/rig.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.realtime.breaker import default_breaker
from ops.dev.fake_realtime import (
    FakeRealtimeRunner,
    Script,
    Turn,
    serve_fake_realtime,
)
from telephony.twilio.signature import SignatureChecker
from tests.helpers import AUTH_TOKEN, eventually
from tests.telephony.dialer.rig import (
    BOOKER,
    BUSY,
    HUMAN,
    IVR,
    IVR2,
    IVR2_MENU1,
    IVR2_MENU2,
    IVR_STUCK,
    LONG,
    MACHINE,
    MACHINE_UNKNOWN,
    NOANSWER,
    NOON_PT,
    NOT_AVAILABLE,
    Rig,
    contact,
    make_rig,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as r:
        yield r


async def test_human_answers_talks_and_hangs_up(rig: Rig) -> None:
    job = await rig.add(contact(HUMAN))
    done = await rig.finished(job.id)
    assert done.failedReason in (None, ""), done.failedReason
    value = done.returnvalue
    assert value["outcome"] == "declined", value
    assert value["callSid"].startswith("CA") and value["durationS"] >= 1
    assert set(value) == {"outcome", "callSid", "durationS", "transcriptUrl", "meeting",
                          "declineReason", "objections"}
    call = rig.twilio.calls[value["callSid"]]
    assert rig.twilio.creates == 1
    assert call.form["MachineDetection"] == "DetectMessageEnd"
    assert call.form["AsyncAmd"] == "true"
    assert call.form["StatusCallback"] == f"{rig.server.url}/twilio/call-status"
    assert call.parameters["Direction"] == "outbound-api"
    assert call.parameters["JobId"] == job.id
    assert call.heard_ms > 500 and call.lines_said == 1
    assert all(code == 204 for kind, _, code in call.callbacks), call.callbacks
    db = rig.server.runtime.persistence.db
    record = await db.get_dial_by_call_sid(value["callSid"])
    assert record.campaign_id == "spring" and record.step == 1
    assert record.answered_by == "human" and record.status == "completed"
    stored = await eventually(lambda: db.get_call(value["callSid"]), "call record in SQL")
    assert stored.call.direction == "outbound"


def _file_at(url: str) -> bytes | None:
    path = Path(urlparse(url).path)
    return path.read_bytes() if path.exists() else None


async def _transcript_in(read: Any, url: str) -> dict[str, Any]:
    """The transcript document at `url`, once it is there (written after the call)."""
    async def there() -> dict[str, Any] | None:
        data = await read(url)
        return None if data is None else msgspec.json.decode(data)

    return await eventually(there, f"transcript at {url}", limit_s=10, interval_s=0.1)


async def test_the_outcome_points_at_the_stored_transcript_and_recording(tmp_path) -> None:
    """[artifacts] in a directory: the returnvalue's transcriptUrl is a file:// URL that
    holds the call's turns with roles and timestamps, and the recording beside it."""
    async with make_rig(tmp_path, {"LEADLINE_ARTIFACTS_DIRECTORY": str(tmp_path / "art"),
                                   "LEADLINE_RECORDING_ENABLED": "true",
                                   "LEADLINE_RECORDING_DIRECTORY": str(tmp_path / "rec"),
                                   }) as rig:
        job = await rig.add(contact(HUMAN))
        done = await rig.finished(job.id)
        value = done.returnvalue
        url = value["transcriptUrl"]
        assert url and url.startswith("file://"), value

        async def read(u: str) -> bytes | None:
            return await asyncio.to_thread(_file_at, u)

        doc = await _transcript_in(read, url)
        assert doc["callSid"] == value["callSid"]
        roles = {t["role"] for t in doc["turns"]}
        assert "agent" in roles, doc
        assert all(t["at"] for t in doc["turns"])
        assert doc["recordingUrl"] and doc["recordingUrl"].startswith("file://")
        wav = await asyncio.to_thread(_file_at, doc["recordingUrl"]) or b""
        assert wav[:4] == b"RIFF" and len(wav) > 44 + 8000  # more than a header
        assert Path(urlparse(url).path).is_relative_to(tmp_path / "art")
        async with aiohttp.ClientSession() as http, \
                http.get(rig.server.url + "/metrics") as resp:
            text = await resp.text()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert samples[("leadline_artifacts_total", (("kind", "calls_saved"),))] == 1
        assert samples[("leadline_artifacts_total", (("kind", "errors"),))] == 0


async def test_the_transcript_goes_to_s3_encrypted(tmp_path) -> None:
    """[artifacts] kind = "s3" against moto in server mode (a real S3 HTTP endpoint)."""
    from aiobotocore.session import get_session
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        async with get_session().create_client("s3", region_name="us-east-1",
                                               endpoint_url=endpoint, **keys) as s3:
            await s3.create_bucket(Bucket="calls")
            async with make_rig(tmp_path, {
                    "LEADLINE_ARTIFACTS_KIND": "s3", "LEADLINE_ARTIFACTS_BUCKET": "calls",
                    "LEADLINE_ARTIFACTS_ENDPOINT_URL": endpoint,
                    "LEADLINE_ARTIFACTS_ACCESS_KEY_ID": "testing",
                    "LEADLINE_ARTIFACTS_SECRET_ACCESS_KEY": "testing",
                    "LEADLINE_ARTIFACTS_SPOOL_DIRECTORY": str(tmp_path / "spool")}) as rig:
                job = await rig.add(contact(HUMAN))
                done = await rig.finished(job.id)
                url = done.returnvalue["transcriptUrl"]
                assert url.startswith("s3://calls/calls/"), done.returnvalue
                key = url[len("s3://calls/"):]

                async def read(_u: str) -> bytes | None:
                    try:
                        obj = await s3.get_object(Bucket="calls", Key=key)
                    except s3.exceptions.NoSuchKey:
                        return None
                    assert obj["ServerSideEncryption"] == "AES256"
                    return await obj["Body"].read()

                doc = await _transcript_in(read, url)
                assert doc["callSid"] == done.returnvalue["callSid"]
                assert any(t["role"] == "agent" for t in doc["turns"]), doc
                assert not list((tmp_path / "spool").rglob("*.json"))  # acknowledged
    finally:
        moto.stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_machine_gets_the_voicemail(rig: Rig) -> None:
    job = await rig.add(contact(MACHINE))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == "voicemail_left", done.returnvalue
    call = rig.twilio.calls[done.returnvalue["callSid"]]
    assert call.closed_by_server  # we hung up after the message
    assert ("amd", "machine_end_beep", 204) in call.callbacks
    assert rig.server.runtime.dialer.observer.voicemails_left == 1


async def test_amd_unknown_our_detector_hears_the_beep_and_leaves_the_message(
        rig: Rig) -> None:
    """Twilio's AMD says `unknown`: our own detector, fed the callee's audio since the
    answer, found the beep; the message is left after it and the call hung up."""
    job = await rig.add(contact(MACHINE_UNKNOWN))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == "voicemail_left", done.returnvalue
    call = rig.twilio.calls[done.returnvalue["callSid"]]
    assert ("amd", "unknown", 204) in call.callbacks
    assert call.closed_by_server
    observer = rig.server.runtime.dialer.observer
    assert observer.own_amd_verdicts.get("machine_end_beep") == 1, observer.own_amd_verdicts
    assert observer.voicemails_left == 1
    async with aiohttp.ClientSession() as http, \
            http.get(rig.server.url + "/metrics") as resp:
        text = await resp.text()
    assert 'leadline_dialer_own_amd_verdicts_total{answered_by="machine_end_beep"} 1.0' \
        in text


async def test_a_person_saying_he_is_not_available_is_no_machine(rig: Rig) -> None:
    """AMD `unknown`, and the person says a line recorders say too: our detector takes
    the short turn for a person; no voicemail is left, the call is a conversation."""
    job = await rig.add(contact(NOT_AVAILABLE))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] != "voicemail_left", done.returnvalue
    call = rig.twilio.calls[done.returnvalue["callSid"]]
    assert ("amd", "unknown", 204) in call.callbacks and call.lines_said == 1
    observer = rig.server.runtime.dialer.observer
    assert observer.voicemails_left == 0
    assert observer.own_amd_verdicts.get("human") == 1, observer.own_amd_verdicts
    assert "machine_end_beep" not in observer.own_amd_verdicts
    assert "machine_end_silence" not in observer.own_amd_verdicts


@pytest.mark.parametrize(("phone", "outcome"), [(BUSY, "busy"), (NOANSWER, "no_answer")])
async def test_unanswered(rig: Rig, phone: str, outcome: str) -> None:
    job = await rig.add(contact(phone))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == outcome
    assert done.returnvalue["durationS"] == 0


async def test_invalid_phone_places_no_call_and_outside_hours_waits_for_the_clock(
        rig: Rig) -> None:
    bad = await rig.add(contact("+1415555"))
    failed = await rig.finished(bad.id)
    assert failed.failedReason.startswith("invalid phone number"), failed.failedReason
    assert failed.attemptsMade <= 1 and rig.twilio.creates == 0  # unretried, not dialed
    rig.clock[0] = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)  # 03:00 in California
    job = await rig.add(contact(BUSY))

    async def delayed() -> bool:
        return await (await rig.job(job.id)).isDelayed()

    await eventually(delayed, "the job moved back to delayed", limit_s=20)
    stored = await rig.job(job.id)
    assert stored.delay == pytest.approx(5 * 3600 * 1000, abs=5000)  # until 08:00 PT
    assert rig.twilio.creates == 0 and not stored.failedReason
    rig.clock[0] = NOON_PT  # the injected clock allows it: promoted, it is dialed now
    await stored.promote()
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == "busy" and rig.twilio.creates == 1


async def test_worker_killed_mid_call_is_recovered_without_a_second_dial(tmp_path) -> None:
    """The server keeps the call (media, callbacks); the worker process holding the job
    dies mid-call; the job stalls, a new worker picks it up, finds the dial row and
    attaches: one calls.create, and the job completes with that call's outcome."""
    async with make_rig(tmp_path, {"LEADLINE_DIALER_ENABLED": "false"}) as rig:
        runtime = rig.server.runtime
        spec = json.dumps({
            "database_url": runtime.config.store.database_url,
            "now": NOON_PT.isoformat(),
            "twilio": msgspec.to_builtins(runtime.config.twilio),
            "dialer": {**msgspec.to_builtins(runtime.config.dialer), "enabled": True,
                       "lock_duration_ms": 2000, "stalled_interval_ms": 1000},
        })

        async def child() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.telephony.dialer.worker_child", spec,
                stdout=asyncio.subprocess.PIPE)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"ready"
            return proc

        first = await child()
        job = await rig.add(contact(LONG))
        call = await eventually(
            lambda: next((c for c in rig.twilio.calls.values() if c.lines_said >= 1), None),
            "the callee answered and spoke", limit_s=30)
        first.kill()  # SIGKILL: no lock release, no cleanup
        await first.wait()
        assert call.ended_at is None  # the call is still up, on the server
        second = await child()
        try:
            done = await rig.finished(job.id, limit_s=60)
        finally:
            second.kill()
            await second.wait()
        assert done.returnvalue["callSid"] == call.sid, done.returnvalue
        assert rig.twilio.creates == 1
        assert done.returnvalue["outcome"] == "declined"
        dials = await runtime.persistence.db.list_dials(job.id)
        assert len(dials) == 1 and dials[0].call_sid == call.sid


async def test_the_scripted_agent_says_it_is_automated(rig: Rig) -> None:
    job = await rig.add(contact(HUMAN))
    done = await rig.finished(job.id)
    db = rig.server.runtime.persistence.db
    detail = await eventually(lambda: db.get_call(done.returnvalue["callSid"]),
                              "the call's record")

    async def agent_turns() -> list[str]:
        found = await db.get_call(done.returnvalue["callSid"])
        return [t.text for t in found.turns if t.role == "agent"]

    texts = await eventually(agent_turns, "agent turns stored")
    assert detail.call.direction == "outbound"
    assert any("automated assistant" in text for text in texts), texts


@contextlib.asynccontextmanager
async def realtime_rig(tmp_path: Path, turns: tuple[Turn, ...],
                       default_transcript: str = "(unscripted caller turn)",
                       ) -> AsyncIterator[tuple[Rig, FakeRealtimeRunner]]:
    default_breaker.reset()
    fake = await serve_fake_realtime(0, Script(
        greeting="Hi, this is the assistant for Bay Dental calling about your checkup.",
        turns=turns, default_reply="I see.", default_transcript=default_transcript))
    try:
        async with make_rig(tmp_path, {
            "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
            "LEADLINE_OPENAI_BASE_URL": fake.websocket_base_url,
        }) as rig:
            yield rig, fake
    finally:
        await fake.cleanup()
        default_breaker.reset()


async def test_realtime_conversation_books_a_meeting(tmp_path: Path) -> None:
    turns = (Turn(transcript="Hello, front desk.", reply="Could we book your checkup?"),
             Turn(transcript="Sure, Tuesday at 3 works.", reply="Great, see you Tuesday."))
    async with realtime_rig(tmp_path, turns) as (rig, fake):
        job = await rig.add(contact(BOOKER))
        done = await rig.finished(job.id, limit_s=60)
        value = done.returnvalue
        assert value["outcome"] == "meeting_booked", value
        assert value["meeting"] == {"request": "Sure, Tuesday at 3 works."}
        updates = [e for e in fake.fake.received if e.get("type") == "session.update"]
        assert updates and "AI assistant" in updates[0]["session"]["instructions"]


async def test_dont_call_us_again_puts_the_number_on_dnc(tmp_path: Path) -> None:
    turns = (Turn(transcript="Don't call us again.", reply="Sorry to bother you."),)
    async with realtime_rig(tmp_path, turns) as (rig, _fake):
        job = await rig.add(contact(HUMAN))
        done = await rig.finished(job.id, limit_s=60)
        assert done.returnvalue["outcome"] == "do_not_call", done.returnvalue
        db = rig.server.runtime.persistence.db
        assert await db.is_dnc(HUMAN) and await db.is_opted_out(HUMAN)
        events = await db.list_consent_events(HUMAN)
        assert events[-1].channel == "voice" and "call us again" in events[-1].text
        call = rig.twilio.calls[done.returnvalue["callSid"]]
        assert call.closed_by_server  # we said goodbye and hung up
        again = await rig.add(contact(HUMAN))
        refused = await rig.finished(again.id)
        assert refused.failedReason.startswith("do not call")
        assert rig.twilio.creates == 1


async def test_forged_and_stranger_callbacks_are_counted_on_metrics(rig: Rig) -> None:
    url = rig.server.url
    form = {"CallSid": "CA" + "7" * 32, "CallStatus": "completed"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/twilio/call-status", data=form,
                             headers={"X-Twilio-Signature": "forged"}) as resp:
            assert resp.status == 403
        signature = SignatureChecker(AUTH_TOKEN).sign(url + "/twilio/call-status", form)
        async with http.post(url + "/twilio/call-status", data=form,
                             headers={"X-Twilio-Signature": signature}) as resp:
            assert resp.status == 204
        async with http.get(url + "/metrics") as resp:
            text = await resp.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("leadline_dialer_callbacks_total", (("kind", "forged"),))] == 1
    assert samples[("leadline_dialer_callbacks_total", (("kind", "unknown_calls"),))] == 1


async def test_dialer_run_command_consumes_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The installed `leadline dialer run`, configured by environment, takes a job (the
    server has no dialer of its own here) and exits 0 on SIGTERM; bad config exits 2."""
    async with make_rig(tmp_path, {"LEADLINE_DIALER_ENABLED": "false"}) as rig:
        await _run_command(rig)


async def _run_command(rig: Rig) -> None:
    exe = Path(sys.executable).parent / "leadline"
    runtime = rig.server.runtime
    env = {**os.environ,
           "LEADLINE_TWILIO_ACCOUNT_SID": runtime.config.twilio.account_sid,
           "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "LEADLINE_TWILIO_API_BASE_URL": rig.twilio.base_url,
           "LEADLINE_TWILIO_PUBLIC_URL": rig.server.url,
           "LEADLINE_STORE_DATABASE_URL": runtime.config.store.database_url,
           "LEADLINE_DIALER_REDIS_URL": runtime.config.dialer.redis_url,
           "LEADLINE_DIALER_QUEUE": rig.queue.name,
           "LEADLINE_DIALER_CALLER_ID": runtime.config.dialer.caller_id}
    bad = await asyncio.create_subprocess_exec(
        str(exe), "dialer", "run", env={**env, "LEADLINE_DIALER_CONCURRENCY": "0"},
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(bad.communicate(), 30)
    assert bad.returncode == 2 and b"concurrency" in err
    proc = await asyncio.create_subprocess_exec(
        str(exe), "dialer", "run", env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"dialer consuming" in line
        # The command's gate runs on the real clock: at this hour it may allow the call
        # (dialed: busy) or not (delayed); either shows the command took the job.
        job = await rig.add(contact(BUSY))

        async def settled() -> bool:
            fresh = await rig.job(job.id)
            return bool(fresh.finishedOn) or await fresh.isDelayed()

        await eventually(settled, "the command took the job", limit_s=30, interval_s=0.2)
        fresh = await rig.job(job.id)
        if fresh.finishedOn:
            assert fresh.returnvalue["outcome"] == "busy" and rig.twilio.creates == 1
        else:
            assert rig.twilio.creates == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_ivr_menu_is_passed_with_in_band_dtmf(tmp_path: Path) -> None:
    """The callee is a phone menu: the dialer's IVR navigator reads the menu from the
    callee's transcript and keys 2 (the front desk) as in-band tones on the call, the
    fake's DTMF ear hears it, and a person picks up."""
    turns = (Turn(transcript="For appointments press 1. For the front desk press 2.",
                  reply="One moment."),
             Turn(transcript="Front desk, this is Sam.", reply="Hi Sam, thanks."))
    async with realtime_rig(tmp_path, turns) as (rig, _fake):
        job = await rig.add(contact(IVR))
        done = await rig.finished(job.id, limit_s=60)
        call = rig.twilio.calls[done.returnvalue["callSid"]]
        assert call.digits_heard[:1] == ["2"], call.digits_heard
        assert call.lines_said == 1
        assert rig.server.runtime.dialer.observer.ivr_presses >= 1
        assert done.returnvalue["outcome"] == "declined"


async def test_two_level_menu_then_a_person_and_the_transcript_is_stored(
        tmp_path: Path) -> None:
    """A two-level phone tree (appointments → 2, then the front desk → 3, never the nurse
    line), a person, the conversation, the hang-up; the outcome's transcriptUrl holds
    both menus, the person and the agent, with roles and timestamps."""
    turns = (Turn(transcript=IVR2_MENU1, reply="One moment."),
             Turn(transcript=IVR2_MENU2, reply="One moment."),
             Turn(transcript="Front desk, this is Sam.", reply="Hi Sam, thanks."))
    async with realtime_rig(tmp_path, turns) as (rig, _fake):
        job = await rig.add(contact(IVR2))
        done = await rig.finished(job.id, limit_s=90)
        value = done.returnvalue
        call = rig.twilio.calls[value["callSid"]]
        assert call.digits_heard[:2] == ["2", "3"], call.digits_heard
        assert "4" not in call.digits_heard and call.lines_said == 1
        assert value["outcome"] == "declined", value
        doc = await _transcript_in(lambda u: asyncio.to_thread(_file_at, u),
                                   value["transcriptUrl"])
        said = [(t["role"], t["text"]) for t in doc["turns"]]
        assert ("caller", IVR2_MENU1) in said and ("caller", IVR2_MENU2) in said, said
        assert ("caller", "Front desk, this is Sam.") in said
        assert any(role == "agent" for role, _ in said)


async def test_a_menu_never_passed_is_ivr_failed(tmp_path: Path) -> None:
    menu = "For appointments press 1. For the front desk press 2."
    turns = (Turn(transcript=menu, reply="One moment."),)
    async with realtime_rig(tmp_path, turns, default_transcript=menu) as (rig, _fake):
        job = await rig.add(contact(IVR_STUCK))
        done = await rig.finished(job.id, limit_s=60)
        call = rig.twilio.calls[done.returnvalue["callSid"]]
        assert "2" in call.digits_heard and call.lines_said == 0
        assert done.returnvalue["outcome"] == "ivr_failed", done.returnvalue
