"""The queue consumer against the real Redis (bullmq) and a real SQLite store, with the
Twilio leg replaced by a scripted placer: what each kind of job and each provider answer
becomes, without a media server. The status a call reaches is written to the store the
way the callbacks write it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job, Queue

from agents.compliance.settings import ComplianceSettings
from store.database import Database, open_database
from telephony.dialer.leg import DialFailed, DialRequest
from telephony.dialer.service import DialerService
from telephony.dialer.settings import DialerSettings
from telephony.settings import TwilioSettings
from tests.helpers import eventually

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PHONE = "+14155552671"
NOON_PT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


@dataclass
class ScriptedPlacer:
    """Answers each place() with the next scripted result: a status to end the call
    with (the call is 'placed'), or an exception to raise."""

    db: Database
    results: list[Any] = field(default_factory=list)
    requests: list[DialRequest] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    service: DialerService | None = None
    # What find() reports Twilio holds (a create that timed out but was placed), and how
    # that call ends.
    found: str | None = None
    lookups: int = 0

    async def place(self, request: DialRequest, base_url: str) -> str:
        self.requests.append(request)
        result = self.results.pop(0) if self.results else "busy"
        if isinstance(result, BaseException):
            raise result
        sid = "CA" + uuid.uuid4().hex
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self._end(sid, result)))
        return sid

    async def _end(self, sid: str, status: str) -> None:
        for _ in range(100):  # the worker records the SID just after place() returns
            if await self.db.get_dial_by_call_sid(sid) is not None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        await self.db.update_dial_status(sid, status, outcome=status.replace("-", "_"),  # type: ignore[attr-defined]
                                         duration_s=0)
        assert self.service is not None
        self.service.waiters.notify(sid)

    async def hangup(self, call_sid: str) -> None:
        self.hangups.append(call_sid)

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        self.lookups += 1
        if self.found is None:
            return None
        sid = "CA" + uuid.uuid4().hex
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self._end(sid, self.found or "busy")))
        return sid


@dataclass
class Setup:
    service: DialerService
    placer: ScriptedPlacer
    queue: Queue
    db: Database
    clock: list[datetime]

    async def finished(self, job_id: str, limit_s: float = 20) -> Job:
        async def done() -> Job | None:
            job = await Job.fromId(self.queue, job_id)
            return job if job is not None and job.finishedOn else None

        return await eventually(done, f"job {job_id} finished", limit_s=limit_s,
                                interval_s=0.05)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"dialer-unit-{uuid.uuid4().hex[:8]}"
    settings = DialerSettings(enabled=True, redis_url=REDIS_URL, queue=name,
                              caller_id="+14155550100", poll_s=0.1, max_job_bytes=4096)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://leadline.example.com")
    placer = ScriptedPlacer(db)
    clock = [NOON_PT]
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: clock[0], placer=placer)
    placer.service = service
    queue = Queue(name, {"connection": REDIS_URL})
    await service.start_worker()
    try:
        yield Setup(service, placer, queue, db, clock)
    finally:
        await service.stop()
        await queue.obliterate(force=True)
        await queue.close()
        await db.close()


def data(phone: str = PHONE, **extra: Any) -> dict[str, Any]:
    return {"campaignId": "c", "step": 0,
            "contact": {"firstName": "Ada", "phone": phone, "state": "CA"}, **extra}


async def test_dial_and_outcome(setup: Setup) -> None:
    setup.placer.results = ["busy"]
    job = await setup.queue.add("call", data(), {})
    done = await setup.finished(job.id)
    assert done.returnvalue["outcome"] == "busy"
    request = setup.placer.requests[0]
    assert request.to == PHONE and request.from_ == "+14155550100"
    assert request.parameters["DialKey"] == f"bull:{setup.queue.name}:{job.id}:{job.timestamp}:0"
    assert setup.service.stats.job_to_dial_ms  # measured


@pytest.mark.parametrize(("payload", "reason"), [
    ({"contact": {"phone": 4155552671}}, "invalid job data: Expected `str`, got `int`"),
    ({"contact": {}}, "invalid job data: Object missing required field `phone`"),
    ({}, "invalid job data: Object missing required field `contact`"),
    ([1, 2], "invalid job data: expected an object"),
    ({"contact": {"phone": "not a number"}}, "invalid phone number"),
    ({"contact": {"phone": "+1 555 0100"}}, "invalid phone number"),
    ({"contact": {"phone": PHONE}, "step": "two"}, "invalid job data: Expected `int | null`"),
    ({"contact": {"phone": PHONE, "firstName": "x" * 500}},
     "invalid job data: contact.firstName longer than 200"),
    ({"contact": {"phone": PHONE}, "blob": "x" * 10_000}, "invalid job data: "),
    ({"contact": {"phone": PHONE}, "via": "carrier-pigeon"}, "invalid job data: via"),
    ({"contact": {"phone": PHONE}, "via": "livekit"}, "via livekit"),
])
async def test_bad_jobs_fail_without_retry(setup: Setup, payload: Any, reason: str) -> None:
    job = await setup.queue.add("call", payload, {"attempts": 3})
    done = await setup.finished(job.id)
    assert done.failedReason.startswith(reason), done.failedReason
    assert done.attemptsMade == 1
    assert setup.placer.requests == []


async def test_unknown_job_name_fails_and_worker_goes_on(setup: Setup) -> None:
    bad = await setup.queue.add("email", data(), {"attempts": 5})
    good = await setup.queue.add("call", data(), {})
    assert (await setup.finished(bad.id)).failedReason.startswith("unknown job name 'email'")
    assert (await setup.finished(good.id)).returnvalue["outcome"] == "busy"


async def test_dnc_and_opt_out_fail_as_do_not_call(setup: Setup) -> None:
    await setup.db.dnc_add([PHONE])
    other = "+14155552690"
    await setup.db.add_consent_event(other, "opt_out", "sms", "STOP")
    a = await setup.queue.add("call", data(), {"attempts": 2})
    b = await setup.queue.add("call", data(other), {"attempts": 2})
    assert (await setup.finished(a.id)).failedReason == "do not call: on the DNC list"
    assert (await setup.finished(b.id)).failedReason == "do not call: opted out"
    assert setup.placer.requests == []


async def test_outside_hours_is_delayed_then_dialed_when_the_clock_allows(setup: Setup) -> None:
    setup.clock[0] = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)  # 03:00 in California
    job = await setup.queue.add("call", data(), {})

    async def delayed() -> bool:
        return await (await Job.fromId(setup.queue, job.id)).isDelayed()  # type: ignore[union-attr]

    await eventually(delayed, "job moved back to delayed", limit_s=10)
    assert setup.placer.requests == []
    stored = await Job.fromId(setup.queue, job.id)
    # Due at the next window opening: 08:00 PT (16:00 UTC) is five hours after the clock.
    assert stored.delay == pytest.approx(5 * 3600 * 1000, abs=5000)  # type: ignore[union-attr]
    assert not stored.failedReason  # type: ignore[union-attr]
    setup.clock[0] = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)
    await stored.promote()  # type: ignore[union-attr]
    done = await setup.finished(job.id)
    assert done.returnvalue["outcome"] == "busy" and len(setup.placer.requests) == 1


async def test_twilio_4xx_fails_for_good_5xx_and_timeouts_retry(setup: Setup) -> None:
    setup.placer.results = [DialFailed("twilio 400: 21211 invalid To", permanent=True,
                                       status=400, code=21211)]
    refused = await setup.queue.add("call", data(), {"attempts": 3})
    done = await setup.finished(refused.id)
    assert done.failedReason.startswith("twilio refused the call: twilio 400: 21211")
    assert done.attemptsMade == 1
    setup.placer.results = [
        DialFailed("twilio 503: 20503 unavailable", permanent=False, status=503),
        DialFailed("twilio unreachable: TimeoutError()", permanent=False),
        "no-answer",
    ]
    flaky = await setup.queue.add("call", data(), {"attempts": 3})
    done = await setup.finished(flaky.id)
    assert done.returnvalue["outcome"] == "no_answer" and done.attemptsMade == 3
    dials = await setup.db.list_dials(flaky.id)  # type: ignore[attr-defined]
    # The timed-out attempt was looked up at Twilio (nothing placed) before dialing again.
    assert [d.status for d in dials] == ["refused", "refused", "no-answer"]
    assert setup.placer.lookups == 1
    assert "placed no call" in (dials[1].error or "")


async def test_a_timed_out_create_that_was_placed_is_adopted(setup: Setup) -> None:
    setup.placer.results = [DialFailed("twilio unreachable: TimeoutError()", permanent=False)]
    setup.placer.found = "no-answer"
    job = await setup.queue.add("call", data(), {"attempts": 3})
    done = await setup.finished(job.id)
    assert len(setup.placer.requests) == 1  # dialed once; the retry adopted that call
    assert done.attemptsMade == 2 and done.returnvalue["callSid"].startswith("CA")
    dials = await setup.db.list_dials(job.id)  # type: ignore[attr-defined]
    assert [d.status for d in dials] == ["refused", "no-answer"]
    assert done.returnvalue["outcome"] == "no_answer"
    assert "adopted by a later attempt" in (dials[0].error or "")


async def test_a_reserved_dial_without_call_is_never_redialed(setup: Setup) -> None:
    """A worker died between committing the key and Twilio's answer: the redelivered job
    (same attempt) must not dial again."""
    await setup.service.stop()
    job = await setup.queue.add("call", data(), {"attempts": 3})
    await setup.db.reserve_dial(  # type: ignore[attr-defined]
        dial_key=f"bull:{setup.queue.name}:{job.id}:{job.timestamp}:0", queue=setup.queue.name,
        job_id=job.id, attempt=0, phone=PHONE, caller_id="+14155550100")
    await setup.service.start_worker()
    done = await setup.finished(job.id)
    assert done.failedReason.startswith("dial state unknown")
    assert setup.placer.requests == []


async def test_long_calls_keep_their_lock(tmp_path: Path) -> None:
    """A call longer than the lock: bullmq renews it, the job is not redelivered."""
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"dialer-lock-{uuid.uuid4().hex[:8]}"
    settings = DialerSettings(enabled=True, redis_url=REDIS_URL, queue=name,
                              caller_id="+14155550100", poll_s=0.1, lock_duration_ms=1000,
                              stalled_interval_ms=1000)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://x.example.com")
    placer = ScriptedPlacer(db)
    ends: list[str] = []

    async def slow_place(request: DialRequest, base_url: str) -> str:
        placer.requests.append(request)
        sid = "CA" + uuid.uuid4().hex
        ends.append(sid)
        return sid

    placer.place = slow_place  # type: ignore[method-assign]
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    queue = Queue(name, {"connection": REDIS_URL})
    stalled: list[str] = []
    await service.start_worker()
    service.dialer.worker.on("stalled", lambda job_id, *a: stalled.append(job_id))
    try:
        job = await queue.add("call", data(), {})
        await eventually(lambda: ends, "dialed", limit_s=10)
        await asyncio.sleep(3.5)  # three lock durations
        await db.update_dial_status(ends[0], "in-progress", at=datetime.now(UTC))  # type: ignore[attr-defined]
        await db.update_dial_status(ends[0], "completed", duration_s=3)  # type: ignore[attr-defined]
        await db.finish_dial_media(ends[0], outcome="declined", detail={})  # type: ignore[attr-defined]
        service.waiters.notify(ends[0])
        done = await Setup(service, placer, queue, db, [NOON_PT]).finished(job.id)
        assert done.returnvalue["outcome"] == "declined"
        assert stalled == [] and len(placer.requests) == 1
    finally:
        await service.stop()
        await queue.obliterate(force=True)
        await queue.close()
        await db.close()


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        DialerSettings(concurrency=0)
    with pytest.raises(ValueError):
        DialerSettings(webhook_url="https://x", webhook_secret="")
    with pytest.raises(ValueError):
        DialerSettings(default_script="nope")
    assert timedelta(seconds=DialerSettings().max_call_s) > timedelta(minutes=5)
