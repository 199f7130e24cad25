"""The coach end to end: the real server, a real call, the fake Realtime and Chat services.

`sim_call` places an inbound call (`[coach] inbound = true` makes it a coached
call) against the server in this process; the Realtime brain talks to
`ops.dev.fake_realtime`, the coach to `ops.dev.fake_llm` (both through the real
`openai` SDK). The coach's schedule is a stepped clock the test moves 15 s at a
time while the call runs in real time, so "every 15 s" is checked exactly without
waiting for it. What the fake Realtime service received is the evidence that
the guidance reached the live session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.coach.core import COACH_PROMPT_MARK
from agents.coach.task import coach_breaker
from ops.coach import Coaching
from ops.dev.fake_llm import FakeLlmRunner, Rule, serve_fake_llm
from ops.dev.fake_llm import Script as LlmScript
from ops.dev.fake_realtime import (
    FakeRealtime,
    FakeRealtimeRunner,
    Script,
    Turn,
    serve_fake_realtime,
)
from ops.dev.sim import SimOptions, SimResult, sim_call
from tests.audio import speech_ulaw
from tests.helpers import AUTH_TOKEN, Server, calls_closed, eventually, start_server

pytestmark = pytest.mark.e2e

GREETING = "Hi, thanks for calling."
CALLER = "What time do you open tomorrow?"
REPLY = "We open at nine."


class SteppedSchedule:
    """The coach's clock, moved only by the test (`advance`); sleepers wake when due."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + delay, future))
        await future

    def advance(self, delta: float) -> None:
        self.t += delta
        waiting = []
        for at, future in self._sleepers:
            if at <= self.t:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((at, future))
        self._sleepers = waiting


@dataclass
class Rig:
    server: Server
    realtime: FakeRealtime
    llm: FakeLlmRunner
    schedule: SteppedSchedule

    @property
    def coaching(self) -> Coaching:
        return self.server.runtime.coaching  # type: ignore[no-any-return]

    def coach_requests(self) -> list[dict[str, Any]]:
        return [b for b in self.llm.fake.received
                if str(b["messages"][0]["content"]).startswith(COACH_PROMPT_MARK)]

    def guidance_items(self) -> list[str]:
        return [e["item"]["content"][0]["text"]
                for e in self.realtime.received_of("conversation.item.create")
                if e["item"].get("role") == "system"]


@asynccontextmanager
async def coach_rig(tmp_path: Path, llm_script: LlmScript | None = None) -> AsyncIterator[Rig]:
    coach_breaker.reset()
    script = Script(greeting=GREETING, turns=(Turn(transcript=CALLER, reply=REPLY),))
    realtime: FakeRealtimeRunner = await serve_fake_realtime(0, script)
    llm = await serve_fake_llm(0, llm_script)
    server, runner = await start_server({
        "LEADLINE_BRAIN_KIND": "openai",
        "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": realtime.websocket_base_url,
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        "LEADLINE_COACH_ENABLED": "true",
        "LEADLINE_COACH_INBOUND": "true",
        "LEADLINE_COACH_BASE_URL": llm.base_url,
        "LEADLINE_COACH_TIMEOUT_S": "1.0",
    })
    schedule = SteppedSchedule()
    server.runtime.coaching.schedule = lambda: schedule
    try:
        yield Rig(server, realtime.fake, llm, schedule)
    finally:
        await runner.cleanup()
        await llm.cleanup()
        await realtime.cleanup()
        coach_breaker.reset()


def start_call(rig: Rig) -> asyncio.Task[SimResult]:
    # The caller waits 2.5 s after the greeting, speaks once, then stays on the line ~6 s
    # ("w" is a pause) before the sim hangs up: time to step the coach through the call.
    options = SimOptions(url=rig.server.url, auth_token=AUTH_TOKEN, audio=speech_ulaw(CALLER),
                         dtmf="w" * 20, hangup_after_s=30.0, quiet_s=2.5)
    return asyncio.ensure_future(sim_call(options))


