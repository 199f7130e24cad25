"""ChatAgent decisions: rules-only templates, LLM refinement, and every failure falling back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.chat.agent import (
    BusinessInfo,
    ChatAgent,
    LeadView,
    ThreadMessage,
    build_messages,
    parse_llm_output,
)
from agents.chat.llm import LlmError
from agents.chat.reply import fact_violations
from agents.chat.settings import SmsSettings
from agents.nlu.intents import INTENTS, IntentResult

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
BOOKING = "https://cal.example.com/acme"
BUSINESS = BusinessInfo(name="Acme Roofing", facts="Free inspections. Repairs from $250. "
                        "Open Mon-Fri 8am-6pm.", booking_url=BOOKING)
LEAD = LeadView(first_name="Dana", last_name="Cole", phone="+15125550100", status="contacted",
                attributes={"roof_age": "20 years"})
THREAD = [ThreadMessage("outbound", "Hi Dana, still thinking about that roof repair?", NOW)]


def clock() -> datetime:
    return NOW


class ScriptedLlm:
    """An LlmClient that answers from a list, or raises what it is given."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[Sequence[dict[str, str]]] = []

    async def complete(self, messages: Sequence[dict[str, str]], *, json_mode: bool) -> str:
        self.calls.append(messages)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _json(intent: str, reply: str, confidence: float = 0.8) -> str:
    return json.dumps({"intent": intent, "confidence": confidence, "reply": reply})


async def _decide(text: str, llm: ScriptedLlm | None = None, *, lead: LeadView = LEAD,
                  thread: Sequence[ThreadMessage] = THREAD,
                  settings: SmsSettings | None = None) -> tuple[ChatAgent, object]:
    agent = ChatAgent(settings or SmsSettings(), llm, clock)
    return agent, await agent.decide(BUSINESS, lead, thread, text)


# rules only ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, action", [
    ("STOP", "opt_out"), ("stop texting me", "opt_out"), ("START", "opt_in"), ("HELP", "help"),
])
async def test_consent_intents_write_no_reply(text: str, action: str) -> None:
    llm = ScriptedLlm()
    _, d = await _decide(text, llm)
    assert d.action == action and d.intent == action
    assert d.reply is None and d.segments == 0 and not d.used_llm
    assert llm.calls == []  # consent never goes to a model


async def test_interested_shares_booking_link_and_hands_off() -> None:
    _, d = await _decide("yes I'm interested")
    assert (d.intent, d.action, d.new_status, d.handoff) == ("interested", "reply",
                                                             "interested", True)
    assert BOOKING in d.reply and "Dana" in d.reply
    assert d.segments >= 1 and d.encoding == "GSM-7" and not d.used_llm


async def test_booking_is_status_interested_not_booked() -> None:
    _, d = await _decide("tuesday at 3 works")
    assert (d.intent, d.new_status, d.handoff) == ("booking", "interested", True)
    assert BOOKING in d.reply


async def test_bare_yes_from_a_lead_in_a_thread_is_interest() -> None:
    _, d = await _decide("Yes")
    assert (d.intent, d.action) == ("interested", "reply")
    _, opted = await _decide("Yes", lead=msgspec.structs.replace(LEAD, status="opted_out"))
    assert opted.action == "opt_in"


@pytest.mark.parametrize("text, intent", [
    ("not interested", "not_interested"), ("wrong number", "wrong_number"),
])
async def test_refusals_close_politely_and_stop(text: str, intent: str) -> None:
    _, d = await _decide(text)
    assert (d.intent, d.action, d.new_status, d.handoff) == (intent, "stop", intent, False)
    assert d.reply and BOOKING not in d.reply


async def test_question_without_llm_is_templated_and_handed_off() -> None:
    _, d = await _decide("how much does it cost?")
    assert (d.intent, d.action, d.handoff, d.new_status) == ("question", "reply", True, None)
    assert "Acme Roofing" in d.reply


async def test_opted_out_lead_gets_nothing_from_the_agent() -> None:
    lead = msgspec.structs.replace(LEAD, status="opted_out")
    _, d = await _decide("how much is it?", ScriptedLlm(), lead=lead)
    assert d.action == "none" and d.reply is None


