"""Caller memory: one reading of what we know about a caller, for every brain and channel."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents import memory
from agents.brain import CallContext
from agents.memory import ASK_NAME_NOTE, Known, NameListener, NewCaller, Unknown


def test_the_three_cases_round_trip_through_the_call_context() -> None:
    for case in (Known("Maria Lopez"), NewCaller(), Unknown()):
        ctx = CallContext(call_sid="CA1", caller_name=memory.remember(case))
        assert ctx.memory == case
    assert memory.recall("  Maria   Lopez ") == Known("Maria Lopez")
    # Whitespace is no name and no lookup answer either.
    assert memory.recall("   ") == Unknown()


@given(st.one_of(st.none(), st.text(max_size=80)))
def test_recall_never_fails_and_a_known_name_is_never_blank(raw: str | None) -> None:
    case = memory.recall(raw)
    if isinstance(case, Known):
        assert case.name and case.name == " ".join(case.name.split())
    assert memory.recall(memory.remember(case)) == case


def test_a_lookup_answer_is_known_or_new_and_flags_the_session() -> None:
    assert memory.from_lookup("Maria") == Known("Maria")
    assert memory.from_lookup(None) == NewCaller()
    assert memory.from_lookup(" ") == NewCaller()
    assert memory.session_flag(Known("Maria")) == "returning_caller"
    assert memory.session_flag(NewCaller()) == "new_caller"


def test_greetings() -> None:
    hello = "Thanks for calling."
    assert memory.greeting(Known("Ana"), hello, "Who is this?") == (
        "Welcome back, Ana. Thanks for calling.")
    assert memory.greeting(NewCaller(), hello, "Who is this?") == (
        "Thanks for calling. Who is this?")
    assert memory.greeting(NewCaller(), hello, "  ") == hello
    assert memory.greeting(Unknown(), hello, "Who is this?") == hello
    long = memory.greeting(Known("A" * 200), hello)
    assert long == f"Welcome back, {'A' * memory.MAX_GREETING_NAME_CHARS}. {hello}"


def test_instructions_for_a_model() -> None:
    assert "welcome them back, Ana" in memory.instructions_note(Known("Ana"))
    assert memory.instructions_note(NewCaller()) == ASK_NAME_NOTE
    assert memory.instructions_note(Unknown()) == ""
    assert memory.known_fact(Known("Ana")) == "The caller's name is Ana."
    assert memory.known_fact(NewCaller()) == memory.known_fact(Unknown()) == ""


def test_a_lone_name_counts_only_right_after_the_question() -> None:
    ear = NameListener()
    assert ear.caller_said("Maria.") is None  # nobody asked
    ear.agent_said("May I have your name, please?")
    assert ear.caller_said("Maria.") == "Maria"
    assert ear.caller_said("Maria.") is None  # the question covers one turn only
    assert ear.caller_said("my name is Maria Lopez") == "Maria Lopez"


def test_the_listener_stops_once_a_name_is_known() -> None:
    ear = NameListener("Ana")
    ear.agent_said("What is your name?")
    assert ear.caller_said("my name is Maria") is None
    fresh = NameListener()
    fresh.named("Maria")
    assert fresh.caller_said("my name is Beth") is None and fresh.name == "Maria"
