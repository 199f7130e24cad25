"""The coach's asyncio shell on virtual time: its schedule, its timeout, its breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from agents.chat.llm import LlmError
from agents.coach.core import CoachCore, CoachStats
from agents.coach.task import CoachTask, LoopSchedule
from agents.realtime.breaker import CircuitBreaker
from tests.fakes.clock import VirtualTime

GOOD = msgspec.json.encode({"objectives_done": ["Introduce yourself"],
                            "next_step": "Ask about the carrier", "say_next": "", "warning": ""
                            }).decode()


class FakeClient:
    """An in-process `LlmClient`: answers, hangs or fails as the test says."""

    def __init__(self, *answers: str | float | LlmError) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[float, Sequence[dict[str, str]]]] = []

    async def complete(self, messages: Sequence[dict[str, str]], *, json_mode: bool) -> str:
        assert json_mode
        self.asked.append((asyncio.get_running_loop().time(), messages))
        answer = self.answers.pop(0) if self.answers else GOOD
        if isinstance(answer, LlmError):
            raise answer
        if isinstance(answer, float):
            await asyncio.sleep(answer)  # a coach that is slow to answer
            return GOOD
        return answer


def rig(client: FakeClient, breaker: CircuitBreaker | None = None
        ) -> tuple[CoachTask, list[tuple[float, str]]]:
    schedule = LoopSchedule()
    core = CoachCore(objectives=["Introduce yourself", "Propose a time"], interval_s=15.0,
                     clock=schedule.now, stats=CoachStats())
    notes: list[tuple[float, str]] = []
    task = CoachTask(core, client, lambda n: notes.append((schedule.now(), n)),
                     timeout_s=2.0, schedule=schedule,
                     breaker=breaker or CircuitBreaker(failures=3, cooldown_s=60.0))
    return task, notes


async def test_guidance_every_15_s_while_the_call_talks(virtual_time: VirtualTime) -> None:
    client = FakeClient()
    task, notes = rig(client)
    task.start()
    for second in range(60):  # someone says something every second for a minute
        task.core.heard("caller" if second % 2 else "agent", f"line {second}")
        await asyncio.sleep(1.0)
    await task.aclose()
    times = [round(t - virtual_time.start, 3) for t, _ in notes]
    assert times == [15.0, 30.0, 45.0, 60.0][: len(times)] and len(times) >= 3
    assert task.core.done == {"Introduce yourself": 15.0}
    assert "Propose a time" in notes[-1][1]


async def test_no_request_when_nothing_new_was_said(virtual_time: VirtualTime) -> None:
    client = FakeClient()
    task, notes = rig(client)
    task.start()
    task.core.heard("agent", "Hello?")
    await asyncio.sleep(601.0)  # ten silent minutes after one line (40 slots)
    assert len(client.asked) == 1 and len(notes) == 1
    assert task.core.counts["skipped_idle"] == 39
    task.core.heard("caller", "Sorry, I'm back.")
    await asyncio.sleep(15.0)
    assert len(client.asked) == 2
    await task.aclose()


async def test_a_slow_coach_is_cut_at_the_timeout_and_the_next_slot_goes_on(
        virtual_time: VirtualTime) -> None:
    client = FakeClient(30.0)  # the first answer would take 30 s
    task, notes = rig(client)
    task.start()
    task.core.heard("agent", "Hi")
    await asyncio.sleep(15.0 + 2.0 + 0.001)
    assert notes == [] and task.core.counts["failed_timeout"] == 1
    task.core.heard("caller", "Hello")
    await asyncio.sleep(15.0)
    assert len(notes) == 1  # the next slot was on time and answered
    assert round(notes[0][0] - virtual_time.start, 3) == 30.0
    await task.aclose()


async def test_garbage_and_errors_are_skipped(virtual_time: VirtualTime) -> None:
    client = FakeClient("not json at all", LlmError("http_5xx", "HTTP 503"), GOOD)
    task, notes = rig(client)
    task.start()
    await asyncio.sleep(1.0)
    for _ in range(3):  # a line at 1, 16 and 31 s: new each 15 s slot
        task.core.heard("caller", "words")
        await asyncio.sleep(15.0)
    await task.aclose()
    assert len(notes) == 1
    assert task.core.counts == {"requests": 3, "skipped_not_json": 1, "failed_http_5xx": 1,
                                "guidance": 1}


async def test_a_coach_that_keeps_failing_is_left_alone_until_the_cooldown(
        virtual_time: VirtualTime) -> None:
    breaker = CircuitBreaker(failures=3, window_s=120.0, cooldown_s=60.0,
                             clock=asyncio.get_running_loop().time)
    client = FakeClient(*[LlmError("connection", "refused")] * 3)
    task, notes = rig(client, breaker)
    task.start()
    for _ in range(8):  # 120 s of talk
        task.core.heard("caller", "words")
        await asyncio.sleep(15.0)
    await task.aclose()
    # Three failures open the breaker; slots are skipped without a request for the
    # cooldown, then one probe goes out, answers, and the coach is back.
    assert len(client.asked) < 8
    assert task.core.counts["skipped_breaker_open"] >= 3
    assert notes, "the coach came back after the cooldown"


async def test_cancelled_with_the_call_even_mid_request(virtual_time: VirtualTime) -> None:
    client = FakeClient(1.5)
    task, notes = rig(client)
    running = task.start()
    task.core.heard("caller", "hi")
    await asyncio.sleep(15.5)  # the request is out
    await task.aclose()
    assert running.cancelled() and notes == []


async def test_a_failing_delivery_does_not_end_the_coach(virtual_time: VirtualTime) -> None:
    client = FakeClient()
    schedule = LoopSchedule()
    core = CoachCore(objectives=["A"], interval_s=15.0, clock=schedule.now, stats=CoachStats())

    def deliver(note: str) -> None:
        raise RuntimeError("brain gone")

    task = CoachTask(core, client, deliver, timeout_s=2.0, schedule=schedule,
                     breaker=CircuitBreaker())
    running = task.start()
    await asyncio.sleep(1.0)
    for _ in range(2):
        core.heard("caller", "hi")
        await asyncio.sleep(15.0)
    assert len(client.asked) == 2 and not running.done()
    await task.aclose()
