"""Unsubscribe (page and RFC 8058 one-click) and inbound mail through real aiohttp routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.chat.settings import SmsSettings
from sms.agent import ChatReplyAgent
from sms.campaigns import service
from sms.email.http import EmailRoutes
from sms.email.inbound import InboundMail, parse_raw
from sms.email.settings import EmailSettings
from sms.email.tokens import make_token
from store.database import Database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML
from tests.sms.conftest import Clock

SECRET = "route-secret"
LEAD = "+12125550101"
CFG = EmailSettings(inbound_token="inb-tok")


@pytest.fixture
async def client(db: Database, clock: Clock) -> AsyncIterator[tuple[TestClient, list]]:  # type: ignore[type-arg]
    db.clock = clock  # type: ignore[attr-defined]
    await db.upsert_leads([LeadInput(phone=LEAD, first_name="Ann", email="Ann@Example.com")])
    replies: list[tuple[str, ...]] = []

    async def queue(*args: str) -> str:
        replies.append(args)
        return "queued"

    inbound = InboundMail(db, conversation_agent=ChatReplyAgent(lambda: SmsSettings(  # type: ignore[arg-type]
        booking_url="https://b.example/x")), queue_reply=queue, settings=lambda: CFG)
    routes = EmailRoutes(db, SECRET, inbound, settings=lambda: CFG)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_get("/email/unsubscribe", routes.unsubscribe_page)
    app.router.add_post("/email/unsubscribe", routes.unsubscribe)
    app.router.add_post("/email/inbound", routes.inbound)
    async with TestClient(TestServer(app)) as c:
        c.routes = routes  # type: ignore[attr-defined]
        yield c, replies


async def test_get_shows_a_page_and_changes_nothing(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    t = make_token(SECRET, LEAD)
    r = await c.get(f"/email/unsubscribe?t={t}")
    assert r.status == 200 and "<form method='post'" in await r.text()
    assert await db.list_consent_events(LEAD) == []


async def test_one_click_post_opts_out_once_and_stops_campaigns(client, db: Database,  # type: ignore[no-untyped-def]
                                                                clock: Clock) -> None:
    c, _ = client
    await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
    await service.enroll(db, "reactivation", everyone=True, now=clock())  # type: ignore[arg-type]
    t = make_token(SECRET, LEAD)
    for _ in range(2):  # the replay changes nothing more
        r = await c.post(f"/email/unsubscribe?t={t}", data="List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"},
                         allow_redirects=False)
        assert r.status == 200
    events = await db.list_consent_events(LEAD)
    assert [(e.kind, e.channel, e.text) for e in events] == [
        ("opt_out", "email", "List-Unsubscribe=One-Click")]
    lead = await db.get_lead(LEAD)
    assert lead is not None and lead.opted_out
    record = await db.get_campaign("reactivation")  # type: ignore[attr-defined]
    e = await db.get_enrollment(record.id, LEAD)  # type: ignore[attr-defined]
    assert e.state == "stopped" and e.stop_reason == "opt_out"
    assert c.routes.stats.unsubscribes == 1 and c.routes.stats.repeat_unsubscribes == 1


async def test_the_pages_button_works_too(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.post("/email/unsubscribe", data={"t": make_token(SECRET, LEAD)})
    assert r.status == 200 and await db.is_opted_out(LEAD)


@pytest.mark.parametrize("token", ["", "12125550101.AAAAAAAAAAAAAAAAAAAAAA", "x" * 500,
                                   make_token("wrong-secret", LEAD)])
async def test_forged_tokens_get_400_and_change_nothing(client, db: Database,  # type: ignore[no-untyped-def]
                                                        token: str) -> None:
    c, _ = client
    assert (await c.get("/email/unsubscribe", params={"t": token})).status == 400
    r = await c.post("/email/unsubscribe", params={"t": token},
                     data="List-Unsubscribe=One-Click",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    assert await db.list_consent_events(LEAD) == []
    assert c.routes.stats.forged_tokens == 2


def mail(body: str, *, sender: str = "ann@example.com", subject: str = "Re: A quick follow-up",
         mid: str = "<m1@example.com>") -> bytes:
    m = EmailMessage()
    m["From"] = f"Ann <{sender}>"
    m["To"] = "hello@acme.example"
    m["Subject"] = subject
    m["Message-ID"] = mid
    m.set_content(body + "\n\nOn Tue, Jun 9, 2026 at 10:00 AM Acme wrote:\n> Still thinking?\n")
    return m.as_bytes()


async def test_inbound_reply_goes_to_the_agent_and_is_answered_by_email(client,  # type: ignore[no-untyped-def]
                                                                        db: Database) -> None:
    c, replies = client
    raw = mail("Yes, I'd like to book a time")
    r = await c.post("/email/inbound?token=inb-tok", data=raw,
                     headers={"Content-Type": "message/rfc822"})
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["lead"] == LEAD and out["outcome"] == "replied"
    [inbound] = [m for m in await db.list_messages(LEAD) if m.direction == "inbound"]
    assert inbound.channel == "email" and inbound.body == "Yes, I'd like to book a time"
    assert inbound.intent is not None
    [(phone, to, subject, body, purpose, _key)] = replies
    assert (phone, to, subject, purpose) == (LEAD, "ann@example.com", "Re: A quick follow-up",
                                             "conversation")
    assert "https://b.example/x" in body
    # The provider retries: the same Message-ID is stored once and answered once.
    r = await c.post("/email/inbound?token=inb-tok", data=raw,
                     headers={"Content-Type": "message/rfc822"})
    assert (await r.json())["outcome"] == "duplicate" and len(replies) == 1


async def test_sendgrid_form_and_unsubscribe_reply(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    c, replies = client
    r = await c.post("/email/inbound?token=inb-tok", data={
        "email": mail("unsubscribe", mid="<m2@example.com>").decode(), "to": "x"})
    assert r.status == 200 and (await r.json())["outcome"] == "opt_out"
    [e] = await db.list_consent_events(LEAD)
    assert (e.kind, e.channel) == ("opt_out", "email") and replies == []


async def test_bad_inbound_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    assert (await c.post("/email/inbound", data=mail("hi"))).status == 403
    r = await c.post("/email/inbound?token=inb-tok", data=b"no headers at all",
                     headers={"Content-Type": "message/rfc822"})
    assert r.status == 400
    r = await c.post("/email/inbound?token=inb-tok", data=mail("hi", sender="who@else.org"),
                     headers={"Content-Type": "message/rfc822"})
    assert (await r.json())["outcome"] == "unknown_sender"


async def test_bounce_report_records_the_address(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    dsn = (b"From: MAILER-DAEMON@mx.example\r\nTo: hello@acme.example\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=BB\r\n\r\n"
           b"--BB\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
           b"--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"Reporting-MTA: dns; mx.example\r\n\r\n"
           b"Final-Recipient: rfc822; ann@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--BB--\r\n")
    r = await c.post("/email/inbound?token=inb-tok", data=dsn,
                     headers={"Content-Type": "message/rfc822"})
    assert (await r.json()) == {"outcome": "bounce", "address": "ann@example.com"}
    assert await db.is_bounced("ann@example.com")  # type: ignore[attr-defined]


def test_parse_raw_cuts_quoted_history() -> None:
    p = parse_raw(mail("Sounds good"))
    assert p.text == "Sounds good" and p.sender == "ann@example.com"
