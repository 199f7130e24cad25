"""Campaigns and email wired into a process: the scheduler, the email sender, the routes.

Composition only: the campaign scheduler (sms/campaigns) gets its compliance policy, its
sender identity and its wake-ups as callables; the handoff alert is built here from the
SMS conversation (owner text, through compliance and the SMS outbox) and the email
outbox (owner mail), so sms/campaigns needs neither. The CLI (`leadline campaigns tick`)
builds the same scheduler as the server, so a catch-up pass behaves exactly alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ops.config import Config

if TYPE_CHECKING:
    from sms.campaigns.scheduler import Scheduler
    from sms.conversation import Conversation
    from sms.email.http import EmailRoutes
    from sms.email.sender import EmailSender
    from store.models import Lead
    from store.repository import SqlRepository

log = logging.getLogger("leadline.campaigns")
UNSUBSCRIBE_PATH = "/email/unsubscribe"
INBOUND_PATH = "/email/inbound"
SECRET_NAME = "email_unsubscribe_secret"


def sms_sender(config: Callable[[], Config]) -> Callable[[], str]:
    def sender() -> str:
        from store.phones import normalize_phone

        cfg = config().sms
        if cfg.messaging_service_sid:
            return cfg.messaging_service_sid
        if cfg.from_number:
            return normalize_phone(cfg.from_number)
        raise ValueError("set [sms] messaging_service_sid or [sms] from_number")

    return sender


def email_from(config: Callable[[], Config]) -> Callable[[], str | None]:
    def sender() -> str | None:
        cfg = config().email
        return cfg.from_address if cfg.configured else None

    return sender


def personalizer(config: Callable[[], Config]) -> Any:
    """The chat agent's LLM client rewriting a touch for its lead; None without an LLM."""
    from sms.campaigns.personalize import LlmPersonalizer

    if not config().sms.llm_base_url:
        return None
    return LlmPersonalizer(lambda: config().sms)


def handoff_notifier(config: Callable[[], Config], db: SqlRepository,
                     conversation: Conversation | None,
                     wake_email: Callable[[], None]) -> Callable[[Lead, str], Any]:
    """The owner alert: an SMS to `[sms] owner_phone` and a mail to `[email]
    owner_address`, each with the lead's recent thread and a link to the lead."""

    async def notify(lead: Lead, reason: str) -> None:
        from agents.compliance.engine import CompliancePolicy, ContactRequest
        from agents.compliance.gate import check_and_audit
        from store.phones import normalize_phone

        cfg = config()
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.phone
        link = cfg.campaigns.lead_url.replace("{phone}", lead.phone) \
            if cfg.campaigns.lead_url else ""
        thread = await db.list_messages(lead.phone, limit=10)
        lines = [f"{'<' if m.direction == 'inbound' else '>'} {m.body[:300]}" for m in thread
                 if m.status != "cancelled"]
        what = "booked" if reason == "booked" else "is interested"
        day = cfg_day(db)
        if conversation is not None and cfg.sms.owner_phone:
            last_in = next((m.body for m in reversed(thread) if m.direction == "inbound"), "")
            text = f"Lead {name} {lead.phone} {what}: \"{last_in[:160]}\" {link}".strip()
            await conversation.send(normalize_phone(cfg.sms.owner_phone), text, "owner_notice",
                                    f"handoff:campaign:{lead.phone}:{day}")
        if cfg.email.configured and cfg.email.owner_address:
            owner_phone = cfg.sms.owner_phone or lead.phone
            decision = await check_and_audit(db, ContactRequest(
                phone=owner_phone, channel="email", purpose="owner_notice",
                at=db.clock()), CompliancePolicy.from_settings(cfg.compliance),
                source="campaign_handoff")
            if not decision.allowed:
                return
            body = "\n".join([f"{name} ({lead.phone}) {what} and needs a person.",
                              *([f"Lead: {link}"] if link else []), "", "Thread:", *lines])
            _, _, created = await db.queue_email(
                phone=normalize_phone(owner_phone), to_addr=cfg.email.owner_address,
                from_addr=cfg.email.from_address, subject=f"Lead {name} {what}",
                body=body, purpose="owner_notice",
                idempotency_key=f"owner_notice:handoff:email:{lead.phone}:{day}")
            if created:
                wake_email()

    return notify


def cfg_day(db: SqlRepository) -> str:
    return f"{db.clock():%Y-%m-%d}"


def build_scheduler(config: Callable[[], Config], db: SqlRepository, *,
                    conversation: Conversation | None,
                    wake_sms: Callable[[], None] = lambda: None,
                    wake_email: Callable[[], None] = lambda: None,
                    clock: Callable[[], datetime] | None = None) -> Scheduler:
    from agents.compliance.engine import CompliancePolicy
    from sms.campaigns.scheduler import Scheduler
    from store.models import utcnow

    cache: dict[str, Any] = {}

    def policy() -> CompliancePolicy:
        settings = config().compliance
        if cache.get("settings") is not settings:
            cache["settings"] = settings
            cache["policy"] = CompliancePolicy.from_settings(settings)
        return cache["policy"]  # type: ignore[no-any-return]

    return Scheduler(
        db, settings=lambda: config().campaigns, policy=policy,
        business_name=lambda: config().sms.business_name,
        booking_url=lambda: config().sms.booking_url,
        sms_sender=sms_sender(config), email_from=email_from(config),
        wake_sms=wake_sms, wake_email=wake_email, personalizer=personalizer(config),
        notify_handoff=handoff_notifier(config, db, conversation, wake_email),
        clock=clock or utcnow)


