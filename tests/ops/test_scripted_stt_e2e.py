"""The keyless brain hears a gas smell: the real server, `sim call` speaking eSpeak audio
as the caller, pocketsphinx in its worker process, triage, the safety line, real SQL.

No model key anywhere: the call is answered by the scripted brain, the caller's turn is
recognised locally, and the business rules act on the text as on a realtime call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from media.codecs import ulaw
from ops.dev.sim import SimOptions, sim_call
from tests.audio import speech_ulaw
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import AUTH_TOKEN, calls_closed, eventually, start_server

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "6" * 32
PLUMBER_NUMBER = "+14155550100"
PLUMBER_OWNER = "+14155550199"
CALLER = "+14155552671"
GAS = "I think there is a gas leak in my basement."

CONFIG = textwrap.dedent(f"""
    [[businesses]]
    name = "Joe's Plumbing"
    numbers = ["{PLUMBER_NUMBER}"]
    industry = "plumbing"
    plan = "PRO"
    greeting = "Joe's Plumbing, this is the automated assistant. What is going on?"
    owner = {{ phone = "{PLUMBER_OWNER}" }}

    [[businesses.questions]]
    text = "May I have your name?"
    field = "name"
    essential_for_emergency = true

    [[businesses.questions]]
    text = "What is your budget for the job?"
    field = "budget"
""")


async def test_gas_call_on_the_scripted_brain_is_urgent_with_the_safety_line_first(
        tmp_path: Path) -> None:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    path = tmp_path / "leadline.toml"
    path.write_text(CONFIG, encoding="utf-8")
    server, runner = await start_server({
        "LEADLINE_BRAIN_KIND": "scripted",
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123",
        "LEADLINE_SCRIPTED_STT_TIMEOUT_S": "8",  # a loaded CI machine, first turn
    }, str(path))
    try:
        audio = speech_ulaw(GAS) + ulaw.SILENT_FRAME * 50 * 8
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=22, audio=audio))
        assert "<Stream" in result.twiml
        await calls_closed(server)
        db = server.runtime.persistence.db

        async def audit(kind: str) -> list[dict[str, object]]:
            return [r.detail for r in reversed(await db.list_audit(call_sid=result.call_sid,
                                                                   kind=kind))]

        triage = await eventually(lambda: audit("triage"), "the caller's turn was triaged")
        final = await eventually(lambda: audit("call_priority"), "the priority was stored")

        async def turns() -> list[tuple[str, str]] | None:
            detail = await db.get_call(result.call_sid)
            got = [(t.role, t.text) for t in detail.turns] if detail else []
            return got if len(got) >= 4 else None

        stored = await eventually(turns, "greeting, caller, safety line and question stored")
    finally:
        await runner.cleanup()
        await twilio.stop()
    assert triage[0]["life_safety"] is True and final[0]["priority"] == "URGENT"
    roles = [r for r, _ in stored]
    assert roles[:2] == ["agent", "caller"]
    assert "gas" in stored[1][1]  # what pocketsphinx heard, as the caller's turn
    # The first thing said after the caller's words is the safety line, then the
    # essential question (the budget is skipped on an emergency).
    after = [text for role, text in stored[2:] if role == "agent"]
    assert "911" in after[0], stored
    assert after[1] == "May I have your name?", stored
    assert "What is your budget for the job?" not in after


def test_the_leadline_config_accepts_the_scripted_stt_keys(tmp_path: Path) -> None:
    path = tmp_path / "leadline.toml"
    path.write_text('[scripted]\nstt = "off"\nstt_workers = 2\nstt_max_turn_s = 20\n'
                    'stt_timeout_s = 1.5\n', encoding="utf-8")
    shown = subprocess.run([sys.executable, "-m", "ops.cli", "config", "show", "--json",
                            "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    scripted = json.loads(shown.stdout)["scripted"]
    assert (scripted["stt"], scripted["stt_workers"], scripted["stt_max_turn_s"],
            scripted["stt_timeout_s"]) == ("off", 2, 20.0, 1.5)
    path.write_text('[scripted]\nstt = "vosk"\n', encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "ops.cli", "config", "show",
                          "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "scripted.stt" in bad.stderr + bad.stdout
