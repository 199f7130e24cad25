"""Issue 9's acceptance list through the real server: `sim call` signed like Twilio, the
fake Realtime service speaking its script, the Twilio fake playing the owner's phone and
taking texts, a real SMTP server (aiosmtpd) for the owner's email, real SQL.

What `tests/ops/test_business_e2e.py` already shows (burst pipe URGENT without the
safety line, the 911 instruction, capture answers in order, a busy owner called again
then texted) is not repeated here; this file adds the rest of the list: the alert's
5 s bound measured, no-answer and voicemail retried then SMS *and* email, a returning
caller greeted by name with the last issue, FREE plan limits, and bad input.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from agents.realtime.breaker import default_breaker
from ops import config as config_mod
from ops.app import RUNTIME, build_app
from ops.dev.fake_realtime import FakeRealtime, Script, ScriptedToolCall, Turn, serve_fake_realtime
from ops.dev.fake_twilio import Callee, CalleeScript
from ops.dev.sim import SimOptions, sim_call
from tests.helpers import AUTH_TOKEN, Server, calls_closed, eventually
from tests.ops.test_business_e2e import (
    ACCOUNT_SID,
    CALLER,
    GAS,
    GAS_SCRIPT,
    PLUMBER_NUMBER,
    PLUMBER_OWNER,
    REALTIME_CONFIG,
    TwilioWithMessages,
    _audit,
    _free_port,
    _instructions,
    _post_signed,
    _turns,
)
from tests.sms.email.conftest import SmtpServer

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

OWNER_EMAIL = "joe@plumbing.example"
FREE_NUMBER = "+14155550122"
FREE_OWNER = "+14155550177"
FREE_EMAIL = "kim@handy.example"
MAIL_ONLY_NUMBER = "+14155550133"
MAIL_ONLY_EMAIL = "sal@salon.example"

# The plumber (PRO, alerts the owner, who has an email too) and a FREE handyman.
CONFIG = REALTIME_CONFIG.replace(
    'analysis = true\n',
    'analysis = true\nemergency_policy = "alert_owner"\n', 1).replace(
    f'owner = {{ phone = "{PLUMBER_OWNER}" }}',
    f'owner = {{ phone = "{PLUMBER_OWNER}", email = "{OWNER_EMAIL}" }}', 1) + textwrap.dedent(f"""
    [[businesses]]
    name = "Kim's Handyman"
    numbers = ["{FREE_NUMBER}"]
    plan = "FREE"
    owner = {{ phone = "{FREE_OWNER}", email = "{FREE_EMAIL}" }}

    [[businesses]]
    name = "Mail Only Salon"
    numbers = ["{MAIL_ONLY_NUMBER}"]
    plan = "BASIC"
    owner = {{ email = "{MAIL_ONLY_EMAIL}" }}
    """)

EMAIL_ENV = {
    "LEADLINE_EMAIL_HOST": "127.0.0.1", "LEADLINE_EMAIL_STARTTLS": "false",
    "LEADLINE_EMAIL_POLL_S": "0.2",
    "LEADLINE_EMAIL_FROM_ADDRESS": "Leadline <alerts@leadline.example>",
    "LEADLINE_EMAIL_POSTAL_ADDRESS": "1 Main St, Springfield, IL 62701",
    "LEADLINE_EMAIL_UNSUBSCRIBE_BASE_URL": "https://leadline.example",
}


class Rig:
    def __init__(self, url: str, server: Server, fake: FakeRealtime, twilio: TwilioWithMessages,
                 smtp: SmtpServer) -> None:
        self.url, self.server, self.fake, self.twilio, self.smtp = url, server, fake, twilio, smtp

    async def call(self, *texts: str, to: str = PLUMBER_NUMBER, hangup_after_s: float = 14,
                   from_number: str = CALLER) -> str:
        result = await sim_call(SimOptions(
            url=self.url, auth_token=AUTH_TOKEN, from_number=from_number, to_number=to,
            hangup_after_s=hangup_after_s, audio=_turns(*texts) if texts else None))
        await calls_closed(self.server)
        return result.call_sid

    def texts_to(self, number: str) -> list[str]:
        return [m.body for m in self.twilio.sms.messages if m.to == number]

    def mails_to(self, address: str) -> list[object]:
        return [m for m in self.smtp.recorder.messages() if address in str(m["To"])]


@asynccontextmanager
async def rig(tmp_path: Path, script: Script, owner: Callee | None = None, *,
              env: dict[str, str] | None = None, brain: str = "openai",
              config: str = CONFIG) -> AsyncIterator[Rig]:
    """The real app on a known port (the alert's ack URL must be reachable by the fake)."""
    default_breaker.reset()
    fake_runner = await serve_fake_realtime(0, script)
    twilio = await TwilioWithMessages(ACCOUNT_SID, AUTH_TOKEN, script=CalleeScript(
        numbers={PLUMBER_OWNER: owner or Callee(answer="human")})).start()
    smtp = SmtpServer()
    smtp.up()
    path = tmp_path / "leadline.toml"
    path.write_text(config, encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {
        "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url, "LEADLINE_TWILIO_PUBLIC_URL": url,
        "LEADLINE_BRAIN_KIND": brain, "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": fake_runner.websocket_base_url,
        "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{tmp_path}/leadline.db",
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        "LEADLINE_ARTIFACTS_DIRECTORY": str(tmp_path / "artifacts"),
        "LEADLINE_ARTIFACTS_SPOOL_DIRECTORY": str(tmp_path / "artifacts-spool"),
        "LEADLINE_SERVER_RELOAD_POLL_S": "0",
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123", "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_OWNER_ALERTS_ACK_GRACE_S": "5", "LEADLINE_EMAIL_PORT": str(smtp.port),
        **EMAIL_ENV, **(env or {}),
    }
    app = build_app(config_mod.load(path, environ=full_env), str(path))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Rig(url, Server(url, app[RUNTIME], app), fake_runner.fake, twilio, smtp)
    finally:
        await runner.cleanup()
        smtp.down()
        await twilio.stop()
        await fake_runner.cleanup()
        default_breaker.reset()


async def _agent_turns(server: Server, call_sid: str) -> list[tuple[str, str]]:
    detail = await server.runtime.persistence.db.get_call(call_sid)
    return [(t.role, t.text) for t in detail.turns] if detail else []


# --- the gas call: 911 first, then the owner's alert within 5 s, acknowledged -----------

SAFETY = "Please leave the building now and call 911."
# The model's own reply to the gas turn would ask for a name; the reply it is made to give
# instead (the fake speaks the instructed response with `default_reply`) is the 911 line.
GAS_ASKING = Script(greeting="Joe's Plumbing, what is going on?", default_reply=SAFETY,
                    turns=(Turn(transcript=GAS, reply="Sure, may I have your full name and "
                                "the address, and when did you first notice it?"),))


async def test_gas_call_911_first_then_the_alert_within_5_s_acknowledged(tmp_path: Path) -> None:
    async with rig(tmp_path, GAS_ASKING) as r:
        sim = asyncio.ensure_future(sim_call(SimOptions(
            url=r.url, auth_token=AUTH_TOKEN, from_number=CALLER, to_number=PLUMBER_NUMBER,
            hangup_after_s=14, audio=_turns(GAS))))
        placed = await eventually(lambda: list(r.twilio.calls.values()), "the alert call",
                                  limit_s=20, interval_s=0.02)
        gather = ET.fromstring(placed[0].form["Twiml"]).find("Gather")
        assert gather is not None and "gas" in " ".join(s.text or "" for s in gather)
        assert await _post_signed(gather.get("action") or "", {
            "CallSid": placed[0].sid, "AccountSid": ACCOUNT_SID, "Digits": "1"}) == 200
        call_sid = (await sim).call_sid
        await calls_closed(r.server)
        acks = await eventually(lambda: _audit(r.server, call_sid, "owner_alert_ack"), "ack")
        attempts = await _audit(r.server, call_sid, "owner_alert")
        given_up = await _audit(r.server, call_sid, "owner_alert_text")
        emailed = await _audit(r.server, call_sid, "owner_alert_email")
        turns = await eventually(lambda: _agent_turns(r.server, call_sid), "turns stored")
        await asyncio.sleep(0.5)
        assert len(r.twilio.calls) == 1  # never twice for one call
    # The response after the gas turn is the one carrying the safety line (word for word,
    # before any details), and the agent's first words after the caller's are that line.
    injected = [i for i in _instructions(r.fake) if "word for word" in i]
    assert len(injected) == 1 and "call 911" in injected[0]
    caller_at = next(i for i, (role, _) in enumerate(turns) if role == "caller")
    assert "911" in turns[caller_at + 1][1] and turns[caller_at + 1][0] == "agent"
    assert [a["outcome"] for a in attempts] == ["acknowledged"]
    assert acks[0]["alert_call_sid"] == placed[0].sid
    # The bound: the first alert call placed within 5 s of the URGENT turn (measured
    # by the server from the turn to the REST create's answer, on the call's record).
    placed_after = attempts[0]["placed_after_s"]
    log.info("owner alert placed %.3f s after the urgent turn", placed_after)
    assert isinstance(placed_after, float) and 0 <= placed_after < 5.0
    assert r.server.runtime.businesses.alerts.late == 0
    # Acknowledged: no alert text, no alert email (the owner's new-lead notice, which the
    # analysis sends, is another message).
    assert not any("got no answer" in t for t in r.texts_to(PLUMBER_OWNER))
    assert (given_up, emailed) == ([], [])


async def _voicemail_verdicts(r: Rig) -> None:
    """Twilio's async AMD verdict on each alert call while it rings: a voicemail. (The
    calls fake plays a machine only on a media stream; the alert call is `<Say>` TwiML,
    so the test posts the verdict as Twilio would, signed, to the call's AMD callback.)"""
    done: set[str] = set()
    while True:
        for call in list(r.twilio.calls.values()):
            if call.sid not in done:
                done.add(call.sid)
                await _post_signed(call.form["AsyncAmdStatusCallback"], {
                    "CallSid": call.sid, "AccountSid": ACCOUNT_SID,
                    "AnsweredBy": "machine_end_beep"})
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("owner, outcome", [
    (Callee(answer="no-answer", ring_ms=100), "no-answer"),
    (Callee(answer="human", ring_ms=3000), "voicemail"),
], ids=["no-answer", "voicemail"])
async def test_unanswered_alert_is_retried_with_backoff_then_texted_and_emailed(
        tmp_path: Path, owner: Callee, outcome: str) -> None:
    env = {"LEADLINE_OWNER_ALERTS_MAX_CALLS": "2", "LEADLINE_OWNER_ALERTS_BACKOFF_S": "[0.5]",
           "LEADLINE_OWNER_ALERTS_RING_TIMEOUT_S": "5"}
    async with rig(tmp_path, GAS_SCRIPT, owner, env=env) as r:
        amd = asyncio.ensure_future(_voicemail_verdicts(r)) if outcome == "voicemail" else None
        try:
            call_sid = await r.call(GAS, hangup_after_s=10)
            await eventually(lambda: _audit(r.server, call_sid, "owner_alert_email"),
                             "the alert email recorded", limit_s=60)
        finally:
            if amd is not None:
                amd.cancel()
        texts = await eventually(lambda: [t for t in r.texts_to(PLUMBER_OWNER)
                                          if "got no answer" in t], "the text", limit_s=20)
        mails = await eventually(lambda: [m for m in r.mails_to(OWNER_EMAIL)
                                          if "URGENT call" in str(m["Subject"])],  # type: ignore[index]
                                 "the email", limit_s=20)
        attempts = await _audit(r.server, call_sid, "owner_alert")
        emailed = await _audit(r.server, call_sid, "owner_alert_email")
        calls = list(r.twilio.calls.values())
    assert [a["outcome"] for a in attempts] == [outcome, outcome]
    assert len(calls) == 2 and all(c.to == PLUMBER_OWNER for c in calls)
    if outcome == "voicemail":  # each voicemail was hung up on, not left talking
        assert all(c.hangup_requested for c in calls)
    assert emailed[0]["outcome"] == "queued"
    assert len(texts) == 1 and "URGENT" in texts[0] and CALLER in texts[0]
    (mail,) = mails
    assert "URGENT call for Joe's Plumbing" in str(mail["Subject"])  # type: ignore[index]
    body = mail.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    assert "12 Main Street" in body and CALLER in body


# --- a returning caller: greeted by name, with the last issue remembered ------------------

BURST = "A pipe burst in my basement and there is water everywhere."
NAME = "Ana Lopez."


async def test_returning_caller_is_greeted_by_name_with_the_last_issue(tmp_path: Path) -> None:
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=BURST, reply="I am sorry. May I have your name?"),
        Turn(transcript=NAME, reply="Thank you Ana, someone is on the way."),
    ))
    async with rig(tmp_path, script) as r:
        first = await r.call(BURST, NAME, hangup_after_s=20)
        db = r.server.runtime.persistence.db
        caller = await eventually(lambda: db.get_caller(CALLER), "the caller row")
        await eventually(lambda: _audit(r.server, f"issue:{CALLER}:Joe's Plumbing",
                                        "caller_issue"), "the last issue stored")
        caller = await db.get_caller(CALLER)
        assert caller is not None and caller.name == "Ana Lopez"
        # The stored issue points at the call it came from.
        (row,) = await _audit(r.server, f"issue:{CALLER}:Joe's Plumbing", "caller_issue")
        assert row["call_sid"] == first and row["priority"] == "URGENT"
        r.fake.received.clear()
        await r.call(hangup_after_s=4)
    (update,) = r.fake.received_of("session.update")
    greeting = next(i for i in _instructions(r.fake) if "Open the call now" in i)
    assert ("Welcome back, Ana Lopez. Last time you called about a water leak. "
            "Joe's Plumbing, this is the automated assistant.") in greeting
    assert "Last time they called about a water leak" in update["session"]["instructions"]


