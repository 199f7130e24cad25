"""The outbound dialer end to end through the real server: BullMQ jobs in the real Redis,
the real leadline app (worker sidecar, callbacks, media path, SQL), and the fake Twilio
that places the call and plays the callee over a real Media Stream.

The compliance gate's clock is pinned to a weekday noon on the US west coast, so the
quiet-hour rules give the same answer whenever the suite runs; the outside-hours test
moves it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from bullmq import Job, Queue

from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio
from tests.helpers import AUTH_TOKEN, Server, eventually, start_server

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ACCOUNT = "AC" + "0" * 32
CALLER_ID = "+14155550100"
HUMAN = "+14155552671"
MACHINE = "+14155552672"
BUSY = "+14155552673"
NOANSWER = "+14155552674"
NOON_PT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)  # Tuesday 12:00 in California


@dataclass
class Rig:
    server: Server
    twilio: FakeTwilio
    queue: Queue
    clock: list[datetime]

    async def add(self, data: dict[str, Any], name: str = "call", **opts: Any) -> Job:
        return await self.queue.add(name, data, opts)

    async def job(self, job_id: str) -> Job:
        job = await Job.fromId(self.queue, job_id)
        assert job is not None
        return job

    async def finished(self, job_id: str, limit_s: float = 40.0) -> Job:
        async def done() -> Job | None:
            job = await Job.fromId(self.queue, job_id)
            return job if job is not None and job.finishedOn else None

        return await eventually(done, f"job {job_id} finished", limit_s=limit_s,
                                interval_s=0.1)


def contact(phone: str, **kw: str) -> dict[str, Any]:
    return {"campaignId": "spring", "step": 1,
            "contact": {"firstName": "Ada", "lastName": "Lovelace", "phone": phone,
                        "email": "ada@example.com", "state": "CA",
                        "practiceName": "Bay Dental", **kw}}


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    script = CalleeScript(numbers={
        HUMAN: Callee(answer="human", lines=["Hello, front desk."], max_s=20),
        MACHINE: Callee(answer="machine", max_s=25),
        BUSY: Callee(answer="busy"),
        NOANSWER: Callee(answer="no-answer"),
    })
    twilio = await FakeTwilio(ACCOUNT, AUTH_TOKEN, script=script).start()
    queue_name = f"dialer-test-{uuid.uuid4().hex[:8]}"
    server, runner = await start_server({
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_DIALER_ENABLED": "true",
        "LEADLINE_DIALER_REDIS_URL": REDIS_URL,
        "LEADLINE_DIALER_QUEUE": queue_name,
        "LEADLINE_DIALER_CALLER_ID": CALLER_ID,
        "LEADLINE_DIALER_POLL_S": "0.2",
        "LEADLINE_BRAIN_KIND": "scripted",
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
    })
    runtime = server.runtime
    # Twilio must call back the port the server got; public_url is read at each dial.
    runtime.config = msgspec.structs.replace(
        runtime.config, twilio=msgspec.structs.replace(runtime.config.twilio,
                                                       public_url=server.url))
    clock = [NOON_PT]
    runtime.dialer.dialer.now = lambda: clock[0]
    queue = Queue(queue_name, {"connection": REDIS_URL})
    try:
        yield Rig(server, twilio, queue, clock)
    finally:
        await runner.cleanup()
        await queue.obliterate(force=True)
        await queue.close()
        await twilio.stop()


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
