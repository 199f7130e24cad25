"""Inbound email: a raw RFC 822 message in, stored, consent first, then the same agent as SMS.

Providers forward received mail as a raw MIME document: SendGrid Inbound Parse with
"POST the raw, full MIME message" (form field `email`), Mailgun routes to a `mime`
endpoint (field `body-mime`), or a plain POST of the message itself
(`message/rfc822`). `parse_raw` reads it with the stdlib parser (default policy, so
encoded words and charsets are decoded), takes the text part and cuts the quoted
history a mail client appends, since the agent should answer what the lead wrote now.

The sender is matched to a lead by address. Then, like an inbound SMS: the message is
stored (idempotent on its Message-ID), an unsubscribe/stop request becomes an opt-out
consent event on channel "email" (which ends marketing on every channel), and
otherwise the conversation agent decides; its reply goes out by email through the
compliance engine and the email outbox. Delivery status notifications (RFC 3464
bounce reports) record the failed address as bounced instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import msgspec

from sms.email.settings import EmailSettings

if TYPE_CHECKING:
    from agents.compliance.engine import CompliancePolicy
    from sms.conversation import ReplyAgent
    from store.repository import SqlRepository

log = logging.getLogger("leadline.email.inbound")

MAX_RAW_BYTES = 10 * 1024 * 1024
MAX_TEXT = 20_000
# Where the quoted history of a reply begins (Gmail, Apple Mail, Outlook, Thunderbird).
_QUOTE_START = re.compile(
    r"^(On .{1,200} wrote:\s*$|-{2,}\s*Original Message\s*-{2,}|From: .+|>.*|_{10,})",
    re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")

ReplyQueue = Callable[[str, str, str, str, str, str], Awaitable[str]]


class ParsedMail(msgspec.Struct, frozen=True):
    sender: str
    subject: str
    message_id: str | None
    text: str
    bounce: tuple[str, int | None] | None = None  # (failed address, SMTP-ish code)


class InboundStats:
    def __init__(self) -> None:
        self.received = 0
        self.duplicates = 0
        self.unknown_sender = 0
        self.bad = 0
        self.opt_outs = 0
        self.replies = 0
        self.bounces = 0
        self.silenced = 0


def strip_quoted(text: str) -> str:
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_START.match(line.strip()) and lines:
            break
        lines.append(line)
    return "\n".join(lines).strip()[:MAX_TEXT]


def _text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset: best effort
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_subtype() == "html":
        content = _TAGS.sub(" ", content)
    return str(content)


def _bounce(msg: EmailMessage) -> tuple[str, int | None] | None:
    """The failed recipient of an RFC 3464 delivery status report with a 5.x.x status."""
    if msg.get_content_type() != "multipart/report":
        return None
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        fields: dict[str, str] = {}
        for block in part.get_payload():  # type: ignore[union-attr]
            for key, value in block.items():
                fields.setdefault(key.lower(), str(value))
        status = fields.get("status", "")
        recipient = fields.get("final-recipient", "").split(";")[-1].strip()
        if status.startswith("5") and "@" in recipient:
            code = None
            diag = fields.get("diagnostic-code", "")
            m = re.search(r"\b([45]\d\d)\b", diag)
            if m:
                code = int(m.group(1))
            return recipient.lower(), code
    return None


def parse_raw(raw: bytes) -> ParsedMail:
    """A raw RFC 822 message; ValueError for something that is not one."""
    if not raw or len(raw) > MAX_RAW_BYTES:
        raise ValueError("empty or oversized message")
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(msg, EmailMessage):
        raise ValueError("not an email message")
    sender = parseaddr(str(msg.get("From", "")))[1].strip().lower()
    if "@" not in sender:
        raise ValueError("message has no From address")
    subject = str(msg.get("Subject", ""))[:998]
    mid = str(msg.get("Message-ID", "")).strip() or None
    return ParsedMail(sender=sender, subject=subject, message_id=mid[:200] if mid else None,
                      text=strip_quoted(_text_of(msg)), bounce=_bounce(msg))


async def queue_email_reply(db: SqlRepository, *, policy: CompliancePolicy, from_addr: str,
                            phone: str, to_addr: str, subject: str, body: str, purpose: str,
                            key: str, wake: Callable[[], None]) -> str:
    """A reply or alert by email: compliance first, then the email outbox. The state:
    "queued", "deferred" (due at next_allowed_at), "refused" or "duplicate"."""
    from agents.compliance.engine import ContactRequest
    from agents.compliance.gate import check_and_audit

    now = db.clock()
    decision = await check_and_audit(db, ContactRequest(
        phone=phone, channel="email", purpose=purpose, at=now), policy,
        source="email_reply")
    if not decision.allowed and decision.next_allowed_at is None:
        return "refused"
    _, _, created = await db.queue_email(
        phone=phone, to_addr=to_addr, from_addr=from_addr, subject=subject, body=body,
        purpose=purpose, idempotency_key=key, at=now,
        not_before=None if decision.allowed else decision.next_allowed_at)
    if not created:
        return "duplicate"
    wake()
    return "queued" if decision.allowed else "deferred"


class InboundMail:
    def __init__(self, db: SqlRepository, *, conversation_agent: ReplyAgent | None,
                 queue_reply: ReplyQueue | None,
                 settings: Callable[[], EmailSettings]) -> None:
        self.db = db
        self.agent = conversation_agent
        self.queue_reply = queue_reply
        self._settings = settings
        self.stats = InboundStats()

    async def receive(self, raw: bytes) -> dict[str, Any]:
        """Handle one raw message; a small JSON-able outcome. ValueError for bad input."""
        from agents.compliance.consent import classify_consent

        try:
            mail = parse_raw(raw)
        except ValueError:
            self.stats.bad += 1
            raise
        if mail.bounce is not None:
            address, code = mail.bounce
            phone = await self.db.lead_phone_by_email(address)
            await self.db.record_bounce(address, phone=phone, code=code,
                                        reason=f"bounce report: {mail.subject[:200]}")
            self.stats.bounces += 1
            return {"outcome": "bounce", "address": address}
        phone = await self.db.lead_phone_by_email(mail.sender)
        if phone is None:
            self.stats.unknown_sender += 1
            log.info("inbound email from an address no lead has; not stored",
                     extra={"from_domain": mail.sender.rsplit("@", 1)[-1]})
            return {"outcome": "unknown_sender"}
        cfg = self._settings()
        msg, created = await self.db.record_inbound_message(
            phone=phone, channel="email", body=mail.text or mail.subject,
            from_addr=mail.sender, to_addr=cfg.from_address or "inbound",
            provider_sid=mail.message_id, segments=1, at=self.db.clock())
        if not created:
            self.stats.duplicates += 1
            return {"outcome": "duplicate", "lead": phone}
        self.stats.received += 1
        first_line = (mail.text.strip().split("\n", 1)[0] if mail.text else "") or mail.subject
        if classify_consent(first_line) == "opt_out" or classify_consent(mail.subject.removeprefix(
                "Re: ").strip()) == "opt_out":
            self.stats.opt_outs += 1
            if not await self.db.is_opted_out(phone):
                await self.db.add_consent_event(phone, "opt_out", "email", first_line[:2000],
                                                source=f"email:{mail.message_id}")
            await self.db.stop_campaigns_for(phone, "opt_out")
            await self.db.set_message_intent(msg.id, "opt_out", 1.0)
            return {"outcome": "opt_out", "lead": phone}
        lead = await self.db.get_lead(phone)
        if lead is None or lead.opted_out or lead.dnc or lead.human_takeover or \
                self.agent is None:
            self.stats.silenced += 1
            return {"outcome": "stored", "lead": phone}
        thread = await self.db.list_messages(phone, limit=30)
        decision = await self.agent.decide(lead, thread, msg)
        if decision.intent is not None:
            await self.db.set_message_intent(msg.id, decision.intent, decision.confidence)
        if decision.new_status and decision.new_status != lead.status:
            await self.db.set_lead_status(phone, decision.new_status)
        state = "no_reply"
        if decision.reply and self.queue_reply is not None:
            subject = mail.subject if mail.subject.lower().startswith("re:") else \
                f"Re: {mail.subject}".strip()
            state = await self.queue_reply(phone, mail.sender, subject or "Re:", decision.reply,
                                           "conversation", f"conversation:email:{msg.id}")
            self.stats.replies += 1
        return {"outcome": "replied" if state in ("queued", "deferred") else state,
                "lead": phone, "handoff": decision.handoff}
