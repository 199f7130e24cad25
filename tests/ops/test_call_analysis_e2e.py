"""Call analysis end to end: the real server, `sim call` signed like Twilio, the fake
Realtime service, the Twilio REST fake for the owner's text, a real SMTP server
(aiosmtpd) for the owner's email, real SQL; read back through the CLI and the API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from pathlib import Path

import aiohttp
import pytest

from agents.realtime.breaker import default_breaker
from media.codecs import ulaw
from ops.dev.fake_realtime import Script, Turn, serve_fake_realtime
from ops.dev.sim import SimOptions, sim_call
from tests.audio import speech_ulaw
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import AUTH_TOKEN, Server, calls_closed, eventually, start_server
from tests.sms.email.conftest import SmtpServer

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "7" * 32
PLUMBER_NUMBER = "+14155550100"
OWNER_PHONE = "+14155550199"
OWNER_EMAIL = "joe@plumbing.example"
CALLER = "+14155552671"

CONFIG = textwrap.dedent("""
    [[businesses]]
    name = "Joe's Plumbing"
    numbers = ["{number}"]
    industry = "plumbing"
    timezone = "America/Los_Angeles"
    plan = "PRO"
    owner = {{ phone = "{owner_phone}", email = "{owner_email}" }}

    [[businesses.questions]]
    text = "May I have your name?"
    field = "name"
    required = true

    [[businesses.questions]]
    text = "What is the address of the property?"
    field = "address"
