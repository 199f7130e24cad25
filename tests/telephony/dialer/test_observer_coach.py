"""A coached dial: the coach's objectives end up in the dial's detail (the call record)."""

from __future__ import annotations

from pathlib import Path

from agents.coach.core import CoachCore, CoachStats
from tests.fakes.clock import ManualClock
from tests.telephony.dialer.test_observer import StandInCall, observer


async def test_objectives_done_on_the_call_are_in_the_dial_detail(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    clock = ManualClock()
    coach = CoachCore(objectives=["Say who we are", "Propose two times"], clock=clock,
                      stats=CoachStats())
    call.context.coach = coach
    obs.call_started(call)  # type: ignore[arg-type]
    coach.request()
    clock.advance(31.0)
    coach.reply('{"objectives_done": ["Say who we are"], "next_step": "Propose times",'
                ' "say_next": "", "warning": null}')
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    record = await db.get_dial("k")
    await db.close()
    assert record.detail["coach"]["objectives"] == [
        {"objective": "Say who we are", "done": True, "at_s": 31.0},
        {"objective": "Propose two times", "done": False, "at_s": None},
    ]
    assert record.detail["coach"]["counts"] == {"requests": 1, "guidance": 1}
