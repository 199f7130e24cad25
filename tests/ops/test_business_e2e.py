"""Businesses end to end: the real server, `sim call` signed like Twilio, the Twilio REST
fake for the owner's texts, real SQL.

The config is a TOML file with `[[businesses]]`, as an operator writes it; the called
number picks the business.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from agents.realtime.breaker import default_breaker
from media.codecs import ulaw
from ops import config as config_mod
from ops.app import RUNTIME, build_app
from ops.dev.fake_realtime import FakeRealtime, Script, Turn, serve_fake_realtime
from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio
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
    assert [m.purpose for m in stored] == ["owner_notice"]
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


# --- the owner alert (PRO): phoned through the Twilio fake, acknowledged, else texted ----

ALERT_CONFIG = REALTIME_CONFIG.replace('analysis = true\n',
                                       'analysis = true\nemergency_policy = "alert_owner"\n', 1)


class TwilioWithMessages(FakeTwilio):
    """The calls fake (which plays the owner's phone) answering Messages too, as one
    Twilio account does."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sms = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json",
                            self.sms.create_message)
        return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def alert_server(tmp_path: Path, script: Script, owner: Callee,
                       extra_env: dict[str, str] | None = None
                       ) -> AsyncIterator[tuple[str, Server, TwilioWithMessages]]:
    default_breaker.reset()
    fake_runner = await serve_fake_realtime(0, script)
    twilio = await TwilioWithMessages(ACCOUNT_SID, AUTH_TOKEN, script=CalleeScript(
        numbers={PLUMBER_OWNER: owner})).start()
    path = tmp_path / "leadline.toml"
    path.write_text(ALERT_CONFIG, encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url, "LEADLINE_TWILIO_PUBLIC_URL": url,
        "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": fake_runner.websocket_base_url,
        "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{tmp_path}/leadline.db",
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        "LEADLINE_SERVER_RELOAD_POLL_S": "0",
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123", "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_OWNER_ALERTS_ACK_GRACE_S": "5", **(extra_env or {}),
    }
    app = build_app(config_mod.load(path, environ=env), str(path))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield url, Server(url, app[RUNTIME], app), twilio
    finally:
        await runner.cleanup()
        await twilio.stop()
        await fake_runner.cleanup()
        default_breaker.reset()


GAS = "I smell gas in my kitchen at 12 Main Street, it is really strong."
GAS_SCRIPT = Script(greeting="Joe's Plumbing, what is going on?", turns=(
    Turn(transcript=GAS, reply="Please leave the building now and call 911."),))


async def _post_signed(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> int:
    signature = RequestValidator(token).compute_signature(url, form)
    async with aiohttp.ClientSession() as http, http.post(
            url, data=form, headers={"X-Twilio-Signature": signature}) as resp:
        await resp.read()
        return resp.status


async def test_gas_call_alerts_the_owner_who_acknowledges(tmp_path: Path) -> None:
    async with alert_server(tmp_path, GAS_SCRIPT, Callee(answer="human")) as (url, server,
                                                                             twilio):
        sim = asyncio.ensure_future(sim_call(SimOptions(
            url=url, auth_token=AUTH_TOKEN, from_number=CALLER, to_number=PLUMBER_NUMBER,
            hangup_after_s=14, audio=_turns(GAS))))
        placed = await eventually(lambda: list(twilio.calls.values()), "the alert call",
                                  limit_s=20, interval_s=0.02)
        alert_call = placed[0]
        # Placed while the customer call is still on: within seconds of the URGENT turn.
        assert not sim.done()
        assert alert_call.to == PLUMBER_OWNER and alert_call.from_ == PLUMBER_NUMBER
        root = ET.fromstring(alert_call.form["Twiml"])
        gather = root.find("Gather")
        assert gather is not None and gather.get("numDigits") == "1"
        ack_url = gather.get("action") or ""
        said = " ".join(s.text or "" for s in gather.findall("Say"))
        assert said.count("Urgent call for Joe's Plumbing") == 2
        assert "gas" in said and "12 Main Street" in said and "4 1 5 5 5 5 2 6 7 1" in said
        # A forged acknowledgement is refused; the signed one is taken.
        form = {"CallSid": alert_call.sid, "AccountSid": ACCOUNT_SID, "Digits": "1"}
        assert await _post_signed(ack_url, form, token="forged-token") == 403
        assert await _post_signed(ack_url, form) == 200
        result = await sim
        assert ack_url == f"{url}/twilio/alert-ack?alert={result.call_sid}"
        await calls_closed(server)
        acks = await eventually(lambda: _audit(server, result.call_sid, "owner_alert_ack"),
                                "the ack recorded")
        attempts = await _audit(server, result.call_sid, "owner_alert")
        await asyncio.sleep(0.5)
        assert len(twilio.calls) == 1  # never twice for one call
    assert [a["outcome"] for a in attempts] == ["acknowledged"]
    assert acks[0]["alert_call_sid"] == alert_call.sid
    assert twilio.sms.messages == []
    assert server.runtime.businesses.forged_acks == 1
    # The alert's own status callbacks were signed and accepted.
    assert alert_call.callbacks and all(code == 204 for _, _, code in alert_call.callbacks)


async def test_busy_owner_is_called_again_then_texted(tmp_path: Path) -> None:
    env = {"LEADLINE_OWNER_ALERTS_MAX_CALLS": "2", "LEADLINE_OWNER_ALERTS_BACKOFF_S": "[0.3]"}
    async with alert_server(tmp_path, GAS_SCRIPT, Callee(answer="busy"), env) as (
            url, server, twilio):
        result = await sim_call(SimOptions(
            url=url, auth_token=AUTH_TOKEN, from_number=CALLER, to_number=PLUMBER_NUMBER,
            hangup_after_s=12, audio=_turns(GAS)))
        text = await eventually(
            lambda: [m for m in twilio.sms.messages if m.to == PLUMBER_OWNER],
            "the owner's text", limit_s=20)
        await eventually(lambda: _audit(server, result.call_sid, "owner_alert_text"), "texted")
        attempts = await _audit(server, result.call_sid, "owner_alert")
    assert len(twilio.calls) == 2
    assert [a["outcome"] for a in attempts] == ["busy", "busy"]
    assert "URGENT" in text[0].body and CALLER in text[0].body
