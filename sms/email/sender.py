"""The email outbox sender: due email rows → SMTP through aiosmtplib, nothing lost or doubled.

Every email (campaign touch, reply, owner alert) is first committed as a message row plus
an email outbox row with an idempotency key (`queue_email`); only then does this worker
claim it (a lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL), ask the compliance engine
again (an opt-out may have arrived since it was queued), build the MIME message and hand
it to the SMTP server. The answer is recorded at once:

- accepted → row sent, message "sent" with its Message-ID;
- a permanent refusal (5xx for the recipient or the data) → failed, and the address is
  recorded as bounced, so no further mail goes to it;
- the server down, refusing for now (4xx), timing out, or a login failure → retried with
  capped, jittered exponential backoff, counted; after `max_attempts` the row fails (it is
  kept, visible, never silently dropped).

Exactly-once holds like the SMS outbox: a crash before the SMTP call re-sends after the
lease lapses; only a crash between the server's 250 and our commit can repeat a mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TYPE_CHECKING, Protocol

from sms.email.message import WIRE_POLICY, build_message, unsubscribe_url
from sms.email.settings import EmailSettings
from sms.email.tokens import make_token
from sms.outbox_loop import OutboxLoop
from store.errors import StoreError
from store.models import utcnow

if TYPE_CHECKING:
    from store.campaign_models import EmailOutboxItem
    from store.repository import SqlRepository

log = logging.getLogger("leadline.email")


class EmailFailure(Exception):
    """The SMTP server refused (`code`, `permanent`) or could not be reached."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False,
                 recipient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent
        # The refusal is about the address (a bounce), not the content or the sender.
        self.recipient = recipient


class EmailTransport(Protocol):
    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None: ...

    async def aclose(self) -> None: ...


class SmtpTransport:
    """One kept-open aiosmtplib connection (reconnected after any failure), STARTTLS or
    TLS and login as configured. Sends are serialised on the connection."""

    def __init__(self, settings: Callable[[], EmailSettings]) -> None:
        self._settings = settings
        self._client: object | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> object:
        import aiosmtplib

        s = self._settings()
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, use_tls=s.tls,
                                 start_tls=s.starttls if not s.tls else False,
                                 timeout=s.timeout_s)
        await client.connect()
        if s.username:
            await client.login(s.username, s.password)
        return client

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        import aiosmtplib

        async with self._lock:
            try:
                if self._client is None:
                    self._client = await self._connect()
                client = self._client
                # Our own bytes, not send_message: aiosmtplib would re-flatten with a
                # 78-column policy and fold the List-Unsubscribe header.
                await client.sendmail(sender, [recipient],  # type: ignore[attr-defined]
                                      message.as_bytes(policy=WIRE_POLICY))
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await self._drop()
                codes = [e.code for e in exc.recipients]
                code = codes[0] if codes else None
                raise EmailFailure(f"recipient refused: {exc}", code=code,
                                   permanent=bool(code and code >= 500),
                                   recipient=True) from exc
            except aiosmtplib.SMTPAuthenticationError as exc:
                await self._drop()
                raise EmailFailure(f"SMTP login failed: {exc.message}", code=exc.code) from exc
            except aiosmtplib.SMTPResponseException as exc:
                await self._drop()
                raise EmailFailure(f"SMTP {exc.code}: {exc.message}", code=exc.code,
                                   permanent=exc.code >= 500) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await self._drop()
                raise EmailFailure(f"SMTP server unavailable: {type(exc).__name__}: {exc}"
                                   ) from exc

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.quit()  # type: ignore[attr-defined]


class EmailStats:
    def __init__(self) -> None:
        self.claimed = 0
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.bounced = 0
        self.cancelled = 0
        self.deferred = 0
        self.loop_errors = 0