async def test_no_booking_url_uses_the_handoff_template() -> None:
    agent = ChatAgent(SmsSettings(), None, clock)
    business = BusinessInfo(name="Acme Roofing")
    d = await agent.decide(business, LEAD, THREAD, "sounds good")
    assert "{booking_url}" not in d.reply and "http" not in d.reply
    assert "reach out" in d.reply


async def test_settings_fill_in_business_defaults_and_templates() -> None:
    settings = SmsSettings(business_name="Bob's Pools", booking_url="https://bob.example/book",
                           templates={"interested": "Hey {first_name}! {booking_url}"})
    agent = ChatAgent(settings, None, clock)
    lead = LeadView(first_name=None, phone="+15125550100")
    d = await agent.decide(BusinessInfo(name=""), lead, [], "sure")
    assert d.reply == "Hey there! https://bob.example/book"


async def test_the_same_text_is_never_sent_twice_in_a_row() -> None:
    agent, first = await _decide("lol")
    assert first.action == "reply" and first.reply
    thread = [*THREAD, ThreadMessage("inbound", "lol"), ThreadMessage("outbound", first.reply)]
    d = await agent.decide(BUSINESS, LEAD, thread, "lol")
    assert d.action == "handoff" and d.reply is None and d.handoff
    assert agent.counters["repeat_suppressed"] == 1


async def test_unicode_reply_reports_ucs2() -> None:
    settings = SmsSettings(templates={"unknown": "Merci {first_name} 🙂"})
    _, d = await _decide("🤷", settings=settings)
    assert d.encoding == "UCS-2" and d.segments == 1


# with a model ----------------------------------------------------------------------------


async def test_llm_reply_is_used_and_sees_the_context() -> None:
    llm = ScriptedLlm(_json("question", "Repairs start at $250, and inspections are free!"))
    agent, d = await _decide("how much for a repair?", llm)
    assert d.used_llm and d.reply == "Repairs start at $250, and inspections are free!"
    assert d.intent == "question" and not d.handoff
    messages = llm.calls[0]
    system = messages[0]["content"]
    assert "Acme Roofing" in system and "Repairs from $250" in system and BOOKING in system
    assert "Dana" in system and "roof_age: 20 years" in system
    assert messages[1] == {"role": "assistant", "content": THREAD[0].body}
    assert messages[-1] == {"role": "user", "content": "how much for a repair?"}
    assert agent.counters["llm_ok"] == 1
    assert agent.llm_seconds.count == 1


async def test_llm_refines_a_weak_intent_but_not_a_sure_one() -> None:
    llm = ScriptedLlm(_json("interested", "Great, grab a time here: " + BOOKING, 0.85))
    _, weak = await _decide("hmm maybe, my wife wants it done", llm)
    assert (weak.intent, weak.confidence, weak.new_status) == ("interested", 0.85, "interested")
    llm = ScriptedLlm(_json("interested", "Great!"))
    _, sure = await _decide("not interested", llm)
    assert sure.intent == "not_interested" and sure.action == "stop"


async def test_llm_booking_reply_gets_the_link_appended() -> None:
    llm = ScriptedLlm(_json("booking", "Happy to set that up, Dana!"))
    _, d = await _decide("can I book", llm)
    assert d.used_llm and d.reply == f"Happy to set that up, Dana! {BOOKING}"


async def test_price_invention_is_rejected() -> None:
    llm = ScriptedLlm(_json("question", "A full replacement is $8,500 with 15% off!"))
    agent, d = await _decide("how much for a new roof?", llm)
    assert not d.used_llm and "$8,500" not in d.reply
    assert d.reply == SmsSettings().template("question").format(
        first_name="Dana", business_name="Acme Roofing")
    assert d.fallback_reason.startswith("unsupported claim")
    assert agent.counters["reply_rejected_facts"] == 1


