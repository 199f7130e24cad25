"""Every seed objection heard in many phrasings; the AI question; junk never crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sales.objections import asks_if_ai, contains_any, find_objections
from agents.sales.script import builtin_script

PARAPHRASES = {
    "competitor": [
        "We already have insurance.",
        "Oh we're covered, thanks.",
        "We already have a broker for all of that.",
        "Honestly we're happy with our current carrier.",
        "We've got insurance, we're all set.",
        "We already work with an agent.",
        "We're under contract until next year.",
        "Nah, insurance is taken care of.",
        "We already have coverage through the group.",
        "We have a broker who handles it.",
    ],
    "authority": [
        "That needs approval from the doctor.",
        "I'd have to ask my manager.",
        "I'm not the decision maker here.",
        "You'd have to talk to my office manager.",
        "That's not my decision, I just answer the phones.",
        "Let me run it by the practice manager.",
        "The owner would have to approve that.",
        "I can't decide that, you need the office manager.",
        "That's above my pay grade honestly.",
        "Dr. Patel has to sign off on anything like that.",
    ],
    "no_reps": [
        "We don't see reps.",
        "Sorry, we do not see reps here.",
        "The doctor doesn't see reps.",
        "We have a policy against reps.",
        "No sales reps, sorry.",
        "We don't take sales calls.",
        "No soliciting please.",
        "Are you a drug rep?",
        "Is this a pharma rep thing? We don't meet with reps.",
        "The doctors don't see reps at all.",
    ],
    "price": [
        "What does it cost?",
        "How much is this going to cost us?",
        "How much do you charge?",
        "What's the price?",
        "Is there a fee for that?",
        "Do we have to pay anything?",
        "Is it free?",
        "We can't afford anything new right now.",
        "What will it cost the practice?",
        "There's no budget for that.",
    ],
    "lunch": [
        "Can you bring lunch?",
        "Will you bring us lunch for the staff?",
        "Other companies bring lunch, do you?",
        "Do you do lunches?",
        "If you buy us lunch the doctor will listen.",
        "We only meet with people who provide lunch.",
        "Could you cater lunch for the office?",
        "The girls want to know if you bring food.",
        "Is there a free lunch in it?",
        "We do a lunch and learn on Fridays.",
    ],
}


@pytest.mark.parametrize(("key", "text"),
                         [(k, t) for k, texts in PARAPHRASES.items() for t in texts])
def test_every_seed_objection_is_recognised(key: str, text: str) -> None:
    assert key in find_objections(text), text


def test_several_in_the_order_said() -> None:
    said = "Can you bring lunch? And honestly what does it cost, we already have a broker."
    assert find_objections(said) == ["lunch", "price", "competitor"]


@pytest.mark.parametrize("text", [
    "Hello?", "Yes, this is she.", "Sure, go ahead.", "Who is this?", "Tuesday works.",
    "Call me after lunch.", "I handle the insurance.", "",
])
def test_ordinary_turns_raise_nothing(text: str) -> None:
    assert find_objections(text) == []


@pytest.mark.parametrize("text", [
    "Are you a robot?", "Wait, is this a recording?", "Am I talking to a real person?",
    "are u a bot", "Is this AI?", "Are you human?", "You sound like a computer.",
    "Is this an automated call?", "Hold on, are you an AI?", "¿Eres un robot?",
    "Is this artificial intelligence or a person?", "Are you a real person or what",
])
def test_the_ai_question(text: str) -> None:
    assert asks_if_ai(text), text


@pytest.mark.parametrize("text", [
    "Are you a rep?", "Is this about insurance?", "Are you calling from Aetna?",
    "I am a person who likes robots.", "We use a robot vacuum.", "Hello?", "",
])
def test_not_the_ai_question(text: str) -> None:
    assert not asks_if_ai(text), text


JUNK = st.one_of(
    st.text(max_size=400),
    st.sampled_from([
        "what the f*** do you want", "shit, not another sales call, damn it",
        "oye, ya tenemos seguro, gracias", "no hablo inglés, ¿quién llama?",
        "we already tenemos insurance pero the doctor decide", "ummm uh hmm",
        "asdf qwer zxcv 12345", "🙄🙄🙄", "\x00\x1f\u200b\ufeff", "{firstName} {",
        "a" * 5000, "ARE YOU A ROBOT???", "lunch lunch lunch lunch",
    ]),
    st.lists(st.sampled_from(["bring", "lunch", "cost", "rep", "robot", "fuck", "sí",
                              "already", "have", "insurance", "no", "we", "dont", "see"]),
             max_size=30).map(" ".join),
)


@given(JUNK)
@settings(max_examples=300, deadline=None)
def test_never_crashes_on_nonsense(text: str) -> None:
    keys = find_objections(text)
    assert set(keys) <= set(builtin_script().triggers) and len(keys) == len(set(keys))
    assert isinstance(asks_if_ai(text), bool)
    assert isinstance(contains_any(text, ["yes"]), bool)


@pytest.mark.parametrize("value", [None, 3, b"bytes", ["list"]])
def test_non_text_is_nothing(value: object) -> None:
    assert find_objections(value) == [] and not asks_if_ai(value)
