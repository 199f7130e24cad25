"""The SMS side end to end: the real server on a free port, webhooks signed like Twilio's,
the outbox sender talking to the Twilio REST fake through the twilio SDK, the text agent
talking to the fake Chat Completions server through the openai SDK, real SQL.

`twilio.public_url` is the server's own `http://127.0.0.1:PORT`, so the signatures we
check and the status callback URL we hand the fake both use plain HTTP as given.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from ops import config as config_mod
from ops.app import RUNTIME, Runtime, build_app
from ops.dev.fake_llm import Rule, Script, serve_fake_llm
from tests.fakes.twilio_rest import FakeTwilioRest, Fault
from tests.store.conftest import backend_url

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "sms-e2e-token-0123456789"
OUR_NUMBER = "+14155550123"
LEAD = "+14155552671"
OWNER = "+14155550199"
LLM_REPLY = "We install in all of the Bay Area, and the site survey is free."
REPO = str(Path(__file__).resolve().parents[2])
SCRIPT = Script(
    default_reply=json.dumps({"intent": "question", "confidence": 0.9, "reply": LLM_REPLY}),
    rules=(Rule(match="slow", delay_s=30),),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    url: str
    runtime: Runtime
    twilio: FakeTwilioRest
    env: dict[str, str]
    http: aiohttp.ClientSession
    seq: int = 0

    async def post(self, path: str, form: dict[str, str], *, sign: bool = True,
                   token: str = AUTH_TOKEN) -> aiohttp.ClientResponse:
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
                self.url + path, form)
        async with self.http.post(self.url + path, data=form, headers=headers) as resp:
            await resp.read()
            return resp

    async def text(self, body: str, *, sid: str | None = None, frm: str = LEAD,
                   **extra: str) -> aiohttp.ClientResponse:
        self.seq += 1
        form = {"MessageSid": sid or f"SM{self.seq:032x}", "AccountSid": ACCOUNT_SID,
                "From": frm, "To": OUR_NUMBER, "Body": body, "NumMedia": "0",
                "NumSegments": "1", "ApiVersion": "2010-04-01", **extra}
        return await self.post("/twilio/sms", form)

    def bodies(self, to: str = LEAD) -> list[str]:
        return [m.body for m in self.twilio.messages if m.to == to]

    async def until(self, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
        for _ in range(int(timeout_s / 0.05)):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition not met in time")

    async def settle(self) -> None:
        """In-flight processing done and the outbox empty."""
        conv = self.runtime.messaging.conversation
        assert conv is not None
        await conv.drain()
        db = self.runtime.persistence.db
        assert db is not None
        for _ in range(200):
            if await db.outbox_pending_count() == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("outbox did not drain")

    async def cli(self, *args: str) -> tuple[int, dict[str, object]]:
        """`leadline sms send` in a child process; awaited, so this loop (the server, the
        fakes) keeps running while it talks to them."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "sms", "send", *args, "--json",
            env={**os.environ, **self.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=REPO)
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert out, err.decode()
        return int(proc.returncode or 0), json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture(params=["sqlite", "postgresql"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, deliver_callbacks=True).start()
    llm = await serve_fake_llm(script=SCRIPT)
    port = free_port()
    data = tempfile.mkdtemp(prefix="leadline-sms-")
    async with backend_url(request.param, tmp_path) as db_url:
        env = {
            "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
            "LEADLINE_TWILIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LEADLINE_STORE_DATABASE_URL": db_url,
            "LEADLINE_STORE_JOURNAL_DIR": f"{data}/journal",
            "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": f"{data}/messages",
            "LEADLINE_SERVER_RELOAD_POLL_S": "0",
            "LEADLINE_SMS_FROM_NUMBER": OUR_NUMBER, "LEADLINE_SMS_OWNER_PHONE": OWNER,
            "LEADLINE_SMS_BUSINESS_NAME": "Acme Solar",
            "LEADLINE_SMS_FACTS": "We serve the whole Bay Area. Site surveys are free.",
            "LEADLINE_SMS_LLM_BASE_URL": llm.base_url, "LEADLINE_SMS_LLM_TIMEOUT_S": "2",
            "LEADLINE_SMS_MAX_MPS": "50",
            "LEADLINE_SMS_OUTBOX_POLL_S": "0.2", "LEADLINE_SMS_OUTBOX_BACKOFF_BASE_S": "0.2",
            "LEADLINE_SMS_OUTBOX_BACKOFF_CAP_S": "0.5", "LEADLINE_SMS_OUTBOX_SEND_TIMEOUT_S": "2",
        }
        app = build_app(config_mod.load(None, environ=env))
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Rig(f"http://127.0.0.1:{port}", app[RUNTIME], twilio, env, http)
        finally:
            await runner.cleanup()
            await twilio.stop()
            await llm.cleanup()


async def test_a_question_gets_the_llm_reply_and_delivery_reports(rig: Rig) -> None:
    resp = await rig.text("Do you install in Oakland?")
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    await rig.until(lambda: bool(rig.bodies()))
    assert rig.bodies() == [LLM_REPLY]
    sent = rig.twilio.messages[0]
    assert (sent.from_, sent.status_callback) == (OUR_NUMBER, rig.url + "/twilio/sms-status")
    # The fake posts sent, then delivered, signed; the server accepts both.
    await rig.until(lambda: len(rig.twilio.callbacks_posted) == 2)
    assert [c[1:] for c in rig.twilio.callbacks_posted] == [("sent", 200), ("delivered", 200)]
    db = rig.runtime.persistence.db
    assert db is not None
    outbound = [m for m in await db.list_messages(LEAD) if m.direction == "outbound"]
    assert outbound[0].status == "delivered"
    async with rig.http.get(rig.url + "/metrics") as resp:
        text = await resp.text()
    assert 'leadline_sms_agent_events_total{kind="llm_ok"} 1.0' in text
    assert 'leadline_sms_outbound_total{outcome="sent"} 1.0' in text
    assert [h["status"] for h in outbound[0].status_history][-2:] == ["sent", "delivered"]


async def test_stop_texting_me_then_nothing_on_any_path(rig: Rig) -> None:
    await rig.text("stop texting me")
    await rig.settle()
    assert len(rig.bodies()) == 1 and "unsubscribed" in rig.bodies()[0].lower()
    await rig.text("STOP")
    await rig.text("hello??")
    await rig.settle()
    code, out = await rig.cli("--to", LEAD, "--body", "Spring offer!")
    assert code == 3 and out["sent"] is False and out["reason"] == "opted_out"
    assert len(rig.bodies()) == 1
    await rig.text("START")
    await rig.settle()
    assert len(rig.bodies()) == 2 and "subscribed again" in rig.bodies()[1]


async def test_help(rig: Rig) -> None:
    await rig.text("help")
    await rig.until(lambda: bool(rig.bodies()))
    assert "Reply STOP" in rig.bodies()[0]


async def test_duplicate_message_sid_is_processed_once(rig: Rig) -> None:
    sid = "SM" + "e" * 32
    first = await rig.text("What does it cost?", sid=sid)
    again = await rig.text("What does it cost?", sid=sid)
    assert (first.status, again.status) == (200, 200)
    await rig.settle()
    assert rig.bodies() == [LLM_REPLY]


async def test_forged_and_bad_webhooks(rig: Rig) -> None:
    form = {"MessageSid": "SM" + "f" * 32, "From": LEAD, "To": OUR_NUMBER, "Body": "hi"}
    assert (await rig.post("/twilio/sms", form, token="not-the-token")).status == 403
    assert (await rig.post("/twilio/sms", form, sign=False)).status == 403
    # Signed over https while public_url says http: not what Twilio would have signed.
    headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
        rig.url.replace("http://", "https://") + "/twilio/sms", form)}
    async with rig.http.post(rig.url + "/twilio/sms", data=form, headers=headers) as resp:
        assert resp.status == 403
    no_from = {k: v for k, v in form.items() if k != "From"}
    assert (await rig.post("/twilio/sms", no_from)).status == 400
    huge = {**form, "MessageSid": "SM" + "2" * 32, "Body": "x" * 100_001}
    assert (await rig.post("/twilio/sms", huge)).status == 400
    unknown = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert (await rig.post("/twilio/sms-status", unknown)).status == 200
    async with rig.http.get(rig.url + "/metrics") as resp:
        text = await resp.text()
    assert "leadline_sms_forged_signatures_total 3.0" in text
    assert 'leadline_sms_bad_webhooks_total{kind="missing_field"} 1.0' in text
    assert 'leadline_sms_bad_webhooks_total{kind="too_large"} 1.0' in text
    assert "leadline_sms_unknown_status_sids_total 1.0" in text
    assert 'leadline_sms_webhook_failures_total{cause="internal"} 0.0' in text
    assert rig.bodies() == []


