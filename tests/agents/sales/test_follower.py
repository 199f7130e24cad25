"""The keyless brain's stage follower: stages by keywords, objections, AI disclosure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sales.follower import MAX_TURNS, SalesFollower
from agents.sales.script import STAGES, builtin_script

ADA = {"firstName": "Ada", "practiceName": "Bay Dental", "state": "CA",
       "email": "ada@bay.example", "phone": "+14155552671"}


def follower(contact: dict[str, object] | None = None) -> SalesFollower:
    return SalesFollower(builtin_script(), ADA if contact is None else contact)


def test_walks_every_stage_to_the_close() -> None:
    f = follower()
    opening = f.opening()
    assert opening.startswith("Hi Ada, this is Alex, an automated assistant calling for "
                              "Practice Benchmark.")
    assert "Bay Dental" in opening and f.stage == "intro"
    seen = [f.stage]
    for reply in ("Sure, go ahead.", "Yes, I handle that.", "Okay, maybe.",
                  "Thursday works."):
        said = f.caller_turn(reply)
        assert said and "{" not in said
        seen.append(f.stage)
    assert seen == list(STAGES[1:])
    assert f.done and "ada@bay.example" in said
    assert f.caller_turn("Thanks, bye.") is None
    assert f.objections == [] and f.decline_reason is None


def test_a_reply_without_the_stage_keywords_gets_the_retry() -> None:
    f = follower()
    f.opening()
    assert f.caller_turn("Hmm.") == builtin_script().stages.intro.retry
    assert f.stage == "intro"


def test_objections_are_handled_in_place_and_recorded_once() -> None:
    f = follower()
    f.opening()
    f.caller_turn("Sure.")
    said = f.caller_turn("We already have insurance.")
    assert said is not None and "compare" in said and f.stage == "qualify"
    said = f.caller_turn("Can you bring lunch though?")
    assert said is not None and "food-delivery credit" in said
    said = f.caller_turn("Like I said we already have insurance.")
    assert said is not None and "compare" in said  # answered again, not recorded again
    assert f.objections == ["competitor", "lunch"]
    assert "pharmaceutical" in (f.caller_turn("We don't see reps.") or "")
    assert "free" in (f.caller_turn("What does it cost?") or "")
    assert "right person" in (f.caller_turn("That needs approval from my manager.") or "")
    assert f.objections == ["competitor", "lunch", "no_reps", "price", "authority"]
    assert not f.done


@pytest.mark.parametrize("question", ["Are you a robot?", "Wait, is this a recording?",
                                      "Am I talking to a real person?", "are you AI"])
def test_ai_disclosure_whenever_asked(question: str) -> None:
    f = follower()
    f.opening()
    f.caller_turn("Sure.")
    stage = f.stage
    said = f.caller_turn(question)
    assert said is not None and "AI assistant" in said and "Practice Benchmark" in said
    assert f.stage == stage and not f.done


def test_interest_jumps_to_scheduling() -> None:
    f = follower()
    f.opening()
    assert "Tuesday or Thursday" in (f.caller_turn("Oh that sounds interesting.") or "")
    assert f.stage == "schedule"


def test_a_plain_no_declines_politely() -> None:
    f = follower()
    f.opening()
    said = f.caller_turn("No thanks, we're not interested.")
    assert said is not None and said.startswith("I understand. Thank you for your time, Ada")
    assert f.done and f.decline_reason == "No thanks, we're not interested."
    assert f.caller_turn("bye") is None


def test_an_objection_first_then_the_no() -> None:
    f = follower()
    f.opening()
    assert f.caller_turn("No thanks, we already have insurance.") is not None
    assert not f.done and f.objections == ["competitor"]
    f.caller_turn("No, really, not interested.")
    assert f.done and f.decline_reason


def test_opt_out_says_nothing_the_dialer_says_goodbye() -> None:
    f = follower()
    f.opening()
    assert f.caller_turn("Don't call us again.") is None
    assert f.done and f.decline_reason == "do not call"


def test_missing_contact_fields_are_not_spoken() -> None:
    f = follower({"firstName": None, "practiceName": "null"})
    opening = f.opening()
    assert opening.startswith("Hi, this is Alex, an automated assistant")
    assert "your practice" in opening and "None" not in opening and "{" not in opening
    said = f.caller_turn("not interested")
    assert said == "I understand. Thank you for your time, and have a good day."


def test_a_conversation_going_nowhere_ends() -> None:
    f = follower()
    f.opening()
    for _ in range(MAX_TURNS):
        f.caller_turn("hmm")
    assert not f.done
    assert f.caller_turn("hmm") is not None and f.done
    assert f.summary()["declineReason"] == "no commitment"


TURN = st.one_of(st.text(max_size=200), st.sampled_from([
    "fuck off", "ya tenemos seguro", "are you a robot", "yes", "no", "what does it cost",
    "Tuesday", "sounds good", "not interested", "stop calling", "", "   ", "🙂",
    "we already have insurance pero gracias", "ok ok ok", "{firstName}"]))


@given(st.lists(TURN, max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_conversation_never_crashes(turns: list[str]) -> None:
    f = follower()
    assert f.opening()
    for turn in turns:
        said = f.caller_turn(turn)
        assert said is None or (isinstance(said, str) and said and "{" not in said
                                and "None" not in said)
        assert f.stage in STAGES
    assert len(f.objections) == len(set(f.objections))
    summary = f.summary()
    assert summary["stage"] == f.stage and summary["objections"] == f.objections
