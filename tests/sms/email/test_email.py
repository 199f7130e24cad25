"""The email channel against a real SMTP server: what arrives, retries, bounces, opt-outs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sms.email.message import build_message
from sms.email.sender import EmailSender, SmtpTransport
from sms.email.tokens import make_token, read_token
from store.database import Database
from store.models import LeadInput
from tests.sms.conftest import Clock
from tests.sms.email.conftest import SmtpServer

SECRET = "s3cret-for-tests"
LEAD = "+12125550101"


def test_tokens_round_trip_and_forgeries_fail() -> None:
    t = make_token(SECRET, LEAD)
    assert read_token(SECRET, t) == LEAD and len(t) < 40
    assert read_token("other", t) is None
    digits, mac = t.split(".")
    assert read_token(SECRET, f"12125550102.{mac}") is None
    assert read_token(SECRET, f"{digits}.{mac[:-1]}A" if mac[-1] != "A" else f"{digits}."
                      f"{mac[:-1]}B") is None


@given(st.text(max_size=80))
def test_any_string_is_not_a_token(text: str) -> None:
    assert read_token(SECRET, text) is None or text.strip() == make_token(
        SECRET, "+" + text.strip().split(".")[0])


def test_list_unsubscribe_is_one_unfolded_unencoded_header() -> None:
    url = f"https://acme.example/email/unsubscribe?t={make_token(SECRET, LEAD)}"
    msg = build_message(from_addr="Acme <hello@acme.example>", to_addr="a@example.com",
                        subject="Ünïcode subject that is long enough to need folding, surely",
                        body="Hi there\n\nSecond paragraph", purpose="marketing",
                        business_name="Acme", postal_address="1 Main St", unsubscribe=url)
    raw = msg.as_bytes()
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert b"=?utf-8?" not in raw.split(b"List-Unsubscribe:")[1].split(b"\r\n")[0]


async def _lead(db: Database, email: str = "ann@example.com") -> None:
    await db.upsert_leads([LeadInput(phone=LEAD, first_name="Ann", email=email)])


async def test_marketing_mail_arrives_multipart_with_footer_and_headers(
        db: Database, clock: Clock, smtp: SmtpServer) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await _lead(db)
    cfg = smtp.settings()
    sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,  # type: ignore[arg-type]
                         business_name=lambda: "Acme Motors", secret=SECRET, clock=clock)
    msg, _, created = await db.queue_email(  # type: ignore[attr-defined]
        phone=LEAD, to_addr="ann@example.com", from_addr=cfg.from_address,
        subject="A quick follow-up", body="Hi Ann,\n\nStill thinking about it?",
        purpose="marketing", idempotency_key="marketing:campaign:1:2")
    assert created
    _, _, again = await db.queue_email(  # type: ignore[attr-defined]
        phone=LEAD, to_addr="ann@example.com", from_addr=cfg.from_address,
        subject="A quick follow-up", body="x", purpose="marketing",
        idempotency_key="marketing:campaign:1:2")
    assert not again
    assert await sender.drain_once() == 1
    assert await sender.drain_once() == 0  # nothing twice
    await sender.transport.aclose()
    [(mail_from, rcpts, raw)] = smtp.recorder.received
    token = make_token(SECRET, LEAD)
    assert (f"\r\nList-Unsubscribe: <https://acme.example/email/unsubscribe?t={token}>"
            "\r\n").encode() in raw
    assert mail_from == "hello@acme.example" and rcpts == ["ann@example.com"]
    [m] = smtp.recorder.messages()
    assert m.get_content_type() == "multipart/alternative"
    assert m["Subject"] == "A quick follow-up" and m["Reply-To"] == "team@acme.example"
    unsub = m["List-Unsubscribe"]
    assert unsub == f"<https://acme.example/email/unsubscribe?t={token}>"
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = m.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert "1 Main St, Springfield, IL 62701" in part and token in part
    assert "Still thinking about it?" in text
    [stored] = [x for x in await db.list_messages(LEAD) if x.id == msg.id]
    assert stored.status == "sent" and stored.provider_sid == m["Message-ID"]
    assert stored.channel == "email"


async def test_smtp_down_is_retried_with_backoff_then_sent_once(
        db: Database, clock: Clock, smtp: SmtpServer) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await _lead(db)
    cfg = smtp.settings()
    smtp.down()
    sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,  # type: ignore[arg-type]
                         business_name=lambda: "Acme", secret=SECRET, clock=clock)
    await db.queue_email(phone=LEAD, to_addr="ann@example.com",  # type: ignore[attr-defined]
                         from_addr=cfg.from_address, subject="s", body="b",
                         purpose="marketing", idempotency_key="marketing:campaign:9:1")
    assert await sender.drain_once() == 1
    assert sender.stats.retried == 1 and sender.stats.sent == 0
    assert await sender.drain_once() == 0  # backing off: not due yet
    smtp.up()
    smtp.recorder.busy = True  # 451: still temporary
    clock.advance(minutes=2)
    assert await sender.drain_once() == 1 and sender.stats.retried == 2
    smtp.recorder.busy = False
    clock.advance(minutes=5)
    assert await sender.drain_once() == 1 and sender.stats.sent == 1
    await sender.transport.aclose()
    assert len(smtp.recorder.received) == 1
    assert await db.email_pending_count() == 0  # type: ignore[attr-defined]


async def test_bounce_is_recorded_and_the_address_gets_nothing_more(
        db: Database, clock: Clock, smtp: SmtpServer) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await _lead(db, "gone@example.com")
    smtp.recorder.refuse.add("gone@example.com")
    cfg = smtp.settings()
    sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,  # type: ignore[arg-type]
                         business_name=lambda: "Acme", secret=SECRET, clock=clock)
    for n in (1, 2):
        await db.queue_email(phone=LEAD, to_addr="gone@example.com",  # type: ignore[attr-defined]
                             from_addr=cfg.from_address, subject="s", body="b",
                             purpose="marketing", idempotency_key=f"marketing:campaign:5:{n}")
        await sender.drain_once()
    await sender.transport.aclose()
    assert sender.stats.bounced == 1 and sender.stats.failed == 1 and sender.stats.cancelled == 1
    assert await db.is_bounced("Gone@Example.com")  # type: ignore[attr-defined]
    statuses = sorted(m.status for m in await db.list_messages(LEAD))
    assert statuses == ["cancelled", "failed"]
    assert smtp.recorder.received == []


async def test_opted_out_lead_gets_no_mail(db: Database, clock: Clock,
                                           smtp: SmtpServer) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await _lead(db)
    cfg = smtp.settings()
    sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,  # type: ignore[arg-type]
                         business_name=lambda: "Acme", secret=SECRET, clock=clock)
    await db.queue_email(phone=LEAD, to_addr="ann@example.com",  # type: ignore[attr-defined]
                         from_addr=cfg.from_address, subject="s", body="b",
                         purpose="marketing", idempotency_key="marketing:campaign:7:1")
    await db.add_consent_event(LEAD, "opt_out", "sms", "STOP")
    await sender.drain_once()
    await sender.transport.aclose()
    assert smtp.recorder.received == [] and sender.stats.cancelled == 1
    assert (await db.list_messages(LEAD))[0].status == "cancelled"


async def test_an_address_with_a_header_injection_is_failed_not_sent(
        db: Database, clock: Clock, smtp: SmtpServer) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await _lead(db)
    cfg = smtp.settings()
    sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,  # type: ignore[arg-type]
                         business_name=lambda: "Acme", secret=SECRET, clock=clock)
    bad = "ann@example.com\r\nBcc: everyone@example.com"
    await db.queue_email(phone=LEAD, to_addr=bad, from_addr=cfg.from_address,  # type: ignore[attr-defined]
                         subject="s", body="b", purpose="conversation",
                         idempotency_key="conversation:email:1")
    await sender.drain_once()
    await sender.transport.aclose()
    assert smtp.recorder.received == [] and sender.stats.failed == 1
    assert (await db.list_messages(LEAD))[0].status == "failed"
