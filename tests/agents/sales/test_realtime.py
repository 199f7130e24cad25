"""A sales call on the realtime brain: the script reaches the session, through the real
`openai` SDK, against the fake Realtime service."""

from __future__ import annotations

from agents.brain import CallContext
from agents.realtime.brain import RealtimeBrain
from agents.realtime.breaker import CircuitBreaker
from agents.sales.follower import SalesFollower
from agents.sales.script import builtin_script
from ops.dev.fake_realtime import Script
from tests.agents.realtime.conftest import (  # noqa: F401 - the fixture
    CALL_SID,
    RecordingOutput,
    eventually,
    fake_factory,
    settings_for,
)


async def test_the_script_is_in_the_session_instructions(fake_factory) -> None:  # noqa: F811
    runner = await fake_factory(Script(greeting="Hi Ada.", speed=0))
    context = CallContext(call_sid=CALL_SID, direction="outbound", to_number="+14155552671")
    context.sales = SalesFollower(builtin_script(), {"firstName": "Ada",
                                                     "practiceName": "Bay Dental"})
    brain = RealtimeBrain(settings_for(runner), breaker=CircuitBreaker())
    out = RecordingOutput()
    try:
        await brain.start(context, out)
        await eventually(lambda: runner.fake.received_of("response.create"))
        (update,) = runner.fake.received_of("session.update")
        instructions = update["session"]["instructions"]
        assert "This is a sales call for Practice Benchmark" in instructions
        assert "licensed insurance agent" in instructions and "AI disclosure" in instructions
        assert "Bay Dental" in instructions
        create = runner.fake.received_of("response.create")[0]
        assert ("Hi Ada, this is Alex, an automated assistant calling for Practice "
                "Benchmark.") in str(create)
    finally:
        await brain.close()


async def test_a_sales_call_is_offered_the_booking_tools(fake_factory) -> None:  # noqa: F811
    runner = await fake_factory(Script(greeting="Hi Ada.", speed=0))
    context = CallContext(call_sid=CALL_SID, direction="outbound", to_number="+14155552671")
    context.sales = SalesFollower(builtin_script(), {"firstName": "Ada"})
    brain = RealtimeBrain(settings_for(runner), breaker=CircuitBreaker())
    try:
        await brain.start(context, RecordingOutput())
        await eventually(lambda: runner.fake.received_of("session.update"))
        (update,) = runner.fake.received_of("session.update")
        names = [t["name"] for t in update["session"]["tools"]]
        assert {"check_availability", "book_meeting"} <= set(names)
        assert len(names) == len(set(names))
    finally:
        await brain.close()
    # Not on a call without a script.
    plain = RealtimeBrain(settings_for(runner), breaker=CircuitBreaker())
    try:
        await plain.start(CallContext(call_sid="CA2"), RecordingOutput())
        assert "book_meeting" not in plain.registry
    finally:
        await plain.close()
