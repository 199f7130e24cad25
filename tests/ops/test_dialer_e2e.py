"""The outbound dialer end to end through the real server: BullMQ jobs in the real Redis,
the real leadline app (worker sidecar, callbacks, media path, SQL), and the fake Twilio
that places the call and plays the callee over a real Media Stream (`tests/telephony/
dialer/rig.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers import eventually
from tests.telephony.dialer.rig import BUSY, HUMAN, MACHINE, NOANSWER, Rig, contact, make_rig

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


async def test_machine_gets_the_voicemail(rig: Rig) -> None:
    job = await rig.add(contact(MACHINE))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == "voicemail_left", done.returnvalue
    call = rig.twilio.calls[done.returnvalue["callSid"]]
    assert call.closed_by_server  # we hung up after the message
    assert ("amd", "machine_end_beep", 204) in call.callbacks
    assert rig.server.runtime.dialer.observer.voicemails_left == 1


@pytest.mark.parametrize(("phone", "outcome"), [(BUSY, "busy"), (NOANSWER, "no_answer")])
async def test_unanswered(rig: Rig, phone: str, outcome: str) -> None:
    job = await rig.add(contact(phone))
    done = await rig.finished(job.id)
    assert done.returnvalue["outcome"] == outcome
    assert done.returnvalue["durationS"] == 0
