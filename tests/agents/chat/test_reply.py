"""Reply post-processing and the fact guard: what a model may and may not say in a text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.chat.reply import clean_reply, fact_violations, render_template, truncate

FACTS = ["Consultations are $75. Monthly plan 49 dollars per month. 10% off for seniors. "
         "Call (512) 555-0143. See https://acme.example.com/pricing",
         "https://cal.example.com/acme/intro"]


@pytest.mark.parametrize("reply", [
    "A consultation is $75.",
    "Our plan is $49/month.",
    "Seniors get 10 percent off.",
    "Give us a ring at 512-555-0143.",
    "Pricing: acme.example.com/pricing",
    "Book here: https://cal.example.com/acme/intro",
    "We can meet Tuesday at 3pm for 30 minutes.",  # times and durations are no claims
    "Consultations are $75.00",
])
def test_allowed_claims_pass(reply: str) -> None:
    assert fact_violations(reply, FACTS) == []


@pytest.mark.parametrize("reply, kind", [
    ("A consultation is $80.", "amount"),
    ("Only 99 dollars!", "amount"),
    ("It's 120 per month.", "amount"),
    ("Get 20% off today", "percentage"),
    ("Call 512-555-0199 anytime", "phone"),
    ("See https://acme.example.com/deals", "link"),
    ("Visit www.other-site.com", "link"),
    ("Just €30 for you", "amount"),
])
def test_invented_claims_are_caught(reply: str, kind: str) -> None:
    bad = fact_violations(reply, FACTS)
    assert bad and bad[0].startswith(kind), bad


def test_no_facts_means_no_claims() -> None:
    assert fact_violations("It costs $10", ["", ""])
    assert fact_violations("Thanks, someone will follow up!", []) == []


@pytest.mark.parametrize("raw, clean", [
    ('"Sure, happy to help!"', "Sure, happy to help!"),
    ("Assistant: Sure thing.", "Sure thing."),
    ("AI: 'Hi there'", "Hi there"),
    ("Agent - Hello", "Hello"),
    ("Acme Dental: See you then!", "See you then!"),
    ("“Acme Dental: See you then!”", "See you then!"),
    ("  Hello\n\n  there   friend ", "Hello there friend"),
    ("Aiden will call you", "Aiden will call you"),  # a prefix only with a colon/dash
])
def test_clean_reply(raw: str, clean: str) -> None:
    assert clean_reply(raw, business_name="Acme Dental") == clean


def test_truncate_prefers_sentence_then_word() -> None:
    text = "First sentence here. Second one is a little longer. Third goes past the limit."
    assert truncate(text, 60) == "First sentence here. Second one is a little longer."
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod"
    cut = truncate(words, 30)
    assert cut.endswith("…") and len(cut) <= 30 and " ".join(cut[:-1].split()) in words
    assert truncate("short", 30) == "short"


@given(st.text(max_size=1000), st.integers(min_value=40, max_value=400))
def test_clean_reply_is_bounded(raw: str, limit: int) -> None:
    out = clean_reply(raw, business_name="Acme", max_chars=limit)
    assert len(out) <= limit
    assert "\n" not in out


def test_render_template() -> None:
    values = {"first_name": "Ann", "business_name": "Acme", "booking_url": "https://b.example"}
    assert render_template("Hi {first_name}, book: {booking_url}", values) == (
        "Hi Ann, book: https://b.example")
    assert render_template("Hi {nickname}!", values) == "Hi {nickname}!"
    assert render_template("Broken { template", values) == "Broken { template"
    assert render_template("Bad {0} {a.b}", values) == "Bad {0} {a.b}"