@pytest.mark.parametrize("failure, counter", [
    (LlmError("timeout", "slow"), "llm_timeout"),
    (LlmError("http_5xx", "500"), "llm_http_5xx"),
    (LlmError("empty", "none"), "llm_empty"),
    (LlmError("connection", "refused"), "llm_connection"),
    ('{"intent": "question", "reply": "half', "llm_malformed"),
    ('{"intent": "question"}', "llm_malformed"),
    ("[1, 2]", "llm_malformed"),
    ('"just a string"', None),
])
async def test_llm_failures_fall_back_to_templates(failure: str | Exception,
                                                   counter: str | None) -> None:
    agent, d = await _decide("how much does it cost?", ScriptedLlm(failure))
    assert d.action == "reply" and d.reply and d.intent == "question"
    if counter is not None:
        assert not d.used_llm and agent.counters[counter] == 1
        assert d.reply == SmsSettings().template("question").format(
            first_name="Dana", business_name="Acme Roofing")


async def test_plain_text_answer_is_the_reply() -> None:
    llm = ScriptedLlm("Assistant: \"We're open Mon-Fri 8am-6pm.\"")
    _, d = await _decide("what are your hours?", llm)
    assert d.used_llm and d.reply == "We're open Mon-Fri 8am-6pm."


async def test_llm_reading_consent_hands_off_without_a_reply() -> None:
    llm = ScriptedLlm(_json("opt_out", "Sorry to bother you."))
    agent, d = await _decide("ugh enough already", llm)
    assert d.intent == "unknown"  # the keyword rules do not read this as an opt-out
    assert d.action == "handoff" and d.reply is None and d.handoff
    assert agent.counters["llm_consent_handoff"] == 1


async def test_long_llm_reply_is_cut_to_max_reply_chars() -> None:
    long = "Inspections are free. " * 40
    _, d = await _decide("do you do inspections?", ScriptedLlm(_json("question", long)))
    assert d.used_llm and len(d.reply) <= 320 and d.reply.endswith(".")


async def test_an_internal_error_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("agents.chat.agent.build_messages", boom)
    agent, d = await _decide("what are your hours?", ScriptedLlm())
    assert d.reply and agent.counters["agent_error"] == 1


# pure parts ------------------------------------------------------------------------------


def test_parse_llm_output_variants() -> None:
    assert parse_llm_output(_json("booking", "ok", 1.7)).confidence == 1.0
    fenced = parse_llm_output('```json\n{"intent": "nope", "reply": "hi"}\n```')
    assert (fenced.intent, fenced.reply) == (None, "hi")
    assert parse_llm_output("just words").reply == "just words"
    with pytest.raises(ValueError):
        parse_llm_output('{"reply": ')


def test_prompt_is_bounded() -> None:
    thread = [ThreadMessage("inbound", "x" * 5000) for _ in range(100)]
    lead = LeadView(first_name="A", attributes={f"k{i}": "v" * 999 for i in range(100)})
    messages = build_messages(business=BUSINESS, lead=lead, thread=thread, inbound="y" * 9000,
                              rules=IntentResult("unknown", 0.5), now=NOW, max_reply_chars=320)
    assert len(messages) == 1 + 30 + 1
    assert all(len(m["content"]) <= 1001 for m in messages[1:])
    assert len(messages[0]["content"]) < 8000


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=400),
       first=st.one_of(st.none(), st.text(max_size=30)),
       answer=st.one_of(st.text(max_size=400),
                        st.builds(lambda i, r: _json(i, r), st.sampled_from(INTENTS),
                                  st.text(max_size=400))))
def test_any_inbound_and_any_model_answer_gives_a_valid_decision(
        text: str, first: str | None, answer: str) -> None:
    lead = LeadView(first_name=first, phone="+15125550100", status="contacted")
    agent = ChatAgent(SmsSettings(), ScriptedLlm(answer), clock)
    d = asyncio.run(agent.decide(BUSINESS, lead, THREAD, text))
    assert d.intent in INTENTS and 0 <= d.confidence <= 1
    if d.action in ("reply", "stop"):
        assert d.reply and len(d.reply) <= 320 and d.segments >= 1
        assert fact_violations(d.reply, [BUSINESS.facts, BUSINESS.booking_url]) == []
    else:
        assert d.reply is None and d.segments == 0
    assert agent.counters["agent_error"] == 0