async def test_a_different_number_hears_no_one_elses_issue(tmp_path: Path) -> None:
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=BURST, reply="I am sorry. May I have your name?"),
        Turn(transcript=NAME, reply="Thank you Ana."),
    ))
    async with rig(tmp_path, script) as r:
        await r.call(BURST, NAME, hangup_after_s=20)
        await eventually(lambda: _audit(r.server, f"issue:{CALLER}:Joe's Plumbing",
                                        "caller_issue"), "the last issue stored")
        r.fake.received.clear()
        await r.call(hangup_after_s=4, from_number="+14155550142")
    greeting = next(i for i in _instructions(r.fake) if "Open the call now" in i)
    assert "Welcome back" not in greeting and "Last time" not in greeting


async def test_keyless_brain_greets_a_returning_caller_with_the_last_issue(
        tmp_path: Path) -> None:
    async with rig(tmp_path, Script(), brain="scripted") as r:
        db = r.server.runtime.persistence.db
        await db.upsert_caller_seen(CALLER)
        await db.set_caller_name(CALLER, "Ana Lopez")
        await db.audit("caller_issue", call_sid=f"issue:{CALLER}:Joe's Plumbing",
                       detail={"issue": "a water leak", "call_sid": "CAx"})
        call_sid = await r.call(hangup_after_s=5)
        turns = await eventually(lambda: _agent_turns(r.server, call_sid), "the greeting")
    assert turns[0][1].startswith("Welcome back, Ana Lopez.")  # what works today
    assert "Last time you called about a water leak." in turns[0][1]


