"""The SMS side wired into the server: routes, the conversation, the outbox sender, metrics.

Composition only. ops/ is the one place that may join the voice package's Twilio
knowledge (the public URL Twilio signs, the signature validator) with the SMS
package, so both are handed to `sms/` as plain callables. The store is the one
`Database` the call persistence opened; the sender starts only when Twilio
credentials are set (without them rows wait in the outbox, nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ops.config import Config
from sms.http import SMS_PATH, STATUS_PATH, SmsRoutes
from telephony.twilio.http import public_base_url
from telephony.twilio.signature import SignatureChecker

if TYPE_CHECKING:
    from sms.conversation import Conversation
    from sms.sender import OutboxSender
    from store.database import Database

log = logging.getLogger("leadline.messaging")
# How often the outbox depth gauge is refreshed (a COUNT; /metrics must not await SQL).
DEPTH_EVERY_S = 5.0


def signature_check(config: Callable[[], Config]) -> Callable[[web.Request, Mapping[str, str]],
                                                               bool]:
    """The voice webhooks' rule, for SMS: HMAC over the URL Twilio requested (explicit
    `public_url` scheme honoured) + the form; off only with validate_signatures=false."""

    def check(request: web.Request, form: Mapping[str, str]) -> bool:
        tw = config().twilio
        if not tw.validate_signatures:
            return True
        signature = request.headers.get("X-Twilio-Signature", "")
        if not tw.auth_token or not signature:
            return False
        url = f"{public_base_url(tw, request)}{request.path_qs}"
        return SignatureChecker(tw.auth_token).valid(url, form, signature)

    return check


def status_callback_url(config: Config) -> str | None:
    """Where Twilio posts delivery reports; None without `twilio.public_url` (we cannot
    know a reachable address, and a wrong one would only make Twilio log errors)."""
    base = public_base_url(config.twilio)
    return f"{base}{STATUS_PATH}" if base else None


def build_parts(config: Callable[[], Config], db: Database
                ) -> tuple[Conversation, OutboxSender | None]:
    """The conversation and (credentials permitting) the sender over one database; the
    CLI uses the same parts as the server."""
    from sms.agent import ChatReplyAgent
    from sms.compliance import EngineCompliance, EngineWording
    from sms.conversation import Conversation
    from sms.sender import OutboxSender, TwilioSmsTransport

    cfg = config()
    sender: OutboxSender | None = None
    conversation = Conversation(
        db, EngineCompliance(db, lambda: config().compliance),
        ChatReplyAgent(lambda: config().sms), EngineWording(lambda: config().sms),
        settings=lambda: config().sms,
        wake_sender=lambda: sender.wake() if sender is not None else None)
    tw = cfg.twilio
    if tw.account_sid and tw.auth_token:
        transport = TwilioSmsTransport(tw.account_sid, tw.auth_token,
                                       base_url=tw.api_base_url or None,
                                       timeout_s=cfg.sms_outbox.send_timeout_s)
        sender = OutboxSender(db, transport, settings=lambda: config().sms_outbox,
                              max_mps=lambda: config().sms.max_mps,
                              status_callback_url=lambda: status_callback_url(config()),
                              gate=conversation.gate)
    return conversation, sender


class Messaging:
    """Built with the app (routes must exist before it starts); started after the store."""

    def __init__(self, config: Callable[[], Config], database: Callable[[], Database | None]
                 ) -> None:
        self._config = config
        self._database = database
        self.conversation: Conversation | None = None
        self.sender: OutboxSender | None = None
        self.routes: SmsRoutes | None = None
        self._signature_ok = signature_check(config)
        self.outbox_depth = 0
        self._depth_task: asyncio.Task[None] | None = None
        self._recovery_task: asyncio.Task[int] | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(SMS_PATH, self._inbound)
        app.router.add_post(STATUS_PATH, self._status)

    async def _inbound(self, request: web.Request) -> web.StreamResponse:
        if self.routes is None:
            return web.Response(status=503, text="messaging not started")
        return await self.routes.inbound(request)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        if self.routes is None:
            return web.Response(status=503, text="messaging not started")
        return await self.routes.status(request)

    async def start(self) -> None:
        db = self._database()
        if db is None:
            log.error("no database: SMS webhooks will answer 503")
            return
        self.conversation, self.sender = build_parts(self._config, db)
        warm_up = getattr(self.conversation.compliance, "start_warm_up", None)
        if callable(warm_up):
            warm_up()  # in a thread; the first decision waits for it, the loop does not
        self.routes = SmsRoutes(self.conversation, self._signature_ok)
        cfg = self._config()
        if self.sender is None:
            log.warning("no twilio.account_sid/auth_token: SMS are queued but not sent")
        elif cfg.sms_outbox.enabled:
            self.sender.start()
        if status_callback_url(cfg) is None:
            log.warning("no twilio.public_url: SMS are sent without status callbacks")
        self._depth_task = asyncio.get_running_loop().create_task(self._watch_depth(),
                                                                  name="sms-outbox-depth")
        window_h = cfg.sms.inbound_recovery_h
        if window_h > 0:
            # In the background: the webhook answers meanwhile; texts arriving from now on
            # are the live path's (recovery takes only those stored before this moment).
            self._recovery_task = asyncio.get_running_loop().create_task(
                self._recover(self.conversation, window_h), name="sms-inbound-recovery")

    async def _recover(self, conversation: Conversation, window_h: float) -> int:
        try:
            return await conversation.recover(window_s=window_h * 3600.0)
        except Exception:  # a store outage at start: the next start tries again
            log.exception("recovering unprocessed inbound SMS failed")
            return 0

    async def _watch_depth(self) -> None:
        while True:
            try:
                await self.refresh_depth()
            except Exception as exc:  # a store hiccup leaves the last value; never dies
                log.debug("outbox depth not refreshed: %s", exc)
            await asyncio.sleep(DEPTH_EVERY_S)

    async def stop(self) -> None:
        if self._recovery_task is not None:
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery_task
            self._recovery_task = None
        if self._depth_task is not None:
            self._depth_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._depth_task
            self._depth_task = None
        if self.conversation is not None:
            await self.conversation.stop()
        if self.sender is not None:
            await self.sender.stop()
            await self.sender.transport.aclose()
        if self.conversation is not None:
            await self.conversation.agent.aclose()  # type: ignore[attr-defined]

    async def refresh_depth(self) -> int:
        """Outbox rows still to send; read at scrape time (one COUNT on an index)."""
        db = self._database()
        if db is not None and self.conversation is not None:
            self.outbox_depth = await db.outbox_pending_count()
        return self.outbox_depth

    def collector(self) -> Collector:
        """Registered beside the runtime's collector; reads the counters at scrape time."""
        return _MessagingCollector(self)

    def metric_families(self) -> Iterator[object]:
        routes, conv, sender = self.routes, self.conversation, self.sender
        if routes is None or conv is None:
            return
        hs, cs = routes.stats, conv.stats
        yield CounterMetricFamily("leadline_sms_inbound", "Inbound SMS stored (new MessageSids)",
                                  value=cs.inbound)
        yield CounterMetricFamily("leadline_sms_inbound_duplicates",
                                  "Inbound SMS webhooks for a MessageSid already stored",
                                  value=cs.duplicates)
        yield CounterMetricFamily("leadline_sms_inbound_not_ours",
                                  "Inbound SMS to a number that is not ours (stored only)",
                                  value=cs.not_ours)
        yield CounterMetricFamily("leadline_sms_forged_signatures",
                                  "SMS webhooks rejected for a bad X-Twilio-Signature",
                                  value=hs.forged)
        bad = CounterMetricFamily("leadline_sms_bad_webhooks", "SMS webhooks refused (400)",
                                  labels=["kind"])
        for kind, n in hs.bad.items():
            bad.add_metric([kind], n)
        yield bad
        failed = CounterMetricFamily("leadline_sms_webhook_failures",
                                     "SMS webhooks answered 500, by cause", labels=["cause"])
        failed.add_metric(["store"], hs.store_errors)
        failed.add_metric(["internal"], hs.errors)
        yield failed
        http = CounterMetricFamily("leadline_sms_webhooks", "SMS webhooks received, by kind",
                                   labels=["kind"])
        http.add_metric(["inbound"], hs.webhooks)
        http.add_metric(["status"], hs.status_callbacks)
        yield http
        yield CounterMetricFamily("leadline_sms_status_updates",
                                  "Status callbacks applied to a message we sent",
                                  value=cs.status_updates)
        yield CounterMetricFamily("leadline_sms_early_status",
                                  "Status callbacks that arrived before our commit of their "
                                  "SID (found on a retry)", value=cs.early_status)
        yield CounterMetricFamily("leadline_sms_inline_processing",
                                  "Inbound SMS processed inline, past the background bound",
                                  value=cs.inline)
        yield CounterMetricFamily("leadline_sms_unknown_status_sids",
                                  "Status callbacks for a message we never sent",
                                  value=cs.unknown_status_sids)
        yield CounterMetricFamily("leadline_sms_processing_errors",
                                  "Inbound SMS whose processing failed (stored, unanswered)",
                                  value=cs.processing_errors)
        recovery = CounterMetricFamily(
            "leadline_sms_inbound_recovered",
            "Inbound SMS stored before a crash and processed at start, by outcome",
            labels=["outcome"])
        recovery.add_metric(["processed"], cs.recovered)
        recovery.add_metric(["failed"], cs.recovery_errors)
        yield recovery
        conv_fam = CounterMetricFamily("leadline_sms_conversation_events",
                                       "Conversation events, by kind", labels=["kind"])
        for kind in ("opt_outs", "opt_ins", "helps", "agent_turns", "handoffs", "silenced",
                     "queued", "deferred", "refused"):
            conv_fam.add_metric([kind], getattr(cs, kind))
        yield conv_fam
        counters = getattr(conv.agent, "counters", None)
        if callable(counters):
            agent = CounterMetricFamily("leadline_sms_agent_events",
                                        "Text agent events: actions, LLM outcomes, rejected "
                                        "replies", labels=["kind"])
            for kind, n in sorted(counters().items()):
                agent.add_metric([kind], n)
            yield agent
        if sender is not None:
            st = sender.stats
            out = CounterMetricFamily("leadline_sms_outbound", "Outbox sends, by outcome",
                                      labels=["outcome"])
            for outcome in ("sent", "failed", "retried", "cancelled", "deferred"):
                out.add_metric([outcome], getattr(st, outcome))
            yield out
            yield CounterMetricFamily("leadline_sms_outbox_claimed",
                                      "Outbox rows claimed by this sender", value=st.claimed)
            yield CounterMetricFamily("leadline_sms_recipient_opted_out",
                                      "Sends refused by Twilio as unsubscribed (21610): "
                                      "recorded as opt-outs", value=st.opted_out)
            yield CounterMetricFamily("leadline_sms_throttled_wait_seconds",
                                      "Time sends waited for their sender's rate limit",
                                      value=sender.throttle.waited_s)
            yield CounterMetricFamily("leadline_sms_throttled_waits",
                                      "Sends that waited for their sender's rate limit",
                                      value=sender.throttle.waits)
            yield CounterMetricFamily("leadline_sms_sender_errors",
                                      "Outbox sender loop failures (store errors etc.)",
                                      value=st.loop_errors)
        yield GaugeMetricFamily("leadline_sms_outbox_depth",
                                "Outbox rows pending or sending (as of the last scrape)",
                                value=self.outbox_depth)


class _MessagingCollector(Collector):
    def __init__(self, messaging: Messaging) -> None:
        self.messaging = messaging

    def collect(self) -> Iterator[object]:
        yield from self.messaging.metric_families()