async def test_twilio_5xx_and_timeout_are_retried(rig: Rig) -> None:
    rig.twilio.faults.extend([Fault(500, 20500), Fault(hang_s=4.0)])
    await rig.text("Can I get a quote?")
    await rig.until(lambda: bool(rig.bodies()), timeout_s=30)
    assert rig.bodies() == [LLM_REPLY]
    assert rig.twilio.message_requests == 3
    sender = rig.runtime.messaging.sender
    assert sender is not None and sender.stats.retried == 2


async def test_21610_marks_opted_out(rig: Rig) -> None:
    rig.twilio.unsubscribed.add(LEAD)
    await rig.text("Is this Acme?")
    await rig.settle()
    db = rig.runtime.persistence.db
    assert db is not None
    assert await db.is_opted_out(LEAD)
    assert [e.channel for e in await db.list_consent_events(LEAD)] == ["twilio_error"]
    assert rig.bodies() == []


async def test_cli_send_goes_through_the_sender(rig: Rig) -> None:
    await rig.text("Can you send me the details?")
    await rig.settle()
    code, out = await rig.cli("--to", "(415) 555-2671", "--body", "Here are the details.",
                        "--purpose", "conversation")
    assert code == 0, out
    assert out["sent"] is True and str(out["provider_sid"]).startswith("SM")
    assert rig.bodies()[-1] == "Here are the details."
    code, out = await rig.cli("--to", "555", "--body", "x")
    assert code == 2 and out["reason"] == "invalid_number"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_the_cores_counters_are_on_metrics(rig: Rig) -> None:
    """Counters the cores keep in plain fields (the compliance gate's decisions, triage,
    entities, the SMS conversation, sender and webhooks) are all in a live scrape."""
    from agents.compliance.gate import DECISIONS
    from agents.nlu import entities, triage

    decided_before = sum(DECISIONS.values())
    await rig.text("What does it cost?")
    await rig.settle()
    await rig.until(lambda: len(rig.twilio.callbacks_posted) == 2)
    triage.triage(None)  # type: ignore[arg-type]  # refused input, counted
    triage.triage("the basement is flooding", industry="plumbing")
    entities.extract_entities(42)  # type: ignore[arg-type]
    async with rig.http.get(rig.url + "/metrics") as resp:
        found = _samples(await resp.text())

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert sum(DECISIONS.values()) >= decided_before + 1  # the reply asked the gate
    for reason, n in DECISIONS.items():
        assert value("leadline_compliance_decisions_total", reason=reason) == n
    for priority, n in triage.STATS.by_priority.items():
        assert value("leadline_nlu_triage_total", priority=priority) == n
    assert value("leadline_nlu_triage_errors_total", reason="not_text") == \
        triage.STATS.errors["not_text"] >= 1
    assert value("leadline_nlu_entity_errors_total", reason="not_text") == \
        entities.STATS["not_text"] >= 1
    assert value("leadline_sms_webhooks_total", kind="inbound") == 1
    assert value("leadline_sms_webhooks_total", kind="status") == 2
    assert value("leadline_sms_status_updates_total") == 2
    assert value("leadline_sms_outbox_claimed_total") == 1
    assert value("leadline_sms_inline_processing_total") == 0
    assert value("leadline_sms_early_status_total") >= 0
    assert value("leadline_sms_recipient_opted_out_total") == 0
    assert value("leadline_sms_throttled_wait_seconds_total") >= 0
    assert value("leadline_sms_inbound_recovered_total", outcome="processed") == 0