# --- FREE plan limits --------------------------------------------------------------------

async def test_free_plan_caller_hears_the_message_with_branding_owner_texted_and_emailed(
        tmp_path: Path) -> None:
    async with rig(tmp_path, Script()) as r:
        result = await sim_call(SimOptions(url=r.url, auth_token=AUTH_TOKEN, from_number=CALLER,
                                           to_number=FREE_NUMBER, hangup_after_s=4))
        texts = await eventually(lambda: r.texts_to(FREE_OWNER), "the owner's text")
        mails = await eventually(lambda: r.mails_to(FREE_EMAIL), "the owner's email",
                                 limit_s=20)
        # An owner with an email and no phone still hears of the call.
        other = await sim_call(SimOptions(url=r.url, auth_token=AUTH_TOKEN,
                                          from_number=CALLER, to_number=MAIL_ONLY_NUMBER,
                                          hangup_after_s=4))
        salon = await eventually(lambda: r.mails_to(MAIL_ONLY_EMAIL), "the salon's email",
                                 limit_s=20)
        assert r.server.runtime.calls.started == 0
    assert "Mail Only Salon" in other.twiml and "Leadline" not in other.twiml  # BASIC
    assert len(salon) == 1 and CALLER in salon[0].get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    assert r.server.runtime.businesses.notices_failed == 0
    say = ET.fromstring(result.twiml).find("Say")
    assert say is not None and "Kim's Handyman" in (say.text or "")
    assert (say.text or "").endswith("This call was answered by Leadline.")
    assert "<Stream" not in result.twiml and "<Hangup" in result.twiml
    assert len(texts) == 1 and CALLER in texts[0]
    (mail,) = mails
    assert "Missed call for Kim's Handyman" in str(mail["Subject"])  # type: ignore[index]


