"""The analysis builder: outcomes, the success rule, refusals, names, entities in the
business's zone, bounded work on huge transcripts, and fuzzed bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.analysis.record import (
    INBOUND_OUTCOMES,
    MAX_SUMMARY_CHARS,
    CallFacts,
    Question,
    build_analysis,
    is_refusal,
)

START = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York
QUESTIONS = [Question("name", "May I have your name?", True),
             Question("address", "What is the address?", True),
             Question("budget", "What is your budget?", False)]


def facts(*turns: tuple[str, str], **kw: object) -> CallFacts:
    base: dict[str, object] = {
        "call_sid": "CA1", "started_at": START, "caller_number": "+14155552671",
        "caller_number_valid": True, "business": "Joe's Plumbing", "industry": "plumbing",
        "zone": "America/New_York", "turns": list(turns), "questions": QUESTIONS,
        "new_caller": True}
    base.update(kw)
    return CallFacts(**base)  # type: ignore[arg-type]


def test_message_taken_call_is_a_success_with_entities_in_the_business_zone() -> None:
    a = build_analysis(facts(
        ("agent", "Joe's Plumbing, what is going on?"),
        ("caller", "Umm, it's Raj. The kitchen sink is leaking under the cabinet."),
        ("caller", "I'm at 12 Oak Street. Can someone come tomorrow at 9am?"),
        ("caller", "My cell is four one five, five five five, zero one nine nine."),
        answers={"name": "Umm, it's Raj.", "address": "I'm at 12 Oak Street."},
        priority="NORMAL", category="water_leak", problem="The kitchen sink is leaking"))
    assert a.outcome == "message_taken" and a.success
    assert a.caller_name == "Raj" and a.new_lead
    assert [p["value"] for p in a.entities["phones"]] == ["+14155550199"]
    # "tomorrow at 9am" in New York, from a call that started at 09:00 there.
    assert a.entities["dates"][0]["value"] == "2026-12-03T09:00:00-05:00"
    assert a.entities["addresses"][0]["value"].startswith("12 Oak Street")
    assert a.summary.startswith("NORMAL (water_leak), Raj:")
    assert "leaking" in a.summary and a.summary.endswith("Outcome: message taken.")
    assert a.summary_source == "extractive"
    assert a.answers["name"].question == "May I have your name?"


def test_caller_who_refuses_every_question_is_analysed_and_not_a_success() -> None:
    a = build_analysis(facts(
        ("agent", "May I have your name?"), ("caller", "I'd rather not say."),
        ("agent", "What is the address?"), ("caller", "None of your business."),
        ("agent", "What is your budget?"), ("caller", "No."),
        answers={"name": "I'd rather not say.", "address": "None of your business.",
                "budget": "No."}, priority="LOW"))
    assert all(x.refused for x in a.answers.values())
    assert a.outcome == "info_only" and not a.success
    assert a.caller_name == ""
    assert "rather not" not in a.summary


def test_required_answer_missing_fails_the_success_rule() -> None:
    a = build_analysis(facts(("caller", "My water heater is broken, no hot water."),
                             answers={"name": "Ann"}, priority="HIGH"))
    assert a.outcome == "message_taken" and not a.success
    assert "address" in a.success_reason


def test_no_callback_number_fails_the_success_rule() -> None:
    a = build_analysis(facts(("caller", "My water heater is broken."),
                             answers={"name": "Ann", "address": "1 Elm Street"},
                             priority="HIGH", caller_number="anonymous",
                             caller_number_valid=False))
    assert not a.success and "call back" in a.success_reason


def test_inbound_outcomes() -> None:
    assert build_analysis(facts(("agent", "Hello?"))).outcome == "abandoned"
    assert not build_analysis(facts(("agent", "Hello?"))).new_lead  # a hang-up is no lead
    t = build_analysis(facts(("caller", "Can I talk to a person?"), transferred=True))
    assert (t.outcome, t.success) == ("transferred", True)
    e = build_analysis(facts(("caller", "A pipe burst, water everywhere!"),
                             priority="URGENT", alerted=True))
    assert (e.outcome, e.success) == ("emergency_alerted", True)
    i = build_analysis(facts(("caller", "What are your opening hours?")))
    assert (i.outcome, i.success) == ("info_only", False)
    assert {t.outcome, e.outcome, i.outcome} <= set(INBOUND_OUTCOMES)


def test_without_a_flow_triage_sets_the_priority() -> None:
    a = build_analysis(facts(("caller", "Hi."), ("caller", "A pipe burst and my basement "
                                                          "is flooding."), questions=[]))
    assert a.priority == "URGENT" and a.outcome == "message_taken" and a.success


def test_outbound_outcomes_and_leads() -> None:
    booked = build_analysis(facts(("caller", "Sure, Tuesday at 3 works."),
                                  direction="outbound", dial_outcome="meeting_booked",
                                  new_caller=False))
    assert (booked.outcome, booked.success, booked.new_lead) == ("meeting_booked", True, True)
    cb = build_analysis(facts(("caller", "Call me back later."), direction="outbound",
                              dial_outcome="callback_requested"))
    assert cb.success and cb.new_lead
    no = build_analysis(facts(("caller", "Not interested."), direction="outbound",
                              dial_outcome="declined"))
    assert (no.success, no.new_lead) == (False, False)
    plain = build_analysis(facts(("caller", "Hello?"), direction="outbound"))
    assert plain.outcome == "completed"


def test_returning_and_unknown_callers_are_no_new_leads() -> None:
    turn = ("caller", "My sink is leaking.")
    assert not build_analysis(facts(turn, new_caller=False)).new_lead
    assert not build_analysis(facts(turn, new_caller=None)).new_lead
    assert build_analysis(facts(turn, new_caller=True)).new_lead


def test_model_summary_is_used_when_given() -> None:
    a = build_analysis(facts(("caller", "My sink is leaking.")),
                       summary="Ann called about a leaking sink.", summary_source="model")
    assert (a.summary, a.summary_source) == ("Ann called about a leaking sink.", "model")


def test_refusals() -> None:
    for text in ("No.", "I'd rather not say", "rather not say, sorry", "None of your business!",
                 "pass", "", "   ", "!!!"):
        assert is_refusal(text), text
    for text in ("Raj", "12 Oak Street", "No hot water since Monday", "Nora", "Noah"):
        assert not is_refusal(text), text


def test_bad_input_profanity_code_switching_nonsense() -> None:
    a = build_analysis(facts(
        ("caller", "This damn fucking pipe burst, goddammit, water everywhere!"),
        ("caller", "Mi casa está inundada, the basement está lleno de agua."),
        ("caller", "asdkjh qwpoe zzzz 🤬🤬 \x00\x07 ̷̢͓ ̶"),
        ("caller", 12345),  # type: ignore[arg-type]
        ("bogus",),  # type: ignore[arg-type]
        questions=[]))
    assert a.priority == "URGENT"
    msgspec.json.encode(a)  # always serialisable


def test_huge_transcript_is_bounded() -> None:
    long = ("Hi, it's Maria Lopez. A pipe burst at 12 Oak Street, come tomorrow at 9am, "
            "call 415 555 0199. ") * 500
    f = facts(*[("caller", long)] * 5_000)
    build_analysis(facts(("caller", "warm up tomorrow at 9")))
    started = time.process_time()
    a = build_analysis(f)
    assert time.process_time() - started < 30  # bounded work; the figure is in the README
    assert len(a.summary) <= MAX_SUMMARY_CHARS
    assert a.caller_turns == 200
    assert all(len(v) <= 16 for v in a.entities.values())


TURN = st.tuples(st.sampled_from(["caller", "agent", "system", ""]),
                 st.text(max_size=300))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=st.lists(TURN, max_size=8),
       answers=st.dictionaries(st.text(max_size=10), st.text(max_size=80), max_size=4),
       direction=st.sampled_from(["inbound", "outbound"]),
       priority=st.one_of(st.none(), st.sampled_from(["LOW", "NORMAL", "HIGH", "URGENT",
                                                      "bogus"])),
       dial=st.one_of(st.none(), st.text(max_size=20)))
def test_fuzz_builder_never_raises(turns: list[tuple[str, str]], answers: dict[str, str],
                                   direction: str, priority: str | None,
                                   dial: str | None) -> None:
    a = build_analysis(facts(*turns, answers=answers, direction=direction,
                             priority=priority, dial_outcome=dial))
    assert a.priority in ("LOW", "NORMAL", "HIGH", "URGENT")
    assert len(a.summary) <= MAX_SUMMARY_CHARS
    if direction == "inbound":
        assert a.outcome in INBOUND_OUTCOMES
    assert isinstance(a.success, bool)
    msgspec.json.encode(a)


def test_required_fields_heard_elsewhere_count() -> None:
    said = "Hi, this is Raj Patel. My water heater is leaking at 12 Oak Street."
    a = build_analysis(facts(("caller", said), priority="HIGH", category="water_leak"))
    assert a.caller_name == "Raj Patel" and a.success, a.success_reason