class EmailSender(OutboxLoop):
    task_name = "email-outbox"
    _log = log

    def __init__(self, db: SqlRepository, transport: EmailTransport, *,
                 settings: Callable[[], EmailSettings], business_name: Callable[[], str],
                 secret: str, clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.transport = transport
        self._settings = settings
        self._business_name = business_name
        self._secret = secret
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = EmailStats()
        self._init_loop(lambda: self._settings().poll_s, sleep)

    async def stop(self) -> None:
        await super().stop()
        await self.transport.aclose()

    async def drain_once(self) -> int:
        cfg = self._settings()
        if not cfg.configured:
            return 0
        items = await self.db.claim_email_outbox(now=self._clock(), limit=cfg.batch,
                                                 lease_s=cfg.lease_s)
        self.stats.claimed += len(items)
        for item in items:
            try:
                await self.deliver(item)
            except StoreError as exc:  # the row stays leased and is claimed again later
                self.stats.loop_errors += 1
                log.error("email row %s not recorded: %s", item.id, exc)
        return len(items)

    async def deliver(self, item: EmailOutboxItem) -> str:
        from agents.compliance.engine import ContactRequest
        from agents.compliance.gate import check_and_audit

        cfg = self._settings()
        now = self._clock()
        decision = await check_and_audit(
            self.db, ContactRequest(phone=item.phone, channel="email", purpose=item.purpose,
                                    at=now), source=f"email_outbox:{item.id}")
        if not decision.allowed:
            if decision.next_allowed_at is not None:
                await self.db.email_retry(item.id, f"deferred: {decision.reason}",
                                          decision.next_allowed_at)
                self.stats.deferred += 1
                return "deferred"
            await self.db.email_failed(item.id, f"refused: {decision.reason}",
                                       status="cancelled")
            self.stats.cancelled += 1
            return "cancelled"
        if await self.db.is_bounced(item.to_addr):
            await self.db.email_failed(item.id, "address bounced before", status="cancelled")
            self.stats.cancelled += 1
            return "cancelled"
        link = None
        if item.purpose == "marketing":
            link = unsubscribe_url(cfg.unsubscribe_base_url, make_token(self._secret,
                                                                        item.phone))
        try:
            message = build_message(
                from_addr=cfg.from_address, to_addr=item.to_addr, subject=item.subject,
                body=item.body, purpose=item.purpose, business_name=self._business_name(),
                postal_address=cfg.postal_address, reply_to=cfg.reply_to,
                unsubscribe=link, at=now)
        except ValueError as exc:  # a malformed stored address: permanent, visible
            await self.db.email_failed(item.id, f"cannot build message: {exc}")
            await self.db.record_bounce(item.to_addr, phone=item.phone, code=None,
                                        reason=f"invalid address: {exc}")
            self.stats.failed += 1
            self.stats.bounced += 1
            return "failed"
        try:
            await self.transport.send(message, sender=parseaddr(cfg.from_address)[1],
                                      recipient=item.to_addr)
        except EmailFailure as exc:
            return await self._failed(item, exc)
        await self.db.email_sent(item.id, str(message["Message-ID"]), at=now)
        self.stats.sent += 1
        return "sent"

    async def _failed(self, item: EmailOutboxItem, exc: EmailFailure) -> str:
        cfg = self._settings()
        if exc.permanent:
            await self.db.email_failed(item.id, str(exc), exc.code)
            self.stats.failed += 1
            if exc.recipient:
                await self.db.record_bounce(item.to_addr, phone=item.phone, code=exc.code,
                                            reason=str(exc))
                self.stats.bounced += 1
            log.warning("email failed", extra={"outbox_id": item.id, "code": exc.code,
                                               "detail": str(exc)[:200]})
            return "failed"
        if item.attempts >= cfg.max_attempts:
            await self.db.email_failed(item.id, f"gave up after {item.attempts} attempts: "
                                                f"{exc}", exc.code)
            self.stats.failed += 1
            return "failed"
        delay = min(cfg.backoff_cap_s, cfg.backoff_base_s * 2 ** max(0, item.attempts - 1))
        delay *= 0.5 + self._rng.random() / 2
        await self.db.email_retry(item.id, str(exc), self._clock() + timedelta(seconds=delay))
        self.stats.retried += 1
        log.info("email retried", extra={"outbox_id": item.id, "attempt": item.attempts,
                                         "delay_s": round(delay, 1), "detail": str(exc)[:200]})
        return "retried"