""")


def _turns(*texts: str, gap_s: float = 4.0) -> bytes:
    pause = ulaw.SILENT_FRAME * int(gap_s * 50)
    return b"".join(speech_ulaw(t) + pause for t in texts)


@asynccontextmanager
async def rig(tmp_path: Path, script: Script, owner_phone: str = OWNER_PHONE
              ) -> AsyncIterator[tuple[Server, FakeTwilioRest, SmtpServer, Path]]:
    default_breaker.reset()
    fake_runner = await serve_fake_realtime(0, script)
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    smtp = SmtpServer()
    smtp.up()
    path = tmp_path / "leadline.toml"
    path.write_text(CONFIG.format(number=PLUMBER_NUMBER, owner_phone=owner_phone,
                                  owner_email=OWNER_EMAIL), encoding="utf-8")
    db_path = tmp_path / "calls.db"
    server, runner = await start_server({
        "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{db_path}",
        "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": fake_runner.websocket_base_url,
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123", "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_EMAIL_HOST": "127.0.0.1", "LEADLINE_EMAIL_PORT": str(smtp.port),
        "LEADLINE_EMAIL_STARTTLS": "false", "LEADLINE_EMAIL_POLL_S": "0.2",
        "LEADLINE_EMAIL_FROM_ADDRESS": "Leadline <alerts@leadline.example>",
        "LEADLINE_EMAIL_POSTAL_ADDRESS": "1 Main St, Springfield, IL 62701",
        "LEADLINE_EMAIL_UNSUBSCRIBE_BASE_URL": "https://leadline.example",
    }, str(path))
    try:
        yield server, twilio, smtp, db_path
    finally:
        await runner.cleanup()
        smtp.down()
        await twilio.stop()
        await fake_runner.cleanup()
        default_breaker.reset()


LEAK = "My water heater is leaking all over the garage floor."
NAME = "Umm, it's Raj Patel."
ADDRESS = "It is 12 Oak Street."
SCRIPT = Script(greeting="Joe's Plumbing, what is going on?", turns=(
    Turn(transcript=LEAK, reply="I am sorry to hear that. May I have your name?"),
    Turn(transcript=NAME, reply="Thanks. What is the address of the property?"),
    Turn(transcript=ADDRESS, reply="Thank you, someone will call you back today."),
))


async def test_new_caller_gets_an_analysis_and_the_owner_is_told_once(tmp_path: Path) -> None:
    async with rig(tmp_path, SCRIPT) as (server, twilio, smtp, db_path):
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=26, audio=_turns(LEAK, NAME, ADDRESS)))
        await calls_closed(server)
        db = server.runtime.persistence.db
        stored = await eventually(lambda: db.get_call_analysis(result.call_sid),
                                  "the analysis was stored")
        record = stored.record
        assert record["new_lead"] and record["caller_number"] == CALLER
        assert record["business"] == "Joe's Plumbing"
        assert record["caller_name"] == "Raj Patel"
        assert record["answers"]["address"]["answer"] == ADDRESS
        assert record["priority"] in ("HIGH", "URGENT") and record["category"] == "water_leak"
        assert record["outcome"] == "message_taken" and record["success"] is True
        assert record["entities"]["addresses"][0]["value"].startswith("12 Oak Street")
        [owner_sms] = await eventually(lambda: _outbound(db, OWNER_PHONE, "sms"),
                                       "the owner's text was committed")
        assert "Raj Patel" in owner_sms.body and CALLER in owner_sms.body
        # An owner notice, not a solicitation: sent at any hour (agents/compliance/engine.py).
        assert owner_sms.purpose == "owner_notice"
        texts = await eventually(lambda: [m.body for m in twilio.messages
                                          if m.to == OWNER_PHONE], "the owner's text")
        assert texts == [owner_sms.body]
        mails = await eventually(lambda: smtp.recorder.received, "the owner's email")
        [(_, rcpts, raw)] = mails
        assert rcpts == [OWNER_EMAIL]
        mail = message_from_bytes(raw)
        assert "Raj Patel" in str(mail["Subject"])
        body = mail.get_payload(decode=True) if not mail.is_multipart() else \
            mail.get_payload(0).get_payload(decode=True)
        assert b"garage floor" in body and b"12 Oak Street" in body
        notified = await eventually(
            lambda: _notified(db, result.call_sid), "the notice state was stored")
        assert notified == {"sms": "queued", "email": "queued"}
        # The admin API's call view carries the analysis.
        _, token = await db.create_api_token("viewer", label="test")  # type: ignore[attr-defined]
        async with aiohttp.ClientSession() as http, http.get(
                f"{server.url}/v1/calls/{result.call_sid}",
                headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            view = await resp.json()
        assert view["analysis"]["outcome"] == "message_taken"
        assert view["analysis"]["record"]["caller_name"] == "Raj Patel"
        assert view["call"]["call_sid"] == result.call_sid
    # The CLI reads the same record from the database file.
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ops.cli", "calls", "show", result.call_sid,
         "--database-url", f"sqlite:///{db_path}", "--json"],
        capture_output=True, text=True, timeout=120, check=True)
    shown = json.loads(out.stdout)
    assert shown["analysis"]["record"]["success"] is True
    text = (await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ops.cli", "calls", "show", result.call_sid,
         "--database-url", f"sqlite:///{db_path}"],
        capture_output=True, text=True, timeout=120, check=True)).stdout
    assert "analysis: message_taken, success" in text and "Raj Patel" in text


async def _outbound(db: object, phone: str, channel: str) -> list[object]:
    messages = await db.list_messages(phone)  # type: ignore[attr-defined]
    return [m for m in messages if m.direction == "outbound" and m.channel == channel]


async def _notified(db: object, sid: str) -> dict[str, str] | None:
    got = await db.get_call_analysis(sid)  # type: ignore[attr-defined]
    return got.notified if got is not None and got.notified else None


async def test_invalid_owner_phone_still_emails_the_owner(tmp_path: Path) -> None:
    async with rig(tmp_path, SCRIPT, owner_phone="") as (server, twilio, smtp, _):
        # An owner phone the config accepts but is empty; the bad-number case is in
        # tests/agents/analysis/test_analyst.py (the config refuses a malformed one).
        result = await sim_call(SimOptions(
            url=server.url, auth_token=AUTH_TOKEN, from_number=CALLER,
            to_number=PLUMBER_NUMBER, hangup_after_s=12, audio=_turns(LEAK)))
        await calls_closed(server)
        db = server.runtime.persistence.db
        notified = await eventually(lambda: _notified(db, result.call_sid),
                                    "the notice state was stored")
        assert notified == {"sms": "no_owner_phone", "email": "queued"}
        await eventually(lambda: smtp.recorder.received, "the owner's email")
        assert [m for m in twilio.messages if m.to == OWNER_PHONE] == []