def _load_error(tmp_path: Path, business_toml: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(business_toml), encoding="utf-8")
    with pytest.raises(Exception) as info:
        config_mod.load(path, environ={})
    return str(info.value)


@pytest.mark.parametrize("toml, key", [
    # FREE: at most 5 capture questions.
    ('[[businesses]]\nname = "A"\nplan = "FREE"\n' + "".join(
        f'[[businesses.questions]]\ntext = "Q{i}?"\nfield = "q{i}"\n' for i in range(6)),
     "questions"),
    # A plan that forbids what the business enabled.
    ('[[businesses]]\nname = "A"\nplan = "FREE"\nemergency_policy = "alert_owner"\n'
     'owner = { phone = "+14155550199" }\n', "emergency_policy"),
    ('[[businesses]]\nname = "A"\nplan = "BASIC"\nanalysis = true\n', "analysis"),
    # Unknown keys, at the business and inside its tables.
    ('[[businesses]]\nname = "A"\nplna = "PRO"\n', "plna"),
    ('[[businesses]]\nname = "A"\nowner = { phone = "+14155550199", fax = "x" }\n', "fax"),
    ('[[businesses]]\nname = "A"\n[[businesses.questions]]\ntext = "Q?"\nfield = "q"\n'
     'essential = true\n', "essential"),
    ('[owner_alerts]\nretries = 3\n', "retries"),
    # An invalid owner phone.
    ('[[businesses]]\nname = "A"\nowner = { phone = "call me maybe" }\n', "owner.phone"),
    ('[[businesses]]\nname = "A"\nowner = { phone = "+1415" }\n', "owner.phone"),
])
def test_config_errors_at_load_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    assert key in _load_error(tmp_path, toml)


