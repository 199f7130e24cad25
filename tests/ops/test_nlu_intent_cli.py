"""`leadline nlu intent`: rules only, or the chat agent's LLM path when [sms] has a base URL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from ops.cli import main
from ops.dev.fake_llm import Rule, Script, serve_fake_llm


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_one_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nlu", "intent", "Tuesday at 3 works"]) == 0
    [row] = _lines(capsys.readouterr().out)
    assert row == {"text": "Tuesday at 3 works", "intent": "booking",
                   "confidence": row["confidence"]}
    assert 0.9 <= row["confidence"] <= 1


def test_file_keeps_order_and_blank_lines(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "texts.txt"
    f.write_text("STOP\nwrong number\n\nhow much is it?\n", encoding="utf-8")
    assert main(["nlu", "intent", "--file", str(f)]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["STOP", "wrong number", "", "how much is it?"]
    assert [r["intent"] for r in rows] == ["opt_out", "wrong_number", "unknown", "question"]


@pytest.mark.parametrize("argv", [
    ["nlu", "intent"],
    ["nlu", "intent", "  "],
    ["nlu", "intent", "--file", "/nonexistent/texts.txt"],
    ["nlu", "intent", "hi", "--file", "x.txt"],
])
def test_bad_input_is_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error:")


def test_empty_or_binary_file_is_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["nlu", "intent", "--file", str(empty)]) == 2
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert main(["nlu", "intent", "--file", str(binary)]) == 2


def test_bad_config_is_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sms]\nllm_timeout_s = -1\n")
    assert main(["nlu", "intent", "hello", "--config", str(cfg)]) == 2


async def test_llm_refines_through_the_fake(tmp_path: Path) -> None:
    answer = json.dumps({"intent": "interested", "confidence": 0.77, "reply": "Great!"})
    runner = await serve_fake_llm(0, Script(rules=(Rule(match="wife", reply=answer),)))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[sms]\nllm_base_url = "{runner.base_url}"\nllm_timeout_s = 5\n'
                   'booking_url = "https://cal.example.com/x"\n')
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "nlu", "intent", "--config", str(cfg),
            "hmm my wife might want it", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()})
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await runner.cleanup()
    assert proc.returncode == 0, err.decode()
    assert _lines(out.decode()) == [{"text": "hmm my wife might want it",
                                     "intent": "interested", "confidence": 0.77}]
    assert len(runner.fake.received) == 1
