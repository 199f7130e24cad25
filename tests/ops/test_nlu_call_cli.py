"""`leadline nlu triage | entities | name --file`: the JSON-lines contracts and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ops.cli import main


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_triage_one_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "triage", "um I smell gas in the kitchen"]) == 0
    [row] = _lines(capsys.readouterr().out)
    assert row == {"text": "um I smell gas in the kitchen", "priority": "URGENT",
                   "emergency": True, "life_safety": True, "category": "gas_leak"}


def test_triage_file_in_order_with_industry(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "turns.txt"
    f.write_text("a pipe burst in the basement\nwhat are your hours\n\nmy tooth is killing me\n",
                 encoding="utf-8")
    assert main(["nlu", "triage", "--file", str(f), "--industry", "dental"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["a pipe burst in the basement", "what are your hours",
                                         "", "my tooth is killing me"]
    # A dental office's rules: a burst pipe is none of its trade.
    assert [(r["priority"], r["category"]) for r in rows] == [
        ("NORMAL", "other"), ("LOW", "information"), ("NORMAL", "other"),
        ("HIGH", "dental_pain")]
    assert all(set(r) == {"text", "priority", "emergency", "life_safety", "category"}
               for r in rows)


def test_triage_industry_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "leadline.toml"
    cfg.write_text('[nlu]\nindustry = "dental"\n', encoding="utf-8")
    assert main(["nlu", "triage", "a pipe burst", "--config", str(cfg)]) == 0
    assert _lines(capsys.readouterr().out)[0]["category"] == "other"
    assert main(["nlu", "triage", "a pipe burst", "--config", str(cfg),
                 "--industry", "plumbing"]) == 0
    assert _lines(capsys.readouterr().out)[0]["category"] == "water_leak"


@pytest.mark.parametrize("argv", [
    ["nlu", "triage"],
    ["nlu", "triage", "   "],
    ["nlu", "triage", "hi", "--industry", "astrology"],
    ["nlu", "triage", "--file", "/nonexistent/turns.txt"],
    ["nlu", "triage", "hi", "--file", "x.txt"],
    ["nlu", "entities"],
    ["nlu", "entities", "tomorrow", "--zone", "Mars/Olympus"],
    ["nlu", "entities", "tomorrow", "--now", "next tuesday"],
    ["nlu", "entities", "--file", "/nonexistent/turns.txt"],
    ["nlu", "name"],
    ["nlu", "name", "--file", "/nonexistent/turns.txt"],
])
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "error:" in captured.err


def test_bad_nlu_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "leadline.toml"
    cfg.write_text('[nlu]\nindustry = "astrology"\n', encoding="utf-8")
    assert main(["nlu", "triage", "hello", "--config", str(cfg)]) == 2
    cfg.write_text('[nlu]\nzone = "Mars/Olympus"\n', encoding="utf-8")
    assert main(["nlu", "entities", "hello", "--config", str(cfg)]) == 2


def test_entities_contract(capsys: pytest.CaptureFixture[str]) -> None:
    text = ("this is Maria Lopez, four one five five five five two six seven one, "
            "maria dot lopez at gmail dot com, tomorrow at 3, 12 Oak Street, about 200 dollars")
    assert main(["nlu", "entities", text, "--now", "2026-12-01T09:00:00-05:00",
                 "--zone", "America/New_York"]) == 0
    [row] = _lines(capsys.readouterr().out)
    assert set(row) == {"text", "phones", "emails", "dates", "amounts", "addresses", "names"}
    assert row["phones"] == [{"text": "four one five five five five two six seven one",
                              "value": "+14155552671"}]
    assert row["emails"][0]["value"] == "maria.lopez@gmail.com"
    assert row["dates"][0]["value"] == "2026-12-02T15:00:00-05:00"
    assert row["addresses"][0]["value"] == "12 Oak Street"
    assert row["amounts"][0]["value"] == 200.0 and row["amounts"][0]["approximate"]
    assert row["names"] == [{"text": "Maria Lopez", "value": "Maria Lopez"}]
    for kind in ("phones", "emails", "dates", "amounts", "addresses", "names"):
        assert all({"text", "value"} <= set(item) for item in row[kind])


def test_entities_zone_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "leadline.toml"
    cfg.write_text('[nlu]\nzone = "America/Los_Angeles"\n', encoding="utf-8")
    assert main(["nlu", "entities", "tomorrow at 3", "--now", "2026-12-01T12:00:00+00:00",
                 "--config", str(cfg)]) == 0
    assert _lines(capsys.readouterr().out)[0]["dates"][0]["value"] == \
        "2026-12-02T15:00:00-08:00"


def test_nlu_env_override(monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEADLINE_NLU_INDUSTRY", "dental")
    assert main(["nlu", "triage", "a pipe burst"]) == 0
    assert _lines(capsys.readouterr().out)[0]["category"] == "other"


def test_name_file_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "replies.txt"
    f.write_text("Raj.\nI'm fine\nLopez, Maria Lopez\n", encoding="utf-8")
    assert main(["nlu", "name", "--file", str(f), "--after-question"]) == 0
    assert _lines(capsys.readouterr().out) == [
        {"text": "Raj.", "name": "Raj"}, {"text": "I'm fine", "name": None},
        {"text": "Lopez, Maria Lopez", "name": "Maria Lopez"}]


def test_stdin_through_the_real_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ops.cli", "nlu", "triage", "--file", "-"],
        input="the co alarm is going off\nthe smoke detector chirps, low battery\n",
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = _lines(proc.stdout)
    assert [(r["category"], r["life_safety"]) for r in rows] == [
        ("carbon_monoxide", True), ("other", False)]
