"""Rules-first intent classification: the labelled corpus, negation, calibration, fuzz."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.nlu import intents
from agents.nlu.intents import INTENTS, classify_intent

CORPUS = Path(__file__).with_name("intent_corpus.tsv")


def _corpus() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(tuned, held_out) rows of (label, text); "# --- held out" lines start held-out sets
    (texts written after the rules, to estimate accuracy on text the rules never saw)."""
    tuned: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    current = tuned
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("# --- held out"):
            current = held
            continue
        if line.startswith("#") or not line.strip():
            continue
        label, _, text = line.partition("\t")
        assert label in INTENTS, line
        current.append((label, text))
    return tuned, held


def _accuracy(rows: list[tuple[str, str]]) -> tuple[float, list[str]]:
    misses = []
    for label, text in rows:
        got = classify_intent(text)
        if got.intent != label:
            misses.append(f"{text!r}: want {label}, got {got.intent} {got.confidence}")
    return 1 - len(misses) / len(rows), misses


def test_corpus_is_big_and_covers_every_intent() -> None:
    tuned, held = _corpus()
    assert len(tuned) + len(held) >= 150
    assert {label for label, _ in tuned} == set(INTENTS)


def test_corpus_accuracy() -> None:
    tuned, held = _corpus()
    acc_tuned, misses_tuned = _accuracy(tuned)
    acc_held, misses_held = _accuracy(held)
    print(f"\nintent accuracy: tuned {acc_tuned:.3f} ({len(tuned)}), "
          f"held out {acc_held:.3f} ({len(held)})")
    assert acc_tuned >= 0.97, misses_tuned
    assert acc_held >= 0.85, misses_held


@pytest.mark.parametrize("text, intent", [
    ("can I book", "booking"),
    ("schedule a call", "booking"),
    ("what times do you have", "booking"),
    ("tuesday at 3 works", "booking"),
    ("yes I'm interested", "interested"),
    ("sounds good", "interested"),
    ("tell me more", "interested"),
    ("sure", "interested"),
    ("not interested", "not_interested"),
    ("no thanks", "not_interested"),
    ("already found someone", "not_interested"),
    ("wrong number", "wrong_number"),
    ("who is this? I don't know any Sarah", "wrong_number"),
    ("you have the wrong person", "wrong_number"),
    ("how much does it cost?", "question"),
    ("what are your hours", "question"),
    ("", "unknown"),
    ("   ", "unknown"),
    ("😀😀😀", "unknown"),
    ("qwzxkj vbnm", "unknown"),
    ("STOP", "opt_out"),
    ("stop texting me please", "opt_out"),
    ("START", "opt_in"),
    ("HELP", "help"),
])
def test_brief_examples(text: str, intent: str) -> None:
    assert classify_intent(text).intent == intent


@pytest.mark.parametrize("text, intent", [
    ("not interested", "not_interested"),
    ("I'm not really that interested", "not_interested"),
    ("I'm not saying no", "interested"),
    ("I don't want to book anything", "not_interested"),
    ("No, tuesday works", "booking"),
    ("No, I'm interested", "interested"),
    ("yes but not right now", "not_interested"),
    ("I don’t want it", "not_interested"),  # curly apostrophe
])
def test_negation(text: str, intent: str) -> None:
    assert classify_intent(text).intent == intent


def test_confidence_is_calibrated_by_kind_of_evidence() -> None:
    assert classify_intent("STOP").confidence == 0.99
    assert classify_intent("not interested").confidence == 0.99  # whole message
    assert classify_intent("honestly we went with another company").confidence == pytest.approx(0.9)
    assert classify_intent("kinda busy").confidence == pytest.approx(0.6)
    assert classify_intent("zzkq").confidence == 0.5
    assert classify_intent("").confidence == 0.95
    # Corroboration raises a phrase match, never to the level of an exact keyword.
    both = classify_intent("how much does it cost and do you take insurance?").confidence
    assert 0.9 < both < 0.99


def test_consent_comes_from_the_compliance_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake(text: str) -> str | None:
        seen.append(text)
        return "help"

    monkeypatch.setattr("agents.compliance.consent.classify_consent", fake)
    assert classify_intent("tell me more").intent == "help"
    assert seen == ["tell me more"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_valid_result(text: str) -> None:
    result = classify_intent(text)
    assert result.intent in INTENTS
    assert 0.0 <= result.confidence <= 1.0


def test_very_long_text_is_bounded() -> None:
    result = classify_intent("tell me more " * 10_000)
    assert result.intent == "interested"


def test_non_string_is_unknown() -> None:
    assert classify_intent(None).intent == "unknown"  # type: ignore[arg-type]


def test_rules_file_parses_and_names_known_intents() -> None:
    raw = resources.files("agents.nlu").joinpath("intents.toml").read_text(encoding="utf-8")
    data = tomllib.loads(raw)
    assert set(data["intents"]) <= set(INTENTS)
    assert set(data["scoring"]["priority"]) == set(data["intents"])
    data["negated"]["interested"]["intent"] = "enthusiastic"
    with pytest.raises(ValueError, match="unknown intent"):
        intents._compile(data)
