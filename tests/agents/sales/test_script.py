"""Loading and checking sales scripts; lines filled from contacts with fields missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.sales.script import (
    PLACEHOLDERS,
    STAGES,
    ScriptError,
    builtin_script,
    contact_values,
    load_script,
    parse_script,
    render_line,
)

GOOD = """
name = "Recall"
company = "Bay Dental"
agent_name = "Sam"
disclosure = "Yes, I'm an AI assistant for {company}."
declined = "Thanks {firstName}, goodbye."

[fallbacks]
practiceName = "your office"

[stages.greeting]
lines = ["Hi {firstName}, this is {agentName} from {company}."]

[stages.intro]
lines = ["You're due for a cleaning at {practiceName}."]
advance = ["yes", "sure"]

[stages.close]
lines = ["See you soon."]

[objectives]
items = ["Booked the cleaning"]

[forbidden]
claims = ["Never give medical advice."]

[[objections]]
key = "price"
handling = "Your plan covers it."

[[objections]]
key = "scared"
handling = "We are gentle."
triggers = ["scared", "afraid of the dentist"]
"""


def test_builtin_script_has_the_seed_objections() -> None:
    script = builtin_script()
    assert [o.key for o in script.objections][:5] == [
        "competitor", "authority", "no_reps", "price", "lunch"]
    assert script.objectives and script.forbidden and script.disclosure
    for stage in ("greeting", "intro", "qualify", "pitch", "schedule", "close"):
        assert script.stage(stage).lines, stage
    assert STAGES[0] == "greeting" and STAGES[-1] == "close"


def test_good_script_loads_and_inherits_builtin_triggers(tmp_path: Path) -> None:
    path = tmp_path / "recall.toml"
    path.write_text(GOOD)
    script = load_script(path)
    assert script.name == "Recall" and script.objectives == ["Booked the cleaning"]
    # "price" names no triggers: the built-in script's for that key are used.
    assert script.triggers["price"] == builtin_script().triggers["price"]
    assert script.triggers["scared"] == ("scared", "afraid of the dentist")
    assert load_script(path) is script  # unchanged file: cached


def test_unknown_key_fails_naming_it() -> None:
    bad = GOOD.replace('advance = ["yes", "sure"]', 'advanse = ["yes"]')
    with pytest.raises(ScriptError, match=r"unknown key 'advanse' in stages.intro"):
        parse_script(bad, "recall.toml")
    with pytest.raises(ScriptError, match=r"unknown key 'colour'"):
        parse_script("colour = 1\n" + GOOD, "recall.toml")


def test_unknown_placeholder_fails_naming_it() -> None:
    bad = GOOD.replace("{practiceName}.", "{practice_name}.")
    with pytest.raises(ScriptError, match=r"unknown placeholder \{practice_name\} in "
                                          r"stages.intro.lines\[0\]"):
        parse_script(bad, "recall.toml")
    bad = GOOD.replace('handling = "We are gentle."', 'handling = "Hi {firstname}"')
    with pytest.raises(ScriptError, match=r"\{firstname\} in objections\[1\].handling"):
        parse_script(bad, "recall.toml")
    with pytest.raises(ScriptError, match="fallbacks"):
        parse_script(GOOD.replace('practiceName = "your office"', 'clinic = "x"'), "r.toml")


@pytest.mark.parametrize(("change", "message"), [
    (('key = "scared"', 'key = "Scared!"'), "lower_snake_case"),
    (('key = "scared"', 'key = "price"'), "repeated"),
    (('triggers = ["scared", "afraid of the dentist"]', ""), "no triggers"),
    (('disclosure = "Yes, I\'m an AI assistant for {company}."', 'disclosure = " "'),
     "disclosure"),
    (("[stages.intro]", "[schedule_when]\nafter = \"close\"\n[stages.intro]"),
     "schedule_when.after"),
    (('name = "Recall"', 'name = 3'), "Expected `str`"),
])
def test_bad_scripts_say_what_is_wrong(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(GOOD.replace(*change), "recall.toml", builtin=builtin_script())


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="not found"):
        load_script(tmp_path / "nope.toml")
    (tmp_path / "x.toml").write_text("name = ")
    with pytest.raises(ScriptError, match="not valid TOML"):
        load_script(tmp_path / "x.toml")


@pytest.mark.parametrize("missing", [None, "", "None", "null", "undefined", "  "])
def test_missing_fields_are_never_spoken(missing: object) -> None:
    script = parse_script(GOOD)
    values = contact_values(script, {"firstName": missing, "practiceName": missing})
    greeting = render_line("Hi {firstName}, this is {agentName} from {company}.", values)
    assert greeting == "Hi, this is Sam from Bay Dental."
    assert render_line("Thanks {firstName}, goodbye.", values) == "Thanks, goodbye."
    assert render_line("at {practiceName}.", values) == "at your office."
    for text in (greeting,):
        assert "{" not in text and "None" not in text and "null" not in text


def test_all_fields_filled_and_values_not_reinterpolated() -> None:
    script = builtin_script()
    contact = {"firstName": "Ada", "lastName": "{email}", "practiceName": "Bay Dental",
               "state": "CA", "email": "ada@example.com", "phone": "+14155552671"}
    values = contact_values(script, contact)
    line = " ".join("{" + p + "}" for p in PLACEHOLDERS)
    out = render_line(line, values)
    assert out.startswith("Ada {email} Bay Dental CA ada@example.com +14155552671")
    # A stray brace or an unknown-looking word in literal text is kept as it is.
    assert render_line("5 {x", values) == "5 {x"


def test_a_script_broken_on_disk_after_load_falls_back_to_the_builtin(tmp_path: Path) -> None:
    import os

    from agents.sales.settings import SalesSettings

    path = tmp_path / "recall.toml"
    path.write_text(GOOD)
    sales = SalesSettings(scripts={"recall": str(path)})
    assert sales.script("recall").name == "Recall"
    path.write_text(GOOD.replace("{practiceName}", "{oops}"))
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse clock
    assert sales.script("recall") is builtin_script()
