"""A job redelivered after its process died, whose call ended while no process was up.

Found by `benchmarks/chaos.sh` (SIGKILL of `leadline serve` mid-dial): the call's final
status callback went to the dead process and Twilio does not send it again, so the
redelivered job attached to the dial and waited out max_call_s, failed, and BullMQ
retried it as a new attempt — a second call to the same person. Now the attached job
asks Twilio for the call's status and finishes with the one call it has.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job, Queue

from agents.compliance.settings import ComplianceSettings
from store.database import open_database
from telephony.dialer import worker
from telephony.dialer.leg import DialRequest
from telephony.dialer.service import DialerService
from telephony.dialer.settings import DialerSettings
from telephony.settings import TwilioSettings
from tests.helpers import eventually

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NOON_PT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


@dataclass
class TwilioKnows:
    """A placer that must not dial; Twilio's view of each call's status."""

    statuses: dict[str, str] = field(default_factory=dict)
    placed: list[DialRequest] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    async def place(self, request: DialRequest, base_url: str) -> str:
        self.placed.append(request)
        return "CA" + uuid.uuid4().hex

    async def hangup(self, call_sid: str) -> None:
        return None

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        return None

    async def status(self, call_sid: str) -> str:
        self.asked.append(call_sid)
        return self.statuses.get(call_sid, "in-progress")


@pytest.mark.parametrize("twilio_status", ["completed", "no-answer"])
async def test_redelivered_job_learns_the_end_from_twilio_and_never_dials_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twilio_status: str) -> None:
    monkeypatch.setattr(worker, "MEDIA_GRACE_S", 0.2)
    monkeypatch.setattr(worker, "STATUS_CHECK_S", 0.2)
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"dialer-redelivered-{uuid.uuid4().hex[:8]}"
    settings = DialerSettings(enabled=True, redis_url=REDIS_URL, queue=name,
                              caller_id="+14155550100", poll_s=0.1)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://leadline.example.com")
    placer = TwilioKnows()
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    queue = Queue(name, {"connection": REDIS_URL})
    try:
        data: dict[str, Any] = {"campaignId": "c", "step": 0,
                                "contact": {"firstName": "Ada", "phone": "+14155552671",
                                            "state": "CA"}}
        job = await queue.add("call", data, {"delay": 300})
        # What the worker that died had done: the dial recorded, Twilio's call placed and
        # (for the answered case) in progress; then nothing more reached SQL.
        key = f"bull:{name}:{job.id}:{job.timestamp}:0"
        sid = "CA" + uuid.uuid4().hex
        await db.reserve_dial(dial_key=key, queue=name, job_id=str(job.id), attempt=0,
                              phone="+14155552671", caller_id="+14155550100",
                              campaign_id="c", step=0, script="default")
        await db.dial_placed(key, sid)
        if twilio_status == "completed":
            await db.update_dial_status(sid, "in-progress")
        placer.statuses[sid] = twilio_status
        await service.start_worker()

        async def done() -> Job | None:
            j = await Job.fromId(queue, job.id)
            return j if j is not None and j.finishedOn else None

        finished = await eventually(done, "the redelivered job finished", limit_s=20,
                                    interval_s=0.05)
        assert finished.failedReason in (None, ""), finished.failedReason
        assert finished.returnvalue["callSid"] == sid
        assert placer.placed == [] and placer.asked[0] == sid
        record = await db.get_dial(key)
        assert record is not None and record.status == twilio_status
    finally:
        await service.stop()
        await queue.obliterate(force=True)
        await queue.close()
        await db.close()


async def test_placer_reads_the_status_twilio_has_now() -> None:
    """`TwilioCallPlacer.status` through the official SDK against the fake Twilio:
    ringing while the callee's phone rings, the final status once it is over, and an
    unknown SID a transient error (asked again later, never taken as an end)."""
    import asyncio

    from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio
    from telephony.dialer.leg import DialFailed, TwilioCallPlacer

    account, token = "AC" + "2" * 32, "status-token"
    fake = await FakeTwilio(account, token, script=CalleeScript(
        default=Callee(answer="busy", ring_ms=400))).start()
    placer = TwilioCallPlacer(account, token, base_url=fake.base_url, timeout_s=2.0)
    try:
        sid = await placer.place(DialRequest(to="+14155552671", from_="+14155550100",
                                             parameters={}, ring_timeout_s=25,
                                             time_limit_s=600), "https://x.example.com")
        assert await placer.status(sid) in ("queued", "initiated", "ringing")
        await eventually(lambda: fake.calls[sid].ended_at is not None, "the busy call ended")
        await asyncio.sleep(0.05)
        assert await placer.status(sid) == "busy"
        with pytest.raises(DialFailed) as info:
            await placer.status("CA" + "0" * 32)
        assert not info.value.permanent and info.value.status == 404
    finally:
        await placer.aclose()
        await fake.stop()


async def test_database_down_while_the_call_is_up_does_not_fail_the_job(tmp_path: Path) -> None:
    """Also from benchmarks/chaos.sh (PostgreSQL restarted mid-call): the worker's reads
    of the dial row failed while the call was up, the job failed, and BullMQ's retry was
    a new attempt — a second and a third call to the same person. Now it waits on."""
    import asyncio

    from store.errors import StoreUnavailable

    real = await open_database(f"sqlite:///{tmp_path}/d.db")

    class Flaky:
        down = False
        failures = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def get_dial(self, key: str) -> Any:
            if self.down:
                self.failures += 1
                raise StoreUnavailable("PostgreSQL at db lost during read: restarting")
            return await real.get_dial(key)

    db = Flaky()
    name = f"dialer-flaky-{uuid.uuid4().hex[:8]}"
    settings = DialerSettings(enabled=True, redis_url=REDIS_URL, queue=name,
                              caller_id="+14155550100", poll_s=0.1)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://leadline.example.com")
    placer = TwilioKnows()
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    queue = Queue(name, {"connection": REDIS_URL})
    await service.start_worker()
    try:
        data: dict[str, Any] = {"campaignId": "c", "step": 0,
                                "contact": {"firstName": "Ada", "phone": "+14155552671",
                                            "state": "CA"}}
        job = await queue.add("call", data, {"attempts": 3, "backoff": {"type": "fixed",
                                                                        "delay": 100}})
        await eventually(lambda: placer.placed, "the call placed")
        sid = (await eventually(lambda: real.get_dial(
            f"bull:{name}:{job.id}:{job.timestamp}:0"), "the dial row")).call_sid
        db.down = True
        await eventually(lambda: db.failures >= 3, "the worker read the row while SQL was down")
        await asyncio.sleep(0.3)
        db.down = False
        await real.update_dial_status(sid, "busy", outcome="busy", duration_s=0)
        service.waiters.notify(sid)

        async def done() -> Job | None:
            j = await Job.fromId(queue, job.id)
            return j if j is not None and j.finishedOn else None

        finished = await eventually(done, "the job finished", limit_s=20, interval_s=0.05)
        assert finished.returnvalue["outcome"] == "busy", finished.failedReason
        assert finished.attemptsMade <= 1 and len(placer.placed) == 1
    finally:
        await service.stop()
        await queue.obliterate(force=True)
        await queue.close()
        await real.close()
