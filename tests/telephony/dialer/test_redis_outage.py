"""Redis down and back under a running dialer: our own redis-server on a free port (never
the shared one), stopped for longer than the worker's blocking wait, then restarted on
the same port. Jobs added afterwards must be dialed; the worker must not have died.

The Node library's tracker has had several "worker never resumes after a Redis outage"
bugs (taskforcesh/bullmq #648, #2964, #4585 — an outage longer than drainDelay); this
is the test that would show the Python port having one.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job, Queue

from agents.compliance.settings import ComplianceSettings
from store.database import open_database
from telephony.dialer.service import DialerService
from telephony.dialer.settings import DialerSettings
from telephony.settings import TwilioSettings
from tests.helpers import eventually
from tests.telephony.dialer.test_worker import NOON_PT, ScriptedPlacer, data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    def __init__(self, port: int, directory: Path, *, persist: bool = False) -> None:
        self.port = port
        self.directory = directory
        # persist: every write in an append-only file, fsynced, so a killed server
        # comes back with its data (a crash, not a wipe).
        self.persist = persist
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is required for the outage test"
        self.proc = await asyncio.create_subprocess_exec(
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always",
            "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

        async def up() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(up, "own redis-server accepting connections", limit_s=10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(_free_port(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_jobs_are_dialed_after_redis_comes_back(redis: OwnRedis, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{redis.port}/0"
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"outage-{uuid.uuid4().hex[:6]}"
    settings = DialerSettings(enabled=True, redis_url=url, queue=name,
                              caller_id="+14155550100", poll_s=0.1)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://x.example.com")
    placer = ScriptedPlacer(db)
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    placer.service = service
    await service.start_worker()

    async def finished(queue: Queue, job_id: str) -> Job:
        async def done() -> Job | None:
            job = await Job.fromId(queue, job_id)
            return job if job is not None and job.finishedOn else None

        return await eventually(done, f"job {job_id} finished", limit_s=45, interval_s=0.2)

    try:
        queue = Queue(name, {"connection": url})
        before = await queue.add("call", data(), {})
        assert (await finished(queue, before.id)).returnvalue["outcome"] == "busy"
        await queue.close()

        await redis.stop()
        await asyncio.sleep(7.0)  # longer than the worker's blocking wait (drainDelay 5 s)
        await redis.start()  # empty: the data is gone with the old server

        queue = Queue(name, {"connection": url})
        after = await queue.add("call", data(), {})
        done = await finished(queue, after.id)
        assert done.returnvalue["outcome"] == "busy"
        assert len(placer.requests) == 2
        await queue.close()
    finally:
        await service.stop()
        await db.close()


class HeldPlacer(ScriptedPlacer):
    """Places calls that stay up until the test ends them (`end`)."""

    async def place(self, request: Any, base_url: str) -> str:
        self.requests.append(request)
        return "CA" + uuid.uuid4().hex

    async def end(self, sid: str, status: str = "busy") -> None:
        await self.db.update_dial_status(sid, status, outcome=status, duration_s=0)  # type: ignore[attr-defined]
        assert self.service is not None
        self.service.waiters.notify(sid)


async def test_redis_down_while_a_call_is_up_loses_nothing_and_dials_once(
        tmp_path: Path) -> None:
    """Redis dies (SIGKILL; its append-only file keeps every write) while a job's call is
    up, the call ends during the outage, so the worker cannot record the completion;
    Redis comes back with the job still active under a lapsed lock. The stalled job is
    redelivered, attaches to its dial row and completes with the call's outcome: one
    call placed, the job completed, not failed."""
    redis = OwnRedis(_free_port(), tmp_path, persist=True)
    await redis.start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"outage-mid-{uuid.uuid4().hex[:6]}"
    settings = DialerSettings(enabled=True, redis_url=url, queue=name,
                              caller_id="+14155550100", poll_s=0.1,
                              lock_duration_ms=2000, stalled_interval_ms=1000)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://x.example.com")
    placer = HeldPlacer(db)
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    placer.service = service
    await service.start_worker()
    queue = Queue(name, {"connection": url})
    try:
        job = await queue.add("call", data(), {})
        await eventually(lambda: db.list_dials(job.id), "the dial is placed", limit_s=20)
        [dial] = await eventually(
            lambda: _placed(db, job.id), "the dial has its call", limit_s=20)
        await queue.close()
        await redis.stop()
        await placer.end(dial.call_sid)  # the call ends while Redis is away
        await asyncio.sleep(4.0)  # the worker's completion fails; its lock lapses
        await redis.start()
        queue = Queue(name, {"connection": url})

        async def done() -> Job | None:
            fresh = await Job.fromId(queue, job.id)
            return fresh if fresh is not None and fresh.finishedOn else None

        finished = await eventually(done, "the job finished", limit_s=60, interval_s=0.2)
        assert finished.returnvalue and finished.returnvalue["outcome"] == "busy", (
            finished.returnvalue, finished.failedReason)
        assert not finished.failedReason
        assert len(placer.requests) == 1  # nothing doubled
        assert (await queue.getJobCounts("failed", "wait", "active")) == {
            "failed": 0, "wait": 0, "active": 0}
        assert service.stats.attached >= 1
        await queue.close()
    finally:
        await service.stop()
        await db.close()
        await redis.stop()


async def _placed(db: Any, job_id: str) -> list[Any] | None:
    dials = [d for d in await db.list_dials(job_id) if d.call_sid]
    return dials or None
