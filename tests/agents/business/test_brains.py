"""The brains on a business call: scripted questions and safety line, realtime injection."""

from __future__ import annotations

from agents.brain import CallContext
from agents.business.flow import CallFlow
from agents.business.prompt import for_business
from agents.memory import Known
from agents.realtime.protocol import SessionConfig
from agents.scripted import ScriptedCore, Speak, StopSpeaking
from agents.settings import OpenAISettings, ScriptedSettings
from agents.tools import ToolContext
from agents.tools.builtin import set_priority
from tests.agents.business.test_flow import _plumber
from tests.agents.realtime.test_protocol import created, done, opened, sent, speak, types

LINE = "Please leave the building now and call 911."


def _spoken(actions: tuple[object, ...]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Speak)]


def test_scripted_asks_questions_in_order_after_the_greeting() -> None:
    flow = CallFlow(_plumber(greeting="Joe's Plumbing here."))
    core = ScriptedCore(ScriptedSettings())
    assert _spoken(core.begin("", flow.business, flow)) == ["Joe's Plumbing here."]
    asked = [_spoken(core.turn_ended())[0] for _ in range(4)]
    assert asked == ["May I have your name?", "What is your budget?", "What is the address?",
                     ScriptedSettings().reply]


def test_scripted_speaks_the_safety_line_at_once_then_only_essentials() -> None:
    flow = CallFlow(_plumber())
    core = ScriptedCore(ScriptedSettings())
    core.begin(None, flow.business, flow)
    out = flow.caller_turn("I smell gas")
    actions = core.safety(out.safety_line or "")
    assert isinstance(actions[0], StopSpeaking) and actions[0].item_id is None
    assert _spoken(actions) == [out.safety_line]
    assert [_spoken(core.turn_ended())[0] for _ in range(2)] == [
        "May I have your name?", "What is the address?"]
    assert core.safety("") == ()


def test_realtime_injects_the_line_into_its_next_response() -> None:
    session, _, _ = opened()
    created(session, "resp_greet")
    done(session, "resp_greet")
    speak(session)
    sent(session)
    session.commit()
    assert types(sent(session)) == ["input_audio_buffer.commit", "response.create"]
    created(session, "resp_1")
    session.instruct_next(f"Say first: {LINE}")
    assert types(sent(session)) == ["response.cancel"]
    done(session, "resp_1", status="cancelled")
    (create,) = sent(session)
    assert create["type"] == "response.create"
    assert LINE in create["response"]["instructions"]
    # Only the next response carries it.
    created(session, "resp_2")
    done(session, "resp_2")
    speak(session)
    sent(session)
    session.commit()
    later = [e for e in sent(session) if e["type"] == "response.create"]
    assert later and LINE not in str(later[0].get("response"))


def test_realtime_session_speaks_for_the_business() -> None:
    business = _plumber(greeting="Joe's Plumbing, how can we help?", voice="cedar",
                        hours={"mon": "08:00-17:00"})
    config = SessionConfig.for_call(OpenAISettings(), CallContext("CA1"))
    mine = for_business(config, business, Known("Ana"))
    assert mine.voice == "cedar"
    assert mine.greeting == "Welcome back, Ana. Joe's Plumbing, how can we help?"
    assert "Joe's Plumbing" in mine.instructions and "911" in mine.instructions
    order = [mine.instructions.index(t) for t in
             ("May I have your name?", "What is your budget?", "What is the address?")]
    assert order == sorted(order)
    assert config.instructions in mine.instructions


class _Out:
    def end_call(self, reason: str) -> None: ...
    def transfer_call(self, number: str) -> None: ...
    def send_dtmf(self, digits: str) -> None: ...
    def caller_named(self, name: str) -> None: ...


def test_set_priority_tool_raises_the_call_priority() -> None:
    flow = CallFlow(_plumber())
    ctx = CallContext("CA1", business=flow.business, flow=flow)
    tool_ctx = ToolContext(ctx, _Out(), after_reply=lambda a: None)
    result = set_priority.func(tool_ctx, priority="HIGH", reason="water near the panel")
    assert "HIGH" in result and flow.priority == "HIGH"
    assert "stays HIGH" in set_priority.func(tool_ctx, priority="LOW")
    assert set_priority.definition()["name"] == "set_priority"
    args = set_priority.definition()["parameters"]["properties"]["priority"]
    assert sorted(args["enum"]) == ["HIGH", "LOW", "NORMAL", "URGENT"]


def test_no_business_means_no_priority_tool_use() -> None:
    ctx = ToolContext(CallContext("CA1"), _Out(), after_reply=lambda a: None)
    try:
        set_priority.func(ctx, priority="HIGH")
    except Exception as exc:
        assert "no business" in str(exc)
    else:
        raise AssertionError("set_priority without a business must refuse")


