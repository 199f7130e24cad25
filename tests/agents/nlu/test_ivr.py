"""Phone-tree menus: the key chosen per goal, the safety rule, the navigator, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.nlu import ivr
from agents.nlu.ivr import IvrNavigator, choose, is_live_person, ivr_choice, parse_menu
from ops.cli import main

HERE = Path(__file__).parent
Row = tuple[str | None, str, str | None, str]
KEYS = set("0123456789*#")


def _table(name: str) -> list[Row]:
    rows: list[Row] = []
    for line in (HERE / name).read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digit, reason, goal, text = line.split("\t")
        rows.append((None if digit == "-" else digit, reason, None if goal == "-" else goal,
                     text))
    return rows


def _misses(rows: list[Row]) -> list[str]:
    out = []
    for digit, reason, goal, text in rows:
        got = ivr_choice(text, goal)
        if (got["digit"], got["reason"]) != (digit, reason):
            out.append(f"{text!r} goal={goal}: want {digit}/{reason}, "
                       f"got {got['digit']}/{got['reason']}")
    return out


def test_tables_are_big_and_cover_every_reason() -> None:
    tuned, held = _table("ivr_corpus.tsv"), _table("ivr_heldout.tsv")
    assert len(tuned) >= 80 and len(held) >= 20
    reasons = {r for _, r, _, _ in tuned}
    assert reasons == {"goal", "operator", "wait", "no_safe_option", "no_match", "not_a_menu"}


def test_accuracy_on_tuned_and_held_out() -> None:
    tuned, held = _table("ivr_corpus.tsv"), _table("ivr_heldout.tsv")
    miss_tuned, miss_held = _misses(tuned), _misses(held)
    print(f"\nivr accuracy: tuned {1 - len(miss_tuned) / len(tuned):.3f} ({len(tuned)}), "
          f"held-out {1 - len(miss_held) / len(held):.3f} ({len(held)})")
    assert len(miss_tuned) <= len(tuned) // 20, "\n".join(miss_tuned)
    assert len(miss_held) <= len(held) // 8, "\n".join(miss_held)


def test_no_unsafe_option_is_ever_chosen_in_either_table() -> None:
    for _digit, _reason, goal, text in _table("ivr_corpus.tsv") + _table("ivr_heldout.tsv"):
        choice = choose(parse_menu(text), goal or ivr.DEFAULT_GOAL)
        assert choice.option is None or not choice.option.unsafe, text


@pytest.mark.parametrize(("text", "goal", "digit", "reason"), [
    ("for billing press 1 for appointments press 2", None, "2", "goal"),
    ("press 1 for appointments press 2 for billing", None, "1", "goal"),
    ("to reach billing, press 3.", "billing", "3", "goal"),
    ("press five for sales", "sales", "5", "goal"),
    ("press star for the operator", None, "*", "operator"),
    ("press the pound key for scheduling", None, "#", "goal"),
    ("dial zero for an operator", "billing", "0", "operator"),
    ("enter oh to speak to someone", None, "0", "operator"),
    ("please stay on the line", None, None, "wait"),
    ("remain on the line for the next available representative", None, None, "wait"),
    # The emergency line is refused even as the only way forward, whatever the goal.
    ("for emergencies press one", None, None, "no_safe_option"),
    ("for emergencies press one", "emergencies", None, "no_safe_option"),
    ("to speak to the nurse press 1", "nurse", None, "no_safe_option"),
    ("for urgent care press 2", "operator", None, "no_safe_option"),
    ("to page the on call provider press 9", None, None, "no_safe_option"),
    ("if this is a medical emergency hang up and dial 911", None, None, "no_safe_option"),
    ("for non emergency questions press 4", "questions", "4", "goal"),
    ("for pharmacy refills press one", None, None, "no_match"),
    ("hello", None, None, "not_a_menu"),
    ("", None, None, "not_a_menu"),
    # A goal we have no synonyms for is matched by its own words.
    ("for the warranty department press 6 for sales press 7", "warranty", "6", "goal"),
])
def test_choices(text: str, goal: str | None, digit: str | None, reason: str) -> None:
    assert ivr_choice(text, goal) == {"text": text, "digit": digit, "reason": reason}


@pytest.mark.parametrize(("text", "human"), [
    ("front desk, this is Sarah", True),
    ("hi, how can I help you?", True),
    ("thank you for calling, this is Mike speaking", True),
    ("good morning dental office how may I help you", True),
    ("this is a recorded message from the office", False),
    ("thank you for calling, for billing press one", False),
    ("this is the automated attendant", False),
    ("please stay on the line", False),
    ("", False),
])
def test_live_person(text: str, human: bool) -> None:
    assert is_live_person(text) is human


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_navigator_follows_two_levels_then_hands_over_to_the_person() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock)
    assert nav.feed("thank you for calling oak dental. for billing press 1.") is None
    act = nav.feed("for appointments press 2.")
    assert act is not None and (act.kind, act.digit, act.reason) == ("press", "2", "goal")
    clock.t += 3
    act = nav.feed("for new patients press 1 for existing patients press 2 for reception press 3")
    assert act is not None and act.digit == "3"
    clock.t += 4
    act = nav.feed("front desk, this is Sarah, how can I help you?")
    assert act is not None and act.kind == "human" and not nav.active
    assert nav.presses == ["2", "3"]
    assert nav.feed("for billing press 1") is None  # IVR mode is over


def test_navigator_waits_before_a_fallback_in_case_the_goal_comes_next() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock, settle_s=2.5)
    assert nav.feed("for sales press 1 for the operator press 0") is None
    clock.t += 1
    assert nav.tick() is None
    assert nav.feed("to schedule an appointment press 4") is not None  # the goal came
    assert nav.presses == ["4"]

    nav = IvrNavigator(clock=clock, settle_s=2.5)
    assert nav.feed("for sales press 1 for the operator press 0") is None
    clock.t += 2.6
    act = nav.tick()
    assert act is not None and (act.digit, act.reason) == ("0", "operator")


def test_navigator_repeated_menu_tries_zero_then_gives_up() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock)
    menu = "for scheduling press 2 for billing press 3"
    act = nav.feed(menu)
    assert act is not None and act.digit == "2"
    clock.t += 5
    act = nav.feed(menu)  # the press did not take
    assert act is not None and (act.kind, act.digit, act.reason) == ("press", "0", "repeated_menu")
    clock.t += 5
    act = nav.feed(menu)
    assert act is not None and (act.kind, act.reason) == ("failed", "repeated_menu")
    assert not nav.active and nav.tick() is None


def test_navigator_times_out_on_a_menu_that_never_offers_anything() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock, timeout_s=60)
    assert nav.feed("for pharmacy refills press one") is None
    assert nav.feed("to speak to the nurse press two") is None
    clock.t += 30
    assert nav.tick() is None
    clock.t += 31
    act = nav.tick()
    assert act is not None and (act.kind, act.reason) == ("failed", "timeout")
    assert nav.presses == []


def test_navigator_never_presses_an_unsafe_key_and_bounds_its_memory() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock, max_pending_chars=500, settle_s=0.0)
    for _ in range(200):
        assert nav.feed("if this is an emergency press 1 for the nurse press 2") is None
        assert nav.tick() is None
        clock.t += 0.1
    assert len(nav._pending) <= 500 and nav.presses == []


def test_navigator_press_limit() -> None:
    clock = FakeClock()
    nav = IvrNavigator(clock=clock, max_presses=3)
    kinds = []
    for n in range(6):
        act = nav.feed(f"for the appointment desk number {n} press {n + 1}")
        kinds.append(act.kind if act else None)
    assert kinds[:3] == ["press"] * 3 and "failed" in kinds


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.one_of(st.none(), st.text(max_size=30)))
def test_any_text_gives_a_consistent_result(text: str, goal: str | None) -> None:
    got = ivr_choice(text, goal)
    assert set(got) == {"text", "digit", "reason"}
    assert got["digit"] is None or got["digit"] in KEYS
    assert (got["digit"] is None) == (got["reason"] not in ("goal", "operator"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "for billing press 1", "if this is an emergency press 9", "to reach the nurse press 2",
    "for urgent care press 3", "please hold", "thank you for calling", "press 4 for sales",
    "for the on call doctor press 5", "um", ",", ".", "press", "one",
]), max_size=12))
def test_unsafe_keys_are_never_returned(parts: list[str]) -> None:
    got = ivr_choice(" ".join(parts), None)
    assert got["digit"] not in {"9", "2", "3", "5"}


def test_huge_text_is_cut_not_slow() -> None:
    import time

    text = "for billing press 1 " * 20000 + "for the front desk press 2"
    t0 = time.perf_counter()
    # Only the first max_text_chars are read: the front desk at the very end is never seen.
    assert ivr_choice(text)["reason"] == "no_match"
    assert time.perf_counter() - t0 < 1.0


def test_a_bad_rule_file_is_refused_with_its_place() -> None:
    import tomllib
    raw = (Path(ivr.__file__).parent / "ivr.toml").read_text("utf-8")
    data = tomllib.loads(raw)
    data["unsafe"]["patterns"] = ["(unclosed"]
    with pytest.raises(ValueError, match="unsafe"):
        ivr._compile(data)
    data = tomllib.loads(raw)
    data["keys"]["eleven"] = "11"
    with pytest.raises(ValueError, match="DTMF"):
        ivr._compile(data)


def test_data_file_cites_its_sources() -> None:
    raw = (Path(ivr.__file__).parent / "ivr.toml").read_text("utf-8")
    assert "E.161" in raw and "Twilio" in raw


# -- leadline nlu ivr -------------------------------------------------------------


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_cli_one_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "ivr", "press 1 for sales press 2 for billing", "--goal",
                 "billing"]) == 0
    assert _lines(capsys.readouterr().out) == [
        {"text": "press 1 for sales press 2 for billing", "digit": "2", "reason": "goal"}]


def test_cli_file_in_order_with_goals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "menus.tsv"
    f.write_text("press 1 for sales press 2 for billing\tsales\n"
                 "for emergencies press 1\n"
                 "please stay on the line\t\n"
                 "press 1 for sales press 2 for billing\n", encoding="utf-8")
    assert main(["nlu", "ivr", "--file", str(f), "--goal", "billing"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [(r["digit"], r["reason"]) for r in rows] == [
        ("1", "goal"), (None, "no_safe_option"), (None, "wait"), ("2", "goal")]
    assert rows[0]["text"] == "press 1 for sales press 2 for billing"


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "ivr"]) == 2
    assert main(["nlu", "ivr", "--file", str(tmp_path / "missing.tsv")]) == 2
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\xff\xfe press 1")
    assert main(["nlu", "ivr", "--file", str(bad)]) == 2
    assert main(["nlu", "ivr", "x", "--file", str(bad)]) == 2
    assert "error" in capsys.readouterr().err
