"""The SMS conversation: an inbound text in, at most the right replies out, all through the outbox.

Order of work for one inbound message, and why:

1. Store it (`record_inbound_message`, idempotent on MessageSid) before anything
   else: a webhook Twilio retries is answered but never processed twice, and a
   message is never lost to a failure further down.
2. Consent first (`classify_consent`, and Twilio's own OptOutType when Advanced
   Opt-Out matched): an opt-out is recorded as a consent event at once, and
   exactly one confirmation goes out per opt-out episode (a second STOP while
   already opted out sends nothing); afterwards nothing else is sent on any
   channel until an opt-in. When Twilio's Advanced Opt-Out matched the keyword
   it already sent its own reply, so we record the event and send none.
   START/UNSTOP/YES is an opt-in only while opted out (otherwise "yes" is an
   ordinary answer for the agent). HELP gets the carrier-required help text.
3. Everything else goes to the text agent, unless a human has taken the thread
   over or the lead is opted out or on the DNC list. Its decision sets the lead's
   status and intent; a handoff alerts the owner by SMS (once a day per lead).
4. Every outbound text, confirmations included, asks compliance first and is
   then committed to the outbox: allowed → due now (the sender is woken);
   deferred → due at `next_allowed_at`; refused → stored and cancelled with the
   reason, so it is visible and never silently dropped.

Steps 2-4 run after the webhook is answered (Twilio wants an answer fast), in a
bounded set of tasks; past the bound they run inline, slowing Twilio down
rather than growing without limit.

Nothing is lost across a crash: every path records an intent (or a marker such as
"not_ours", "silent_dnc", "unclassified") on the inbound message as its LAST step, so a
message without one was stored but not (fully) processed, and `recover()` processes it
again at start. Every step before the marker is idempotent — consent events are keyed by
the inbound MessageSid in their `source`, and every outbound idempotency key derives from
the inbound MessageSid — so processing a message twice (a crash mid-recovery, or two
restarts) sends nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from agents.chat.segments import count_segments
from sms.policy import classify_status_error
from sms.sender import GateVerdict, apply_recipient_verdict, outbox_key
from sms.webhooks import InboundSms, StatusReport
from store.database import Database
from store.models import ConsentEvent, Lead, LeadInput, Message, OutboxItem, utcnow
from store.phones import InvalidPhoneNumber, normalize_phone

if TYPE_CHECKING:
    from agents.chat.settings import SmsSettings

log = logging.getLogger("leadline.sms")

# Inbound messages processed in the background at once; more are processed inline.
MAX_INFLIGHT = 256
# Messages of the thread handed to the agent (newest last).
THREAD_LIMIT = 30
# How long stop() waits for in-flight processing.
DRAIN_S = 10.0
# A status callback can overtake our own commit of the SID Twilio just answered with
# (Twilio posts "sent" within milliseconds, maybe to another server process): an unknown
# SID is looked up again after these pauses before it is counted as unknown.
UNKNOWN_SID_RETRY_S = (0.05, 0.2, 0.5)

# Recovery at start reads the unprocessed backlog in pages of this many, at most this many
# in all (a bound on the work one start takes on), processing this many at once.
RECOVERY_PAGE = 100
RECOVERY_MAX = 10_000
RECOVERY_CONCURRENCY = 8
# Test-only fault injection: the background processing of a stored inbound message writes
# this file and hangs, so a test can SIGKILL the server between the commit and the reply.
HANG_BEFORE_PROCESSING_ENV = "LEADLINE_TEST_SMS_HANG_BEFORE_PROCESSING"

_OPT_TYPE_KIND = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


class ComplianceAnswer(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str
    next_allowed_at: datetime | None = None


class Compliance(Protocol):
    """The compliance engine as this channel needs it (adapter: sms/compliance.py)."""

    async def check(self, phone: str, purpose: str, *, now: datetime) -> ComplianceAnswer:
        """May we text `phone` for `purpose` now? Audited by the engine."""
        ...

    async def recheck(self, item: OutboxItem, purpose: str, *, now: datetime) -> GateVerdict:
        """Still allowed at send time (an opt-out or quiet hours may have begun)?"""
        ...


class AgentDecision(msgspec.Struct, frozen=True):
    intent: str | None = None
    confidence: float | None = None
    reply: str | None = None
    new_status: str | None = None
    handoff: bool = False
    handoff_reason: str = ""


class ReplyAgent(Protocol):
    """The text agent (adapter over agents.chat: sms/agent.py)."""

    async def decide(self, lead: Lead, thread: Sequence[Message],
                     inbound: Message) -> AgentDecision: ...


class Wording(Protocol):
    """The fixed texts: confirmations and HELP (adapter over agents.compliance.replies)."""

    def help_reply(self) -> str: ...

    def opt_out_confirmation(self) -> str: ...

    def opt_in_confirmation(self) -> str: ...


class Queued(msgspec.Struct, frozen=True):
    """What became of one outbound text: `state` is "queued" (due now), "deferred" (due
    at `next_allowed_at`), "refused" (stored, cancelled) or "duplicate" (this decision
    was already queued)."""

    state: str
    reason: str
    message_id: int | None = None
    outbox_id: int | None = None
    next_allowed_at: datetime | None = None


class NoSender(ValueError):
    """Neither `[sms] messaging_service_sid` nor `[sms] from_number` is set."""


class ConversationStats:
    def __init__(self) -> None:
        self.inbound = 0
        self.duplicates = 0
        self.not_ours = 0
        self.opt_outs = 0
        self.opt_ins = 0
        self.helps = 0
        self.agent_turns = 0
        self.handoffs = 0
        self.silenced = 0  # inbound we deliberately did not answer (opted out, takeover)
        self.queued = 0
        self.deferred = 0
        self.refused = 0
        self.processing_errors = 0
        self.status_updates = 0
        self.unknown_status_sids = 0
        self.early_status = 0  # callbacks that arrived before our commit of their SID
        self.inline = 0
        self.recovered = 0  # stored but unprocessed messages processed again at start
        self.recovery_errors = 0


class Conversation:
    def __init__(
        self,
        db: Database,
        compliance: Compliance,
        agent: ReplyAgent,
        wording: Wording,
        *,
        settings: Callable[[], SmsSettings],
        wake_sender: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.db = db
        self.compliance = compliance
        self.agent = agent
        self.wording = wording
        self._settings = settings
        self._wake = wake_sender
        self._clock = clock
        self._max_inflight = max_inflight
        self._tasks: set[asyncio.Task[str]] = set()
        self._hang_marker = os.environ.get(HANG_BEFORE_PROCESSING_ENV) or None
        self.stats = ConversationStats()

    # identity ----------------------------------------------------------------------

    def sender(self) -> str:
        """Who we text as: the Messaging Service when set (Twilio picks the number and
        handles its opt-out lists), else our number."""
        cfg = self._settings()
        if cfg.messaging_service_sid:
            return cfg.messaging_service_sid
        if cfg.from_number:
            return normalize_phone(cfg.from_number)
        raise NoSender("set [sms] messaging_service_sid or [sms] from_number")

    def is_ours(self, inbound: InboundSms) -> bool:
        cfg = self._settings()
        if cfg.messaging_service_sid and inbound.messaging_service_sid == \
                cfg.messaging_service_sid:
            return True
        if cfg.from_number:
            try:
                return normalize_phone(cfg.from_number) == inbound.to_number
            except InvalidPhoneNumber:
                return False
        return False

    # inbound -----------------------------------------------------------------------

    async def receive(self, inbound: InboundSms) -> str:
        """Store the message, then process it in the background. Returns at once with
        "duplicate", "not_ours" or "accepted"; store errors propagate (the webhook
        answers 500 so Twilio may retry: nothing was stored)."""
        msg, created = await self.db.record_inbound_message(
            phone=inbound.from_number, channel="sms", body=inbound.body,
            from_addr=inbound.from_number, to_addr=inbound.to_number,
            provider_sid=inbound.message_sid, segments=inbound.num_segments,
            at=self._clock())
        if not created:
            self.stats.duplicates += 1
            log.info("duplicate inbound SMS ignored", extra={"message_sid": inbound.message_sid})
            return "duplicate"
        self.stats.inbound += 1
        if not self.is_ours(inbound):
            self.stats.not_ours += 1
            log.warning("inbound SMS to a number that is not ours: stored, not answered",
                        extra={"message_sid": inbound.message_sid, "to": inbound.to_number})
            await self.db.set_message_intent(msg.id, "not_ours", None)
            return "not_ours"
        if len(self._tasks) >= self._max_inflight:
            self.stats.inline += 1
            await self._process_safely(msg, inbound)
            return "accepted"
        task = asyncio.get_running_loop().create_task(self._process_safely(msg, inbound),
                                                      name=f"sms-{inbound.message_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return "accepted"

    async def _process_safely(self, msg: Message, inbound: InboundSms) -> str:
        if self._hang_marker is not None:
            await self._hang_for_test(self._hang_marker)
        try:
            return await self.process(msg, inbound)
        except Exception:
            self.stats.processing_errors += 1
            log.exception("processing an inbound SMS failed; it stays stored",
                          extra={"message_sid": inbound.message_sid})
            return "error"

    async def process(self, msg: Message, inbound: InboundSms) -> str:
        """Consent, then the agent; the outcome's name (for tests and logs). The intent
        (or marker) is recorded last: until then the message counts as unprocessed."""
        from agents.compliance.consent import classify_consent

        phone = inbound.from_number
        kind = _OPT_TYPE_KIND.get(inbound.opt_out_type or "") or classify_consent(inbound.body)
        twilio_answered = inbound.opt_out_type is not None
        if kind == "opt_out":
            outcome = await self._opt_out(phone, inbound, twilio_answered)
            await self.db.set_message_intent(msg.id, "opt_out", 1.0)
            return outcome
        if kind == "opt_in":
            events = await self.db.list_consent_events(phone)
            mine = _own_event(events, "opt_in", inbound.message_sid)
            if mine is not None or (events and events[-1].kind == "opt_out"):
                outcome = await self._opt_in(phone, inbound, twilio_answered,
                                             recorded=mine is not None)
                await self.db.set_message_intent(msg.id, "opt_in", 1.0)
                return outcome
        if kind == "help":
            self.stats.helps += 1
            outcome = "help_by_twilio"
            if not twilio_answered:
                await self.send(phone, self.wording.help_reply(), "help",
                                f"help:{inbound.message_sid}")
                outcome = "help"
            await self.db.set_message_intent(msg.id, "help", 1.0)
            return outcome
        return await self._converse(phone, msg, inbound)

    async def _opt_out(self, phone: str, inbound: InboundSms, twilio_answered: bool) -> str:
        """Whether a confirmation is due depends on the state BEFORE this message's own
        event, which a crashed earlier attempt may already have recorded."""
        self.stats.opt_outs += 1
        events = await self.db.list_consent_events(phone)
        mine = _own_event(events, "opt_out", inbound.message_sid)
        if mine is None:
            already = bool(events) and events[-1].kind == "opt_out"
            await self.db.add_consent_event(phone, "opt_out", "sms", inbound.body[:2000],
                                            at=self._clock(),
                                            source=f"sms:{inbound.message_sid}")
        else:
            already = mine > 0 and events[mine - 1].kind == "opt_out"
        if already:
            return "opt_out_repeat"  # one confirmation per episode: it was sent already
        if twilio_answered:
            return "opt_out_by_twilio"
        await self.send(phone, self.wording.opt_out_confirmation(), "opt_out_confirmation",
                        f"stop:{inbound.message_sid}")
        return "opt_out"

    async def _opt_in(self, phone: str, inbound: InboundSms, twilio_answered: bool, *,
                      recorded: bool = False) -> str:
        self.stats.opt_ins += 1
        if not recorded:
            await self.db.add_consent_event(phone, "opt_in", "sms", inbound.body[:2000],
                                            at=self._clock(),
                                            source=f"sms:{inbound.message_sid}")
        if twilio_answered:
            return "opt_in_by_twilio"
        await self.send(phone, self.wording.opt_in_confirmation(), "opt_in_confirmation",
                        f"start:{inbound.message_sid}")
        return "opt_in"

    async def _converse(self, phone: str, msg: Message, inbound: InboundSms) -> str:
        lead = await self.db.get_lead(phone)
        if lead is None:  # a stranger texting us is a new lead
            await self.db.upsert_leads([LeadInput(phone=phone, source="sms")])
            lead = await self.db.get_lead(phone)
            if lead is None:
                raise RuntimeError(f"lead {phone} vanished right after it was created")
        if lead.opted_out or lead.dnc or lead.human_takeover:
            self.stats.silenced += 1
            why = "opted_out" if lead.opted_out else "dnc" if lead.dnc else "human_takeover"
            log.info("inbound SMS stored, no automated reply", extra={
                "message_sid": inbound.message_sid, "why": why})
            await self.db.set_message_intent(msg.id, f"silent_{why}", None)
            return f"silent_{why}"
        thread = await self.db.list_messages(phone, limit=THREAD_LIMIT)
        decision = await self.agent.decide(lead, thread, msg)
        self.stats.agent_turns += 1
        if decision.new_status and decision.new_status != lead.status:
            await self.db.set_lead_status(phone, decision.new_status)
        if decision.reply:
            await self.send(phone, decision.reply, "conversation",
                            f"reply:{inbound.message_sid}")
        outcome = "replied" if decision.reply else "no_reply"
        if decision.handoff:
            await self._hand_off(lead, inbound, decision)
            outcome = "handoff"
        if decision.intent is not None:
            await self.db.set_message_intent(msg.id, decision.intent, decision.confidence)
        else:
            await self.db.set_message_intent(msg.id, "unclassified", None)
        return outcome

    async def _hand_off(self, lead: Lead, inbound: InboundSms, decision: AgentDecision) -> None:
        """Alert the owner that a person should follow up. Automation is not switched off
        here (the agent hands off whenever it cannot fully answer, and the lead still
        deserves an acknowledgement); `human_takeover`, set by a person, is what silences
        it. One alert per lead per day: the idempotency key folds repeats."""
        self.stats.handoffs += 1
        owner = self._settings().owner_phone
        if not owner:
            log.info("handoff with no [sms] owner_phone to alert",
                     extra={"message_sid": inbound.message_sid})
            return
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.phone
        why = f" ({decision.handoff_reason})" if decision.handoff_reason else ""
        text = f"Lead {name} {lead.phone} needs a person{why}: \"{inbound.body[:200]}\""
        try:
            await self.send(normalize_phone(owner), text, "owner_notice",
                            f"handoff:{lead.phone}:{self._clock():%Y-%m-%d}")
        except InvalidPhoneNumber as exc:
            log.error("[sms] owner_phone is not a phone number: %s", exc)

    # outbound -------------------------------------------------------------------

    async def send(self, phone: str, body: str, purpose: str, origin: str) -> Queued:
        """Ask compliance, then commit the text to the outbox (or store it refused)."""
        phone = normalize_phone(phone)
        sender = self.sender()
        now = self._clock()
        answer = await self.compliance.check(phone, purpose, now=now)
        not_before = None
        if not answer.allowed:
            if answer.next_allowed_at is None:
                state = "refused"
            else:
                state, not_before = "deferred", answer.next_allowed_at
        else:
            state = "queued"
        msg, item, created = await self.db.queue_outbound_message(
            phone=phone, channel="sms", purpose=purpose, body=body, from_addr=sender,
            to_addr=phone, segments=count_segments(body)[0],
            idempotency_key=outbox_key(purpose, origin), at=now, not_before=not_before)
        if not created:
            return Queued("duplicate", "already queued", msg.id, item.id, item.next_attempt_at)
        if state == "refused":
            await self.db.outbox_cancel(item.id, f"refused: {answer.reason}")
            self.stats.refused += 1
            log.info("outbound SMS refused by compliance", extra={
                "to": phone, "purpose": purpose, "reason": answer.reason})
        elif state == "deferred":
            self.stats.deferred += 1
            log.info("outbound SMS deferred", extra={
                "to": phone, "purpose": purpose, "reason": answer.reason,
                "not_before": not_before.isoformat() if not_before else ""})
        else:
            self.stats.queued += 1
            self._wake()
        return Queued(state, answer.reason, msg.id, item.id, answer.next_allowed_at)

    async def gate(self, item: OutboxItem, purpose: str) -> GateVerdict:
        """The sender's check at claim time (see `Compliance.recheck`)."""
        return await self.compliance.recheck(item, purpose, now=self._clock())

    # status callbacks -------------------------------------------------------------

    async def status(self, report: StatusReport) -> Message | None:
        """Apply a delivery report; None (counted, logged) for a sid we never sent."""
        msg = await self.db.update_message_status(report.message_sid, report.status,
                                                  error_code=report.error_code,
                                                  at=self._clock())
        for pause in UNKNOWN_SID_RETRY_S if msg is None else ():
            await asyncio.sleep(pause)
            msg = await self.db.update_message_status(report.message_sid, report.status,
                                                      error_code=report.error_code,
                                                      at=self._clock())
            if msg is not None:
                self.stats.early_status += 1
                break
        if msg is None:
            self.stats.unknown_status_sids += 1
            log.warning("status callback for an unknown message", extra={
                "message_sid": report.message_sid, "status": report.status})
            return None
        self.stats.status_updates += 1
        if report.status in ("failed", "undelivered"):
            verdict = classify_status_error(report.error_code)
            if verdict is not None:
                await apply_recipient_verdict(self.db, msg.to_addr, verdict,
                                              source="status_callback")
        return msg

    # recovery ---------------------------------------------------------------------

    async def recover(self, *, window_s: float, before: datetime | None = None) -> int:
        """Process again the inbound texts stored within the last `window_s` seconds (and
        before `before`, default now: later ones belong to the live webhook path) that
        never got an intent: a crash hit between their commit and their processing.
        Bounded (RECOVERY_MAX, RECOVERY_CONCURRENCY); a message whose processing fails is
        tried once per start and stays unprocessed for the next. Returns how many were
        processed."""
        until = before or self._clock()
        since = until - timedelta(seconds=window_s)
        tried: set[int] = set()
        gate = asyncio.Semaphore(RECOVERY_CONCURRENCY)
        done = 0

        async def one(msg: Message) -> bool:
            inbound = self._as_inbound(msg)
            try:
                if self.is_ours(inbound):
                    outcome = await self.process(msg, inbound)
                else:
                    self.stats.not_ours += 1
                    await self.db.set_message_intent(msg.id, "not_ours", None)
                    outcome = "not_ours"
            except Exception:
                self.stats.recovery_errors += 1
                log.exception("recovering an unprocessed inbound SMS failed; it stays "
                              "stored", extra={"message_id": msg.id})
                return False
            log.info("unprocessed inbound SMS recovered", extra={
                "message_id": msg.id, "message_sid": msg.provider_sid, "outcome": outcome})
            return True

        async def thread(msgs: list[Message]) -> int:
            """One lead's messages in order (the agent reads the thread); leads at once."""
            async with gate:
                return sum([await one(m) for m in msgs])

        while len(tried) < RECOVERY_MAX:
            page = await self.db.unprocessed_inbound(since=since, limit=RECOVERY_PAGE,
                                                     channel="sms")
            todo = [m for m in page if m.id not in tried and m.created_at < until]
            todo = todo[:RECOVERY_MAX - len(tried)]
            if not todo:
                break
            tried.update(m.id for m in todo)
            by_phone: dict[str, list[Message]] = {}
            for m in todo:
                by_phone.setdefault(m.phone, []).append(m)
            ok = sum(await asyncio.gather(*(thread(ms) for ms in by_phone.values())))
            done += ok
            self.stats.recovered += ok
        if tried:
            log.warning("recovered inbound SMS stored before a crash", extra={
                "processed": done, "failed": len(tried) - done})
        return done

    def _as_inbound(self, msg: Message) -> InboundSms:
        """The webhook view of a stored message. Twilio's OptOutType is not stored, so a
        keyword Twilio's Advanced Opt-Out answered is treated as ours to answer; the
        Messaging Service is not stored either, so with one configured the message (it
        came in through our signed webhook) counts as ours."""
        cfg = self._settings()
        return InboundSms(
            message_sid=msg.provider_sid or f"message-{msg.id}", from_number=msg.phone,
            to_number=msg.to_addr, body=msg.body,
            messaging_service_sid=cfg.messaging_service_sid, num_segments=msg.segments)

    async def _hang_for_test(self, marker: str) -> None:
        await asyncio.to_thread(Path(marker).write_text, "stored\n")
        log.warning("test fault injection: hanging before processing (%s)",
                    HANG_BEFORE_PROCESSING_ENV)
        await asyncio.Event().wait()

    # lifecycle --------------------------------------------------------------------

    async def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Let in-flight processing finish (tests, shutdown)."""
        tasks = list(self._tasks)
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        await self.drain()
        for task in list(self._tasks):
            task.cancel()


def _own_event(events: Sequence[ConsentEvent], kind: str, message_sid: str) -> int | None:
    """Index of the consent event this message recorded already (a crashed attempt), if any."""
    source = f"sms:{message_sid}"
    for i, event in enumerate(events):
        if event.kind == kind and event.source == source:
            return i
    return None
