"""Businesses end to end: the real server, `sim call` signed like Twilio, the Twilio REST
fake for the owner's texts, real SQL.

The config is a TOML file with `[[businesses]]`, as an operator writes it; the called
number picks the business.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.realtime.breaker import default_breaker
from media.codecs import ulaw
from ops.dev.fake_realtime import FakeRealtime, Script, Turn, serve_fake_realtime
from ops.dev.sim import SimOptions, sim_call
from tests.audio import speech_ulaw
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import AUTH_TOKEN, Server, calls_closed, eventually, start_server

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "5" * 32
PLUMBER_NUMBER = "+14155550100"
SALON_NUMBER = "+14155550111"
PLUMBER_OWNER = "+14155550199"
SALON_OWNER = "+14155550188"
CALLER = "+14155552671"

CONFIG = textwrap.dedent("""
    [[businesses]]
    name = "Joe's Plumbing"
    numbers = ["{plumber}"]
    industry = "plumbing"
    timezone = "America/Los_Angeles"
    plan = "PRO"
    greeting = "Joe's Plumbing, this is the automated assistant. What is going on?"
    owner = {{ phone = "{plumber_owner}" }}

    [[businesses]]
    name = "Curl Up Salon"
    numbers = ["{salon}"]
    plan = "BASIC"
    owner = {{ phone = "{salon_owner}" }}
""").format(plumber=PLUMBER_NUMBER, plumber_owner=PLUMBER_OWNER, salon=SALON_NUMBER,
            salon_owner=SALON_OWNER)


@dataclass
class Rig:
    server: Server
    twilio: FakeTwilioRest
    config_path: Path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    path = tmp_path / "leadline.toml"
    path.write_text(CONFIG, encoding="utf-8")
    env = {
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123",
        "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_BRAIN_KIND": "scripted",
    }
    server, runner = await start_server(env, str(path))
    try:
        yield Rig(server, twilio, path)
    finally:
        await runner.cleanup()
        await twilio.stop()


def _texts_to(twilio: FakeTwilioRest, number: str) -> list[str]:
    return [m.body for m in twilio.messages if m.to == number]


async def test_plan_without_voice_gets_a_polite_message_and_the_owner_a_text(rig: Rig) -> None:
    result = await sim_call(SimOptions(url=rig.server.url, auth_token=AUTH_TOKEN,
                                       from_number=CALLER, to_number=SALON_NUMBER,
                                       hangup_after_s=5))
    assert "<Say>" in result.twiml and "Curl Up Salon" in result.twiml
    assert "<Hangup" in result.twiml and "<Stream" not in result.twiml
    assert rig.server.runtime.calls.started == 0
    assert rig.server.runtime.twilio_stats.rejected_no_voice == 1
    texts = await eventually(lambda: _texts_to(rig.twilio, SALON_OWNER),
                             "the salon owner got a text")
    assert texts == [texts[0]] and CALLER in texts[0] and "Curl Up Salon" in texts[0]
    db = rig.server.runtime.persistence.db
    stored = [m for m in await db.list_messages(SALON_OWNER) if m.direction == "outbound"]
    assert [m.purpose for m in stored] == ["notification"]
    assert _texts_to(rig.twilio, PLUMBER_OWNER) == []


async def test_called_number_picks_the_business_greeting(rig: Rig) -> None:
    result = await sim_call(SimOptions(url=rig.server.url, auth_token=AUTH_TOKEN,
                                       from_number=CALLER, to_number=PLUMBER_NUMBER,
                                       hangup_after_s=8, audio=speech_ulaw("Hello there.")))
    assert "<Stream" in result.twiml
    await calls_closed(rig.server)
    db = rig.server.runtime.persistence.db

    async def first_turn() -> str | None:
        detail = await db.get_call(result.call_sid)
        return detail.turns[0].text if detail and detail.turns else None

    first = await eventually(first_turn, "the greeting was stored")
    assert first.startswith("Joe's Plumbing")


async def test_unknown_number_gets_the_default_and_reload_swaps_the_table(rig: Rig) -> None:
    registry = rig.server.runtime.businesses.registry()
    assert registry.for_number("+14155559999").name == "Joe's Plumbing"
    # Hot reload: the salon becomes the default; a broken file keeps the old table.
    rig.config_path.write_text(CONFIG.replace('plan = "BASIC"', 'plan = "BASIC"\ndefault = true'),
                               encoding="utf-8")
    await eventually(lambda: rig.server.runtime.businesses.registry().for_number(
        "+14155559999").name == "Curl Up Salon", "the reloaded default")
    bad = CONFIG + "\n[[businesses]]\nname = \"Extra\"\nplan = \"FREE\"\n" + "\n".join(
        f'[[businesses.questions]]\ntext = "Q{i}?"\nfield = "q{i}"' for i in range(6))
    await asyncio.sleep(0.05)
    rig.config_path.write_text(bad, encoding="utf-8")
    reloader = rig.server.runtime.reloader
    await eventually(lambda: reloader.last is not None and not reloader.last.ok,
                     "the bad reload was refused")
    assert "questions" in (reloader.last.error or "")
    assert rig.server.runtime.businesses.registry().for_number(
        "+14155559999").name == "Curl Up Salon"


async def test_without_businesses_calls_behave_as_before(tmp_path: Path) -> None:
    server, runner = await start_server({"LEADLINE_BRAIN_KIND": "scripted"})
    try:
        assert server.runtime.businesses.registry() is None
        result = await sim_call(SimOptions(url=server.url, auth_token=AUTH_TOKEN,
                                           hangup_after_s=6))
        assert "<Stream" in result.twiml
    finally:
        await runner.cleanup()




# --- triage and capture on live calls (the realtime brain against the fake service) ----

REALTIME_CONFIG = CONFIG.replace(
    f'owner = {{ phone = "{PLUMBER_OWNER}" }}',
    f'owner = {{ phone = "{PLUMBER_OWNER}" }}\nanalysis = true\n'
    + textwrap.dedent("""
    [[businesses.questions]]
    text = "May I have your name?"
    field = "name"
    essential_for_emergency = true

    [[businesses.questions]]
    text = "What is your budget for the job?"
    field = "budget"

    [[businesses.questions]]
    text = "What is the address of the property?"
    field = "address"
    essential_for_emergency = true
    """))


@asynccontextmanager
async def realtime_server(tmp_path: Path, script: Script, extra_env: dict[str, str] | None = None
                          ) -> AsyncIterator[tuple[Server, FakeRealtime, FakeTwilioRest]]:
    default_breaker.reset()
    fake_runner = await serve_fake_realtime(0, script)
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    path = tmp_path / "leadline.toml"
    path.write_text(REALTIME_CONFIG, encoding="utf-8")
    server, runner = await start_server({
        "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": fake_runner.websocket_base_url,
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123", **(extra_env or {}),
    }, str(path))
    try:
        yield server, fake_runner.fake, twilio
    finally:
        await runner.cleanup()
        await twilio.stop()
        await fake_runner.cleanup()
        default_breaker.reset()


def _turns(*texts: str, gap_s: float = 4.0) -> bytes:
    """Caller speech with a pause after each turn long enough for the agent's reply."""
    pause = ulaw.SILENT_FRAME * int(gap_s * 50)
    return b"".join(speech_ulaw(t) + pause for t in texts)


