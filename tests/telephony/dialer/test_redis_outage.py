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
    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is required for the outage test"
        self.proc = await asyncio.create_subprocess_exec(
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
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
