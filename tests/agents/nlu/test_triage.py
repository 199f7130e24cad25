"""Call triage: the labelled corpus and the held-out set, negation and tense, safety lines."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.nlu import triage as triage_module
from agents.nlu.triage import INDUSTRIES, PRIORITIES, safety_instruction, triage

HERE = Path(__file__).parent
Row = tuple[str, bool, str, str | None, str]


def _table(name: str) -> list[Row]:
    rows: list[Row] = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        priority, life, category, industry, text = line.split("\t")
        assert priority in PRIORITIES, line
        rows.append((priority, life == "1", category, None if industry == "-" else industry,
                     text))
    return rows


def _misses(rows: list[Row]) -> list[str]:
    out = []
    for priority, life, category, industry, text in rows:
        got = triage(text, industry=industry)
        if (got.priority, got.life_safety, got.category) != (priority, life, category):
            out.append(f"{text!r}: want {priority}/{life}/{category}, "
                       f"got {got.priority}/{got.life_safety}/{got.category} ({got.cue!r})")
    return out


def test_tables_are_big_and_cover_every_priority() -> None:
    tuned, held = _table("triage_corpus.tsv"), _table("triage_heldout.tsv")
    assert len(tuned) >= 150 and len(held) >= 50
    for rows in (tuned, held):
        assert {r[0] for r in rows} == set(PRIORITIES)
        assert sum(r[1] for r in rows) >= 10


def test_accuracy_on_tuned_and_held_out() -> None:
    tuned, held = _table("triage_corpus.tsv"), _table("triage_heldout.tsv")
    miss_tuned, miss_held = _misses(tuned), _misses(held)
    print(f"\ntriage accuracy: tuned {1 - len(miss_tuned) / len(tuned):.3f} ({len(tuned)}), "
          f"held out {1 - len(miss_held) / len(held):.3f} ({len(held)})")
    assert len(miss_tuned) / len(tuned) <= 0.03, miss_tuned
    assert len(miss_held) / len(held) <= 0.10, miss_held


def test_no_life_safety_case_of_the_held_out_set_is_missed() -> None:
    """Priority slips are tolerable; a missed 'leave the house now' is not."""
    for _priority, life, _category, industry, text in _table("triage_heldout.tsv"):
        if life:
            got = triage(text, industry=industry)
            assert got.life_safety and got.priority == "URGENT", text


@pytest.mark.parametrize(
    ("text", "priority", "life_safety", "category"),
    [
        ("we had a leak last year", "NORMAL", False, "other"),
        ("no gas smell, just a dripping faucet", "NORMAL", False, "water_leak"),
        ("the burst pipe was fixed yesterday, now I need the drywall quote", "NORMAL", False,
         "quote"),
        ("I don't smell gas anymore but the CO alarm is going off", "URGENT", True,
         "carbon_monoxide"),
        ("I don't smell gas anymore but the smoke detector is chirping, low battery", "NORMAL",
         False, "other"),
        ("what should I do if a pipe bursts?", "LOW", False, "information"),
        ("I smell gas", "URGENT", True, "gas_leak"),
        ("i dont smell gas", "NORMAL", False, "other"),
        ("the heat is out", "HIGH", False, "no_heat"),
        ("the heat is out, it's five degrees and my mother is elderly", "URGENT", False,
         "no_heat"),
        ("the heat is out, it's five degrees", "HIGH", False, "no_heat"),
        ("the heat is out and my grandma is here", "HIGH", False, "no_heat"),
        ("there's no smoke and no fire, the outlet just stopped working", "HIGH", False,
         "power_outage"),
        ("what are your hours", "LOW", False, "information"),
        ("can I book a cleaning", "NORMAL", False, "appointment"),
        ("", "NORMAL", False, "other"),
    ],
)
def test_negation_tense_and_hypotheticals(text: str, priority: str, life_safety: bool,
                                          category: str) -> None:
    got = triage(text)
    assert (got.priority, got.life_safety, got.category) == (priority, life_safety, category)
    assert got.text == text


def test_industry_narrows_trade_rules_but_never_life_safety() -> None:
    assert triage("a pipe burst in the kitchen", industry="plumbing").category == "water_leak"
    assert triage("a pipe burst in the kitchen", industry="dental").category == "other"
    assert triage("a pipe burst in the kitchen", industry="general").category == "water_leak"
    for industry in INDUSTRIES:
        got = triage("my husband has chest pain", industry=industry)
        assert (got.priority, got.life_safety, got.category) == ("URGENT", True, "medical")
        assert triage("I smell gas", industry=industry).category == "gas_leak"


def test_unknown_industry_is_a_counted_value_error() -> None:
    before = triage_module.STATS.errors["unknown_industry"]
    with pytest.raises(ValueError, match="unknown industry"):
        triage("hello", industry="astrology")
    assert triage_module.STATS.errors["unknown_industry"] == before + 1


def test_safety_instruction_only_for_life_safety_and_for_every_such_category() -> None:
    data = tomllib.loads(
        resources.files("agents.nlu").joinpath("triage.toml").read_text(encoding="utf-8"))
    life_categories = {r["category"] for r in data["rule"] if r.get("life_safety")}
    assert life_categories <= set(triage_module.SAFETY_LINE)
    assert "911" in safety_instruction(triage("I smell gas"))  # type: ignore[operator]
    assert "outside" in safety_instruction(triage("the CO alarm is going off"))  # type: ignore[operator]
    assert safety_instruction(triage("no hot water since monday")) is None
    assert safety_instruction(triage("what are your hours")) is None


def test_data_file_cites_its_sources() -> None:
    raw = resources.files("agents.nlu").joinpath("triage.toml").read_text(encoding="utf-8")
    for source in ("CPSC", "NFPA", "US Fire Administration", "CDC", "American Heart",
                   "Red Cross"):
        assert source in raw, source


def test_a_bad_rule_file_is_refused_with_its_place() -> None:
    data = tomllib.loads(
        resources.files("agents.nlu").joinpath("triage.toml").read_text(encoding="utf-8"))
    data["rule"][0]["patterns"] = ["(unclosed"]
    with pytest.raises(ValueError, match="rule 0"):
        triage_module._compile(data)
    data = tomllib.loads(
        resources.files("agents.nlu").joinpath("triage.toml").read_text(encoding="utf-8"))
    data["rule"][0]["priority"] = "HIGH"  # a life-safety rule must be URGENT
    with pytest.raises(ValueError, match="life_safety"):
        triage_module._compile(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from([None, *INDUSTRIES]))
def test_any_text_gives_a_consistent_result(text: str, industry: str | None) -> None:
    got = triage(text, industry=industry)
    assert got.priority in PRIORITIES
    assert got.emergency == (got.priority == "URGENT")
    if got.life_safety:
        assert got.emergency and safety_instruction(got)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(
    ["uh", "um", "so", "like", "yeah", "the", "and", "my", "i", "think", "kitchen", "today"]),
    max_size=8))
def test_fillers_around_a_gas_smell_do_not_hide_it(fillers: list[str]) -> None:
    text = " ".join([*fillers, "i smell gas", *fillers])
    assert triage(text).category == "gas_leak"
