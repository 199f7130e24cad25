"""`leadline campaigns …` and `leadline report` end to end through the real CLI entry point,
on a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops.cli import main
from store.database import open_database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML
from tests.store.conftest import BACKENDS, backend_url

LEADLINE = str(Path(sys.executable).with_name("leadline"))
PHONES = ["+12125550101", "+14155550102", "+13055550103"]


@pytest.fixture(params=BACKENDS)
async def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Path]:
    async with backend_url(request.param, tmp_path) as url:
        db = await open_database(url)
        await db.upsert_leads([LeadInput(phone=p, first_name=f"N{i}", state=None)
                               for i, p in enumerate(PHONES)])
        await db.close()
        cfg = tmp_path / "leadline.toml"
        cfg.write_text(f'[store]\ndatabase_url = "{url}"\n[sms]\nfrom_number = "+14155550123"\n'
                       'business_name = "Acme"\nbooking_url = "https://b.example/x"\n')
        yield cfg


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith(("{", "[")) else out


async def test_load_enroll_tick_report(config_file: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    camp = tmp_path / "c.toml"
    camp.write_text(CAMPAIGN_TOML)
    c = str(config_file)

    def go(*argv: str) -> tuple[int, object]:
        return run(capsys, *argv)

    async def in_thread(*argv: str) -> tuple[int, object]:
        return await asyncio.to_thread(go, *argv)

    code, out = await in_thread("campaigns", "load", str(camp), "--config", c, "--json")
    assert code == 0 and out == {"name": "reactivation", "created": True, "touches": 3,
                                 "paused": False}
    lst = tmp_path / "phones.csv"
    lst.write_text("name,phone\nA,(212) 555-0101\nB,+14155550102\nC,not a phone\nD,+12025550199\n")
    code, out = await in_thread("campaigns", "enroll", "reactivation", "--file", str(lst),
                                "--now", "2026-06-09T06:00:00Z", "--config", c, "--json")
    assert code == 0
    assert out == {"enrolled": 2, "already": 0, "skipped": [
        {"lead": "not a phone", "reason": "invalid_number"},
        {"lead": "+12025550199", "reason": "not_a_lead"}]}
    code, out = await in_thread("campaigns", "enroll", "reactivation", "--all",
                                "--now", "2026-06-09T06:00:00Z", "--config", c, "--json")
    assert out == {"enrolled": 1, "already": 2, "skipped": []}
    # 02:00 in New York, 23:00 in California: every touch deferred to the window.
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T06:00:00Z",
                                "--config", c, "--json")
    assert code == 0 and out["sent"] == [] and out["skipped"] == []  # type: ignore[index]
    until = {d["lead"]: d["until"] for d in out["deferred"]}  # type: ignore[index]
    assert until == {"+12125550101": "2026-06-09T12:00:00Z",
                     "+14155550102": "2026-06-09T15:00:00Z",
                     "+13055550103": "2026-06-09T12:00:00Z"}
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T12:30:00Z",
                                "--config", c, "--json")
    assert sorted(s["lead"] for s in out["sent"]) == ["+12125550101", "+13055550103"]  # type: ignore[index]
    assert all(s["touch"] == 1 and s["channel"] == "sms" for s in out["sent"])  # type: ignore[index]
    code, out = await in_thread("campaigns", "preview", "reactivation", "--lead",
                                "+12125550101", "--config", c, "--json")
    assert code == 0 and out[0]["body"].startswith("Hi N0, it's Acme.")  # type: ignore[index]
    code, out = await in_thread("campaigns", "pause", "reactivation", "--config", c)
    assert code == 0
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T16:00:00Z",
                                "--config", c, "--json")
    assert out["sent"] == []  # type: ignore[index]
    await in_thread("campaigns", "resume", "reactivation", "--config", c)
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T16:00:00Z",
                                "--config", c, "--json")
    assert [s["lead"] for s in out["sent"]] == ["+14155550102"]  # type: ignore[index]
    code, out = await in_thread("report", "--config", c, "--json")
    assert code == 0
    [rep] = out  # type: ignore[misc]
    # Queued, not yet accepted by Twilio (no sender ran): nothing counts as sent yet.
    assert rep["name"] == "reactivation" and rep["enrolled"] == 3 and rep["sent"] == 0
    code, text = await in_thread("report", "--config", c)
    assert code == 0 and "reactivation" in str(text)


async def test_bad_input_exit_codes(config_file: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\n'
                   'template = "Hi {fist_name}"\n')
    c = str(config_file)
    code = await asyncio.to_thread(main, ["campaigns", "load", str(bad), "--config", c])
    err = capsys.readouterr().err
    assert code == 2 and "touch 1" in err and "{fist_name}" in err
    code = await asyncio.to_thread(main, ["campaigns", "enroll", "nope", "--all",
                                          "--config", c])
    assert code == 1
    code = await asyncio.to_thread(main, ["campaigns", "tick", "--now", "yesterday",
                                          "--config", c])
    assert code == 2


def test_help_is_quick_and_lists_the_commands() -> None:
    out = subprocess.run([LEADLINE, "campaigns", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for word in ("load", "enroll", "tick", "pause", "resume", "preview"):
        assert word in out


async def _tick_child(cfg: Path, now: str, env: dict[str, str] | None = None
                      ) -> asyncio.subprocess.Process:
    import os

    return await asyncio.create_subprocess_exec(
        LEADLINE, "campaigns", "tick", "--now", now, "--config", str(cfg), "--json",
        env={**os.environ, **(env or {})}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


@pytest.mark.e2e
async def test_sigkill_between_queue_and_advance_resumes_without_duplicate_or_loss(
        config_file: Path, tmp_path: Path) -> None:
    import signal

    from ops import config as config_mod
    from sms.campaigns import service
    from store.campaign_models import TOUCH_KEY_PREFIX
    from tests.helpers import eventually

    url = config_mod.load(str(config_file)).store.database_url
    db = await open_database(url)
    try:
        await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
        await service.enroll(db, "reactivation", everyone=True,  # type: ignore[arg-type]
                             now=datetime(2026, 6, 9, 15, 0, tzinfo=UTC))
    finally:
        await db.close()
    marker = tmp_path / "queued"
    proc = await _tick_child(config_file, "2026-06-09T16:00:00Z",
                             {"LEADLINE_TEST_CAMPAIGN_HANG_AFTER_QUEUE": str(marker)})
    await eventually(marker.exists, "the pass committed a touch and hung", limit_s=60)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()

    async def touches() -> dict[str, int]:
        d = await open_database(url)
        try:
            out: dict[str, int] = {}
            for p in PHONES:
                for m in await d.list_messages(p):
                    if (m.idempotency_key or "").startswith(TOUCH_KEY_PREFIX):
                        out[m.idempotency_key or ""] = out.get(m.idempotency_key or "", 0) + 1
            return out
        finally:
            await d.close()

    assert len(await touches()) == 1  # committed before the kill, enrollment not advanced
    # The dead pass had claimed its whole batch: within the lease nobody touches it.
    proc = await _tick_child(config_file, "2026-06-09T16:01:00Z")
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["sent"] == []
    # After the lease the rows are claimed again; the committed touch is found by its key
    # (not queued twice) and its enrollment advances, the other two go out now.
    proc = await _tick_child(config_file, "2026-06-09T16:05:00Z")
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert len(json.loads(out)["sent"]) == 3
    counts = await touches()
    assert len(counts) == 3 and set(counts.values()) == {1}
    proc = await _tick_child(config_file, "2026-06-09T16:30:00Z")
    out, _ = await proc.communicate()
    assert json.loads(out)["sent"] == []


@pytest.mark.e2e
async def test_server_mails_a_touch_answers_a_reply_and_honours_one_click(
        tmp_path: Path) -> None:
    from email import policy
    from email.message import EmailMessage
    from email.parser import BytesParser

    import aiohttp

    from sms.campaigns import service
    from tests.helpers import eventually, start_server
    from tests.sms.email.conftest import SmtpServer

    smtp = SmtpServer()
    smtp.up()
    url = f"sqlite:///{tmp_path}/e2e.db"
    db = await open_database(url)
    await db.upsert_leads([
        LeadInput(phone=PHONES[0], first_name="Ann", email="ann@example.com"),
        LeadInput(phone=PHONES[1], first_name="Bob", email="bob@example.com")])
    await service.load(db, 'name = "mail"\n[[touches]]\nchannel = "email"\ndelay = "0d"\n'  # type: ignore[arg-type]
                       'subject = "Hello {first_name}"\ntemplate = "Still interested, '
                       '{first_name}? {booking_url}"\n')
    await service.enroll(db, "mail", everyone=True, now=datetime.now(UTC))  # type: ignore[arg-type]
    await db.close()
    env = {"LEADLINE_STORE_DATABASE_URL": url, "LEADLINE_EMAIL_HOST": "127.0.0.1",
           "LEADLINE_EMAIL_PORT": str(smtp.port), "LEADLINE_EMAIL_STARTTLS": "false",
           "LEADLINE_EMAIL_FROM_ADDRESS": "Acme <hello@acme.example>",
           "LEADLINE_EMAIL_POSTAL_ADDRESS": "1 Main St, Springfield, IL 62701",
           "LEADLINE_EMAIL_UNSUBSCRIBE_BASE_URL": "https://acme.example",
           "LEADLINE_EMAIL_POLL_S": "0.1", "LEADLINE_CAMPAIGNS_TICK_S": "0.1",
           "LEADLINE_SMS_BOOKING_URL": "https://book.example/acme"}
    srv, runner = await start_server(env)
    try:
        def mails() -> list[EmailMessage]:
            return [BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[misc]
                    for _, _, raw in smtp.recorder.received]

        await eventually(lambda: len(mails()) >= 2, "both touches mailed", limit_s=20)
        by_to = {str(m["To"]): m for m in mails()}
        ann = by_to["ann@example.com"]
        assert ann["Subject"] == "Hello Ann"
        link = str(ann["List-Unsubscribe"]).strip("<>")
        assert link.startswith("https://acme.example/email/unsubscribe?t=")
        local = srv.url + link.removeprefix("https://acme.example")
        reply = EmailMessage()
        reply["From"] = "Bob <bob@example.com>"
        reply["To"] = "hello@acme.example"
        reply["Subject"] = "Re: Hello Bob"
        reply["Message-ID"] = "<bob-1@example.com>"
        reply.set_content("What does it cost?\n\n> Still interested, Bob?\n")
        async with aiohttp.ClientSession() as http:
            page = await http.get(local)
            assert page.status == 200 and "Unsubscribe" in await page.text()
            r = await http.post(local, data="List-Unsubscribe=One-Click",
                                headers={"Content-Type": "application/x-www-form-urlencoded"},
                                allow_redirects=False)
            assert r.status == 200
            r = await http.post(f"{srv.url}/email/inbound", data=reply.as_bytes(),
                                headers={"Content-Type": "message/rfc822"})
            assert r.status == 200 and (await r.json())["lead"] == PHONES[1]
        store = srv.runtime.persistence.db
        lead = await store.get_lead(PHONES[0])
        assert lead is not None and lead.opted_out
        await eventually(lambda: len(mails()) >= 3, "the reply was mailed", limit_s=20)
        answer = mails()[-1]
        assert answer["To"] == "bob@example.com" and answer["Subject"] == "Re: Hello Bob"
        assert answer["List-Unsubscribe"] is None  # a reply, not marketing
        async with aiohttp.ClientSession() as http:
            async def scraped() -> str | None:
                text = await (await http.get(f"{srv.url}/metrics")).text()
                # The third mail may be counted a moment after the SMTP server has it.
                return text if 'leadline_email_outbound_total{outcome="sent"} 3.0' in text \
                    else None

            metrics = await eventually(scraped, "three mails counted as sent", limit_s=10)
        assert 'leadline_email_http_total{kind="unsubscribes"} 1.0' in metrics
        assert 'leadline_campaign_touches_total{kind="sent"} 2.0' in metrics
    finally:
        await runner.cleanup()
        smtp.down()


async def test_handoff_alerts_the_owner_by_sms_and_email(tmp_path: Path) -> None:
    from ops import config as config_mod
    from ops.campaigns import build_scheduler
    from ops.messaging import build_parts
    from sms.campaigns import service

    url = f"sqlite:///{tmp_path}/h.db"
    cfg = config_mod.load(None, environ={
        "LEADLINE_STORE_DATABASE_URL": url, "LEADLINE_SMS_FROM_NUMBER": "+14155550123",
        "LEADLINE_SMS_OWNER_PHONE": "+14155550199", "LEADLINE_EMAIL_HOST": "127.0.0.1",
        "LEADLINE_EMAIL_STARTTLS": "false", "LEADLINE_EMAIL_FROM_ADDRESS": "hi@acme.example",
        "LEADLINE_EMAIL_POSTAL_ADDRESS": "1 Main St", "LEADLINE_EMAIL_OWNER_ADDRESS":
        "owner@acme.example", "LEADLINE_EMAIL_UNSUBSCRIBE_BASE_URL": "https://acme.example",
        "LEADLINE_CAMPAIGNS_LEAD_URL": "https://app.acme.example/leads/{phone}"})
    db = await open_database(url)
    try:
        from tests.sms.conftest import Clock

        clock = Clock(datetime(2026, 6, 9, 16, 0, tzinfo=UTC))
        db.clock = clock  # type: ignore[attr-defined]
        await db.upsert_leads([LeadInput(phone=PHONES[0], first_name="Ann")])
        await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
        await service.enroll(db, "reactivation", everyone=True, now=clock())  # type: ignore[arg-type]
        conversation, _ = build_parts(lambda: cfg, db)
        conversation._clock = clock  # type: ignore[attr-defined]
        sched = build_scheduler(lambda: cfg, db, conversation=conversation,  # type: ignore[arg-type]
                                clock=clock)
        assert len((await sched.tick(clock())).sent) == 1
        clock.advance(minutes=20)
        await db.record_inbound_message(phone=PHONES[0], channel="sms", body="Yes please call",
                                        from_addr=PHONES[0], to_addr="+14155550123",
                                        provider_sid="SMi", segments=1, at=clock())
        await db.set_lead_status(PHONES[0], "interested")
        clock.advance(seconds=30)
        at = clock()
        r = await sched.tick(at)
        assert r.skipped == [{"lead": PHONES[0], "touch": 2, "reason": "handoff"}]
        lead = await db.get_lead(PHONES[0])
        assert lead is not None and lead.human_takeover
        owner = await db.list_messages("+14155550199")
        [owner_sms] = [m for m in owner if m.channel == "sms"]
        assert owner_sms.purpose == "owner_notice"
        assert "Yes please call" in owner_sms.body and PHONES[0] in owner_sms.body
        assert "https://app.acme.example/leads/" + PHONES[0] in owner_sms.body
        [owner_mail] = [m for m in owner if m.channel == "email"]
        assert owner_mail.purpose == "owner_notice"
        items = await db.claim_email_outbox(now=at, limit=10, lease_s=30)  # type: ignore[attr-defined]
        [item] = items
        assert item.to_addr == "owner@acme.example" and "Yes please call" in item.body
        assert "interested" in item.subject
        await conversation.agent.aclose()  # type: ignore[attr-defined]
    finally:
        await db.close()
