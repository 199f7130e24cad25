"""A call's priority, safety line and capture questions, without I/O."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.business.flow import CallFlow, rank
from agents.business.settings import BusinessSettings
from agents.nlu.triage import PRIORITIES


def _plumber(**extra: object) -> BusinessSettings:
    return msgspec.convert({
        "name": "Joe's Plumbing", "industry": "plumbing", "plan": "PRO",
        "questions": [
            {"text": "May I have your name?", "field": "name", "required": True,
             "essential_for_emergency": True},
            {"text": "What is your budget?", "field": "budget"},
            {"text": "What is the address?", "field": "address",
             "essential_for_emergency": True},
        ], **extra}, BusinessSettings)


def test_burst_pipe_is_urgent_without_a_safety_line() -> None:
    flow = CallFlow(_plumber())
    out = flow.caller_turn("A pipe burst in the basement and water is everywhere")
    assert (out.priority, out.raised, out.safety_line) == ("URGENT", True, None)
    assert flow.emergency and not flow.life_safety and flow.category == "water_leak"


def test_gas_gives_the_safety_line_once_and_the_call_stays_urgent() -> None:
    flow = CallFlow(_plumber(), caller_number="+14155552671")
    first = flow.caller_turn("I smell gas in the kitchen")
    assert first.safety_line and "911" in first.safety_line
    again = flow.caller_turn("it's really strong, I smell gas everywhere")
    assert again.safety_line is None
    calm = flow.caller_turn("what are your hours on Saturday?")
    assert calm.priority == "URGENT" and not calm.raised
    assert flow.summary()["number"] == "+14155552671"
    assert "gas" in flow.summary()["problem"]


def test_urgent_listener_fires_once_from_rules_or_model() -> None:
    flow = CallFlow(_plumber())
    fired: list[str] = []
    flow.on_urgent.append(lambda f: fired.append(f.priority))
    flow.caller_turn("the toilet is running a bit")
    assert fired == []
    flow.caller_turn("now a pipe burst and the basement is flooding")
    flow.caller_turn("a pipe burst again")
    assert flow.set_priority("URGENT", "still flooding") is False
    assert fired == ["URGENT"]
    model = CallFlow(_plumber())
    model.on_urgent.append(lambda f: fired.append("model"))
    assert model.set_priority("HIGH", "water near the panel") is True
    assert model.set_priority("NORMAL") is False and model.priority == "HIGH"
    assert model.set_priority("URGENT", "sparks now") is True
    assert fired == ["URGENT", "model"]
    with pytest.raises(ValueError):
        model.set_priority("CRITICAL")


def test_questions_in_order_and_answers_are_the_next_turn() -> None:
    flow = CallFlow(_plumber())
    flow.caller_turn("Hi, I need a quote for a new water heater")
    q = flow.next_question()
    assert q is not None and q.field == "name"
    assert flow.caller_turn("Ana Lopez").answer.text == "Ana Lopez"  # type: ignore[union-attr]
    assert flow.next_question().field == "budget"  # type: ignore[union-attr]
    flow.caller_turn("about two thousand dollars")
    assert flow.next_question().field == "address"  # type: ignore[union-attr]
    flow.caller_turn("12 Main Street")
    assert flow.next_question() is None
    assert {k: a.text for k, a in flow.answers.items()} == {
        "name": "Ana Lopez", "budget": "about two thousand dollars", "address": "12 Main Street"}


def test_on_an_emergency_only_essential_questions_are_left() -> None:
    flow = CallFlow(_plumber())
    flow.caller_turn("there is water pouring through the ceiling, a pipe burst")
    asked = []
    while (q := flow.next_question()) is not None:
        asked.append(q.field)
        flow.caller_turn("answer")
    assert asked == ["name", "address"]


@given(st.lists(st.text(max_size=200), max_size=8))
def test_priority_never_goes_down(turns: list[str]) -> None:
    flow = CallFlow(_plumber())
    seen = 0
    for text in turns:
        flow.caller_turn(text)
        assert rank(flow.priority) >= seen
        seen = rank(flow.priority)
        assert flow.priority in PRIORITIES


def test_a_model_asking_in_its_own_words_sets_the_pending_question() -> None:
    flow = CallFlow(_plumber())
    assert flow.agent_said("Thanks for calling, how can I help?") is None
    q = flow.agent_said("Sure! And may I have your name, please?")
    assert q is not None and q.field == "name"
    flow.caller_turn("Ana")
    assert flow.agent_said("Got it. What is the address of the home?").field == "address"
    flow.caller_turn("12 Main Street")
    assert {k: a.text for k, a in flow.answers.items()} == {"name": "Ana",
                                                            "address": "12 Main Street"}
    assert flow.agent_said("May I have your name?") is None  # asked already