async def unsubscribe_secret(config: Config, db: SqlRepository) -> str:
    """`[email] unsubscribe_secret`, else the one kept in the database (generated once),
    so the CLI and every server process sign and check the same tokens."""
    return config.email.unsubscribe_secret or await db.shared_secret(SECRET_NAME)


def build_email_sender(config: Callable[[], Config], db: SqlRepository,
                       secret: str) -> EmailSender:
    from sms.email.sender import EmailSender, SmtpTransport

    return EmailSender(db, SmtpTransport(lambda: config().email),
                       settings=lambda: config().email,
                       business_name=lambda: config().sms.business_name, secret=secret)


class Campaigns:
    """Built with the app (routes first), started after the store and messaging."""

    def __init__(self, config: Callable[[], Config],
                 database: Callable[[], SqlRepository | None],
                 conversation: Callable[[], Conversation | None],
                 wake_sms: Callable[[], None]) -> None:
        self._config = config
        self._database = database
        self._conversation = conversation
        self._wake_sms = wake_sms
        self.scheduler: Scheduler | None = None
        self.email_sender: EmailSender | None = None
        self.routes: EmailRoutes | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(UNSUBSCRIBE_PATH, self._dispatch("unsubscribe_page"))
        app.router.add_post(UNSUBSCRIBE_PATH, self._dispatch("unsubscribe"))
        app.router.add_post(INBOUND_PATH, self._dispatch("inbound"))

    def _dispatch(self, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            if self.routes is None:
                return web.Response(status=503, text="email not started")
            return await getattr(self.routes, name)(request)  # type: ignore[no-any-return]

        return handler

    async def start(self) -> None:
        from sms.email.http import EmailRoutes
        from sms.email.inbound import InboundMail

        db = self._database()
        if db is None:
            log.error("no database: campaigns and email are off")
            return
        cfg = self._config()
        secret = await unsubscribe_secret(cfg, db)
        self.email_sender = build_email_sender(self._config, db, secret)
        wake_email = self.email_sender.wake
        conversation = self._conversation()
        inbound = InboundMail(db, conversation_agent=conversation.agent if conversation
                              else None, queue_reply=self._reply_sender(db, wake_email),
                              settings=lambda: self._config().email)
        self.routes = EmailRoutes(db, secret, inbound, settings=lambda: self._config().email)
        if cfg.email.configured:
            self.email_sender.start()
        else:
            log.warning("no [email] host: email touches wait, replies are not mailed")
        if cfg.campaigns.run_scheduler:
            self.scheduler = build_scheduler(self._config, db, conversation=conversation,
                                             wake_sms=self._wake_sms, wake_email=wake_email)
            self.scheduler.start()

    def _reply_sender(self, db: SqlRepository, wake: Callable[[], None]) -> Any:
        from agents.compliance.engine import CompliancePolicy
        from sms.email.inbound import queue_email_reply

        async def send(phone: str, to_addr: str, subject: str, body: str, purpose: str,
                       key: str) -> str:
            cfg = self._config()
            if not cfg.email.configured:
                return "email_not_configured"
            return await queue_email_reply(
                db, policy=CompliancePolicy.from_settings(cfg.compliance),
                from_addr=cfg.email.from_address, phone=phone, to_addr=to_addr,
                subject=subject, body=body, purpose=purpose, key=key, wake=wake)

        return send

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.email_sender is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.email_sender.stop()

    def collector(self) -> Collector:
        """Registered beside the messaging collector; reads the counters at scrape time."""
        return _CampaignsCollector(self)

    def metric_families(self) -> Iterator[object]:
        if self.scheduler is not None:
            st = self.scheduler.stats
            fam = CounterMetricFamily("leadline_campaign_touches",
                                      "Campaign scheduler outcomes, by kind", labels=["kind"])
            for kind in ("sent", "deferred", "skipped", "stopped", "handoffs", "duplicates",
                         "personalized", "personalize_fallbacks"):
                fam.add_metric([kind], getattr(st, kind))
            yield fam
            yield CounterMetricFamily("leadline_campaign_passes", "Scheduler passes run",
                                      value=st.passes)
            yield CounterMetricFamily("leadline_campaign_errors",
                                      "Scheduler failures (pass or touch), counted and retried",
                                      value=st.errors)
        if self.email_sender is not None:
            es = self.email_sender.stats
            fam = CounterMetricFamily("leadline_email_outbound", "Email sends, by outcome",
                                      labels=["outcome"])
            for outcome in ("sent", "retried", "failed", "bounced", "cancelled", "deferred"):
                fam.add_metric([outcome], getattr(es, outcome))
            yield fam
            yield CounterMetricFamily("leadline_email_sender_errors",
                                      "Email sender loop failures", value=es.loop_errors)
        if self.routes is not None:
            hs = self.routes.stats
            ins = self.routes.inbound_mail.stats
            fam = CounterMetricFamily("leadline_email_http", "Email route events, by kind",
                                      labels=["kind"])
            for kind in ("pages", "unsubscribes", "repeat_unsubscribes", "forged_tokens",
                         "inbound", "inbound_bad", "inbound_forbidden"):
                fam.add_metric([kind], getattr(hs, kind))
            for kind in ("duplicates", "unknown_sender", "opt_outs", "replies", "bounces"):
                fam.add_metric([f"inbound_{kind}"], getattr(ins, kind))
            yield fam


class _CampaignsCollector(Collector):
    def __init__(self, campaigns: Campaigns) -> None:
        self.campaigns = campaigns

    def collect(self) -> Iterator[object]:
        yield from self.campaigns.metric_families()