async def _audit(server: Server, call_sid: str, kind: str) -> list[dict[str, object]]:
    db = server.runtime.persistence.db
    rows = await db.list_audit(call_sid=call_sid, kind=kind)
    return [r.detail for r in reversed(rows)]


def _instructions(fake: FakeRealtime) -> list[str]:
    return [str((e.get("response") or {}).get("instructions", ""))
            for e in fake.received_of("response.create")]


async def test_burst_pipe_call_is_urgent_without_the_safety_line(tmp_path: Path) -> None:
    burst = "A pipe burst in my basement and there is water everywhere."
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=burst, reply="I am sorry. May I have your name?"),))
    async with realtime_server(tmp_path, script) as (server, fake, _):
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=14, audio=_turns(burst)))
        await calls_closed(server)
        triage = await eventually(lambda: _audit(server, result.call_sid, "triage"),
                                  "the triage was recorded")
        final = await eventually(lambda: _audit(server, result.call_sid, "call_priority"),
                                 "the call's priority was recorded")
    assert triage[0]["priority"] == "URGENT" and triage[0]["life_safety"] is False
    assert final[0]["priority"] == "URGENT" and final[0]["category"] == "water_leak"
    assert not any("word for word" in text for text in _instructions(fake))
    # The session spoke for the business and offered the priority tool (PRO analysis).
    (update,) = fake.received_of("session.update")
    assert "Joe's Plumbing" in update["session"]["instructions"]
    assert "set_priority" in {t["name"] for t in update["session"]["tools"]}


async def test_gas_call_gets_the_911_line_before_anything_is_collected(tmp_path: Path) -> None:
    gas = "I smell gas in my kitchen, it is really strong."
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=gas, reply="Please leave the building now and call 911."),))
    async with realtime_server(tmp_path, script) as (server, fake, _):
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=14, audio=_turns(gas)))
        await calls_closed(server)
        triage = await eventually(lambda: _audit(server, result.call_sid, "triage"),
                                  "the triage was recorded")
    assert triage[0]["life_safety"] is True and "911" in str(triage[0]["safety_line"])
    # The response after the caller's gas turn carried the safety line as its instruction.
    kinds = [e["type"] for e in fake.received if e["type"] in (
        "input_audio_buffer.commit", "response.create")]
    assert kinds[:2] == ["response.create", "input_audio_buffer.commit"]
    injected = [i for i in _instructions(fake) if "word for word" in i]
    assert len(injected) == 1 and "leave the building" in injected[0]
    assert "before asking for any details" in injected[0]


async def test_capture_answers_are_stored_in_order(tmp_path: Path) -> None:
    turns = ("I need a quote for a new water heater.", "Ana Lopez.", "About two thousand dollars.")
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=turns[0], reply="Happy to help. May I have your name?"),
        Turn(transcript=turns[1], reply="Thanks Ana. What is your budget for the job?"),
        Turn(transcript=turns[2], reply="Great, thank you."),
    ))
    async with realtime_server(tmp_path, script) as (server, _, _):
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=30, audio=_turns(*turns)))
        await calls_closed(server)
        captured = await eventually(
            lambda: _audit(server, result.call_sid, "capture"), "answers stored")
        await eventually(lambda: _audit(server, result.call_sid, "call_priority"), "ended")
        captured = await _audit(server, result.call_sid, "capture")
    assert [(c["field"], c["answer"]) for c in captured] == [
        ("name", "Ana Lopez."), ("budget", "About two thousand dollars.")]