# --- bad input on a live call ------------------------------------------------------------

PROFANE = "This fucking pipe burst, hay agua por todas partes, ayúdame por favor!"
NONSENSE = "blorp zzzz qwerty asdf 7 7 7 ∑∂ƒ©"


async def test_profanity_code_switching_nonsense_and_bad_tool_arguments(tmp_path: Path) -> None:
    bad_calls = (
        ScriptedToolCall("set_priority", {"priority": "SUPER-URGENT"}),
        ScriptedToolCall("set_priority", "{not json"),
        ScriptedToolCall("set_priority", {"priority": "LOW", "reason": "x" * 5000}),
        ScriptedToolCall("set_priority", {"reason": "no priority at all"}),
        ScriptedToolCall("capture_caller_name", {"name": "   "}),
        ScriptedToolCall("book_a_plumber_now", {"when": "yesterday"}),
    )
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=NONSENSE, reply="Sorry, I did not catch that.", tool_calls=bad_calls,
             after_tool_reply="Could you say that again?"),
        Turn(transcript=PROFANE, reply="I am sorry. May I have your name?"),
    ))
    async with rig(tmp_path, script) as r:
        call_sid = await r.call(NONSENSE, PROFANE, hangup_after_s=22)
        final = await eventually(lambda: _audit(r.server, call_sid, "call_priority"), "ended")
        triage = await _audit(r.server, call_sid, "triage")
        caller = await r.server.runtime.persistence.db.get_caller(CALLER)
    assert caller is not None and caller.name is None  # "   " was never a name
    outputs = [e["item"]["output"] for e in r.fake.received_of("conversation.item.create")
               if e.get("item", {}).get("type") == "function_call_output"]
    assert len(outputs) == len(bad_calls)
    # Each bad call was answered with an error the model can read, not a crash; the
    # LOW with a huge reason was refused for its length, never lowering anything.
    assert all("error" in o.lower() or "invalid" in o.lower() for o in outputs), outputs
    # Nonsense is no emergency (unrecognised words rank as an ordinary service call);
    # the profane, code-switched burst pipe is one, and life is not at risk.
    assert [(t["priority"], t["category"]) for t in triage] == [
        ("NORMAL", "other"), ("URGENT", "water_leak")]
    assert not any(t["life_safety"] for t in triage)
    assert final[0]["priority"] == "URGENT" and final[0]["category"] == "water_leak"


REFUSALS = ("I need a quote for a new water heater.", "No.", "I'd rather not say.",
            "None of your business.")


async def test_a_caller_who_refuses_every_question(tmp_path: Path) -> None:
    script = Script(greeting="Joe's Plumbing, what is going on?", turns=(
        Turn(transcript=REFUSALS[0], reply="Happy to help. May I have your name?"),
        Turn(transcript=REFUSALS[1], reply="No problem. What is your budget for the job?"),
        Turn(transcript=REFUSALS[2], reply="Understood. What is the address of the property?"),
        Turn(transcript=REFUSALS[3], reply="That is fine, we will call you back."),
    ))
    async with rig(tmp_path, script) as r:
        call_sid = await r.call(*REFUSALS, hangup_after_s=34)
        await eventually(lambda: _audit(r.server, call_sid, "call_priority"), "ended")
        captured = await _audit(r.server, call_sid, "capture")
        caller = await r.server.runtime.persistence.db.get_caller(CALLER)
    # The questions were asked in order and each refusal stored as what was said; no name
    # is invented from "No." and nothing is escalated.
    assert [c["field"] for c in captured] == ["name", "budget", "address"]
    assert [c["answer"] for c in captured] == list(REFUSALS[1:])
    assert caller is not None and caller.name is None
    assert r.twilio.calls == {}
