"""`[[businesses]]` config: plan gates and bad keys refused at load, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.business.plans import PLANS, branding_line, gates
from ops import config as config_mod
from ops.config import ConfigError

PLUMBER = """
[[businesses]]
name = "Joe's Plumbing"
numbers = ["+1 (415) 555-0100"]
industry = "plumbing"
timezone = "America/Los_Angeles"
hours = { mon = "08:00-17:00", sat = "09:00-12:00" }
plan = "{plan}"
{extra}
"""


def _load(tmp_path: Path, text: str) -> config_mod.Config:
    path = tmp_path / "leadline.toml"
    path.write_text(text, encoding="utf-8")
    return config_mod.load(path, environ={})


def _questions(n: int) -> str:
    return "\n".join(
        f'[[businesses.questions]]\ntext = "Question {i}?"\nfield = "q{i}"' for i in range(n))


def test_a_plumber_loads_with_its_questions(tmp_path: Path) -> None:
    cfg = _load(tmp_path, PLUMBER.replace("{plan}", "FREE").replace("{extra}", _questions(5)))
    (business,) = cfg.businesses
    assert business.industry == "plumbing"
    assert [q.field for q in business.questions] == [f"q{i}" for i in range(5)]
    assert not business.voice_enabled


def test_free_plan_refuses_a_sixth_question_naming_the_key(tmp_path: Path) -> None:
    text = PLUMBER.replace("{plan}", "FREE").replace("{extra}", _questions(7))
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "questions" in message and "businesses[0]" in message
    assert "FREE" in message and "7" in message
    # The same seven are fine on BASIC (no limit).
    cfg = _load(tmp_path, PLUMBER.replace("{plan}", "BASIC").replace("{extra}", _questions(7)))
    assert len(cfg.businesses[0].questions) == 7


@pytest.mark.parametrize(("extra", "key"), [
    ('colour = "blue"', "colour"),
    ('emergency_policy = "alert_owner"\nowner = { phone = "+14155550199" }', "emergency_policy"),
    ("analysis = true", "analysis"),
    ('timezone = "Mars/Olympus"', "timezone"),
    ('hours = { funday = "08:00-17:00" }', "hours"),
    ('emergency_policy = "transfer"', "transfer_number"),
    ('owner = { phone = "not a number" }', "owner.phone"),
    ('[[businesses.questions]]\ntext = "Name?"\nfield = "Full Name"', "questions.field"),
    ('[[businesses.questions]]\ntext = "Name?"\nfield = "name"\nweight = 3', "weight"),
])
def test_bad_business_config_is_an_error_naming_the_key(tmp_path: Path, extra: str,
                                                         key: str) -> None:
    text = PLUMBER.replace("{plan}", "FREE").replace("{extra}", extra)
    # A later `timezone`/`hours` key would be a TOML duplicate: drop the base line.
    for base in ("timezone", "hours"):
        if extra.startswith(base):
            text = "\n".join(line for line in text.splitlines()
                             if not line.startswith(base + " =") or line in extra)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert key in str(err.value)


def test_pro_allows_owner_alerts_and_analysis(tmp_path: Path) -> None:
    extra = ('emergency_policy = "alert_owner"\nanalysis = true\n'
             'owner = { phone = "+14155550199", email = "joe@example.com" }')
    cfg = _load(tmp_path, PLUMBER.replace("{plan}", "PRO").replace("{extra}", extra))
    assert cfg.businesses[0].voice_enabled
    assert cfg.businesses[0].emergency_policy == "alert_owner"


def test_numbers_may_ring_one_business_only_and_one_default(tmp_path: Path) -> None:
    two = PLUMBER.replace("{plan}", "PRO").replace("{extra}", "") + (
        '\n[[businesses]]\nname = "Clinic"\nnumbers = ["+14155550100"]\n')
    with pytest.raises(ConfigError, match="numbers"):
        _load(tmp_path, two)
    defaults = PLUMBER.replace("{plan}", "PRO").replace("{extra}", "default = true") + (
        '\n[[businesses]]\nname = "Clinic"\ndefault = true\n')
    with pytest.raises(ConfigError, match="default"):
        _load(tmp_path, defaults)
    same_name = PLUMBER.replace("{plan}", "PRO").replace("{extra}", "") + (
        "\n[[businesses]]\nname = \"Joe's Plumbing\"\n")
    with pytest.raises(ConfigError, match="name"):
        _load(tmp_path, same_name)


def test_no_businesses_is_todays_behaviour_and_env_overrides_still_work() -> None:
    cfg = config_mod.load(None, environ={"LEADLINE_SERVER_PORT": "9001"})
    assert cfg.businesses == [] and cfg.server.port == 9001


def test_plan_table_covers_every_tier() -> None:
    assert [gates(p).voice_agent for p in PLANS] == [False, False, True]
    assert gates("FREE").max_questions == 5 and gates("FREE").branding
    assert gates("BASIC").allows_questions(500) and not gates("BASIC").branding
    assert branding_line().strip()
    with pytest.raises(KeyError):
        gates("ENTERPRISE")


def test_config_show_prints_each_business(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from ops.cli import main

    path = tmp_path / "leadline.toml"
    path.write_text(PLUMBER.replace("{plan}", "PRO").replace("{extra}", "")
                    + '\n[[businesses]]\nname = "Clinic"\n', encoding="utf-8")
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("[[businesses]]") == 2 and 'name = "Clinic"' in out
