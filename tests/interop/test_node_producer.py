"""A real Node BullMQ producer against our Python worker: the interop the dialer promises.

`producer.mjs` (npm `bullmq`, pinned by package-lock.json, installed by `.ci/run` with
`npm ci`) adds jobs exactly as a sales tool would and listens on `QueueEvents`; our
worker runs them through the real server against the fake callee. Node must see
`completed` with our returnvalue and `failed` with our reasons. Without node_modules the
test fails where services are required (CI) — a skip there would hide the missing
install — and is skipped with the command to run elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.telephony.dialer.rig import HUMAN, REDIS_URL, Rig, contact, make_rig

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
DNC_PHONE = "+14155552680"


def _require_node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (HERE / "node_modules" / "bullmq").is_dir():
        missing = "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`"
    if missing:
        if os.environ.get("LEADLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as r:
        yield r


async def run_producer(node: str, rig: Rig, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = {"redis": REDIS_URL, "queue": rig.queue.name, "prefix": "bull",
            "timeoutMs": 90_000, "jobs": jobs}
    proc = await asyncio.create_subprocess_exec(
        node, str(HERE / "producer.mjs"), json.dumps(spec), cwd=HERE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"producer exited {proc.returncode}: {err.decode()[-2000:]}"
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def test_node_sees_our_returnvalue_and_failed_reasons(rig: Rig) -> None:
    node = _require_node()
    await rig.server.runtime.persistence.db.dnc_add([DNC_PHONE], reason="asked by email")
    lines = await run_producer(node, rig, [
        {"name": "call", "data": contact(HUMAN), "opts": {"attempts": 3}},
        {"name": "call", "data": contact("+1 555 0100"), "opts": {"attempts": 3}},
        {"name": "call", "data": contact(DNC_PHONE), "opts": {"attempts": 3}},
        {"name": "sms", "data": contact(HUMAN), "opts": {"attempts": 3}},
    ])
    ids = {line["index"]: line["added"] for line in lines if "added" in line}
    events = {line["jobId"]: line for line in lines if "event" in line}
    human = events[ids[0]]
    assert human["event"] == "completed", human
    value = human["returnvalue"]
    assert value["outcome"] == "declined" and value["callSid"].startswith("CA")
    assert set(value) == {"outcome", "callSid", "durationS", "transcriptUrl", "meeting",
                          "declineReason", "objections"}
    assert events[ids[1]]["event"] == "failed"
    assert events[ids[1]]["failedReason"].startswith("invalid phone number")
    assert events[ids[2]]["event"] == "failed"
    assert events[ids[2]]["failedReason"].startswith("do not call")
    assert events[ids[3]]["failedReason"].startswith("unknown job name")
    # Unrecoverable: failed on the first attempt although the producer allowed three.
    for index in (1, 2, 3):
        job = await rig.job(ids[index])
        assert job.attemptsMade == 1, (index, job.attemptsMade)
    assert rig.twilio.creates == 1  # only the valid, callable job was dialed