async def the_coach(rig: Rig) -> Any:
    return await eventually(lambda: next(iter(rig.coaching.live.values()), None),
                            "the call got a coach")


async def test_guidance_reaches_the_live_session_every_15_s_of_coach_time(
        tmp_path: Path) -> None:
    async with coach_rig(tmp_path) as rig:
        sim = start_call(rig)
        task = await the_coach(rig)
        core = task.core
        await eventually(lambda: core.has_news, "the greeting reached the coach")
        assert rig.coach_requests() == []  # nothing before the first 15 s
        rig.schedule.advance(15.0)
        first = await eventually(rig.guidance_items, "the first guidance reached the session")
        assert len(rig.coach_requests()) == 1

        # 15 s more with nothing new said: no request at all.
        assert not core.has_news, "the caller spoke before the idle slot could be checked"
        rig.schedule.advance(15.0)
        await eventually(lambda: core.counts.get("skipped_idle") == 1, "the idle slot")
        assert len(rig.coach_requests()) == 1 and len(rig.guidance_items()) == 1

        # The caller speaks: the next slot asks again, with the caller's words in it.
        await eventually(lambda: core.has_news, "the caller's turn reached the coach",
                         limit_s=15.0)
        rig.schedule.advance(15.0)
        await eventually(lambda: len(rig.guidance_items()) == 2, "the second guidance")
        result = await sim
        await calls_closed(rig.server)
        await rig.coaching.stop()
        db = rig.server.runtime.persistence.db
        (audit,) = await db.list_audit(call_sid=result.call_sid, kind="coach")

    requests = rig.coach_requests()
    assert len(requests) == 2
    assert GREETING in requests[0]["messages"][1]["content"]
    assert CALLER in requests[1]["messages"][1]["content"]
    assert requests[0]["response_format"] == {"type": "json_object"}
    # The item is the GA system message (the fake checked it with the SDK's types) ...
    assert first[0].startswith("[Coach guidance, private")
    assert "Next step: Work on: " in first[0]
    assert not rig.realtime.refused and rig.realtime.errors_sent == 0
    # ... and guidance never asked for a response: the greeting and the answer only.
    assert len(rig.realtime.received_of("response.create")) == 2
    assert result.responses == 2 and result.protocol_errors == 0
    # Objectives ticked off by the coach (the fake ticks one a request) are on the record.
    assert audit.detail["done"] == 2
    assert audit.detail["total"] == 6  # the built-in sales script's checklist
    assert [o["done"] for o in audit.detail["objectives"]][:3] == [True, True, False]
    assert audit.detail["counts"] == {"requests": 2, "guidance": 2, "skipped_idle": 1}


async def test_a_coach_that_times_out_or_answers_garbage_is_skipped_and_the_call_goes_on(
        tmp_path: Path) -> None:
    llm_script = LlmScript(rules=(
        Rule(match=CALLER.lower()[:20], delay_s=30.0),  # the second request: too slow
        Rule(match="agent: " + GREETING[:10], reply="Sure! Ask them about their carrier."),
    ))
    async with coach_rig(tmp_path, llm_script) as rig:
        sim = start_call(rig)
        task = await the_coach(rig)
        core = task.core
        await eventually(lambda: core.has_news, "the greeting reached the coach")
        rig.schedule.advance(15.0)
        await eventually(lambda: core.counts.get("skipped_not_json") == 1, "garbage skipped")
        await eventually(lambda: core.has_news, "the caller's turn reached the coach",
                         limit_s=15.0)
        rig.schedule.advance(15.0)
        await eventually(lambda: core.counts.get("failed_timeout") == 1, "timeout skipped",
                         limit_s=5.0)
        result = await sim
        await calls_closed(rig.server)

    assert len(rig.coach_requests()) == 2
    assert rig.guidance_items() == []
    # The call went on as if there were no coach.
    assert result.responses == 2 and result.protocol_errors == 0
    said = [e["transcript"]
            for e in rig.realtime.emitted_of("response.output_audio_transcript.done")]
    assert said == [GREETING, REPLY]
