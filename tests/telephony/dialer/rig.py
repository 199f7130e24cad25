"""The dialer's test rig: the real leadline app with its dialer sidecar on the real Redis,
a fake Twilio that plays the callees, and a BullMQ queue handle to add and read jobs.

The compliance gate's clock is pinned to a weekday noon on the US west coast, so the
quiet-hour rules give the same answer whenever the suite runs; a test may move it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from bullmq import Job, Queue

from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio
from tests.helpers import AUTH_TOKEN, Server, eventually, start_server

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ACCOUNT = "AC" + "0" * 32
CALLER_ID = "+14155550100"
HUMAN = "+14155552671"
MACHINE = "+14155552672"
BUSY = "+14155552673"
NOANSWER = "+14155552674"
# Talks for a while: three lines, each after the agent has answered the last.
LONG = "+14155552675"
# Says hello, then agrees to a time.
BOOKER = "+14155552676"
# A phone menu that wants "2", then a person.
IVR = "+14155552677"
# A phone menu whose option ("9") the agent does not find.
IVR_STUCK = "+14155552678"
# A machine Twilio's AMD cannot tell ("unknown"): our own detector hears the beep.
MACHINE_UNKNOWN = "+14155552679"
# A person Twilio's AMD cannot tell, who says what recorders say too.
NOT_AVAILABLE = "+14155552680"
# Two menus (2 for the front desk's menu, then 3 for the desk itself), then a person.
IVR2 = "+14155552681"
IVR2_MENU1 = "Thank you for calling Bay Dental. For billing press 1. For appointments press 2."
IVR2_MENU2 = "For the nurse line press 4. To reach the front desk press 3."
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


@contextlib.asynccontextmanager
async def make_rig(tmp_path: Path, env: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    script = CalleeScript(numbers={
        HUMAN: Callee(answer="human", lines=["Hello, front desk."], max_s=20),
        MACHINE: Callee(answer="machine", max_s=25),
        MACHINE_UNKNOWN: Callee(answer="machine", amd="unknown", max_s=25),
        NOT_AVAILABLE: Callee(answer="human", amd="unknown", max_s=20,
                              lines=["He is not available right now."]),
        BUSY: Callee(answer="busy"),
        NOANSWER: Callee(answer="no-answer"),
        IVR_STUCK: Callee(answer="ivr", ivr_digit="9", ivr_repeats=2, max_s=45),
        IVR: Callee(answer="ivr", max_s=45, lines=["Front desk, this is Sam."]),
        IVR2: Callee(answer="ivr", max_s=60, menu=IVR2_MENU1, ivr_digit="2",
                     menu2=IVR2_MENU2, ivr_digit2="3", lines=["Front desk, this is Sam."]),
        BOOKER: Callee(answer="human", max_s=40,
                       lines=["Hello, front desk.", "Sure, Tuesday at 3 works."]),
        LONG: Callee(answer="human", max_s=40, lines=[
            "Hello, front desk.", "Who is calling, please?", "I see. Tell me more."]),
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
        **(env or {}),
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
