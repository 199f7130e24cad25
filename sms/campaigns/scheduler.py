"""The async shell around `core.plan`: claim due enrollments, decide, ask compliance, queue.

One pass (`tick(now)`) claims due enrollments in batches (a lease; PostgreSQL
`FOR UPDATE SKIP LOCKED`, so a second scheduler process or a `leadline campaigns tick`
beside the server takes other rows), plans each with the pure core, and acts:

- a touch to send asks the compliance engine (`check_and_audit`, purpose "marketing",
  with the policy narrowed by the campaign's window) and then commits it to the SMS
  outbox or the email outbox with the idempotency key enrollment + touch, before the
  enrollment moves on. A crash between the two is harmless: the lease lapses, the row is
  claimed again, the queue call finds the key and returns the stored message, and the
  enrollment advances then — the touch is neither lost nor sent twice;
- a deferral (quiet hours, a cap, the campaign's own window) moves the enrollment's
  `due_at` to `next_allowed_at`: the touch is never dropped and never sent early;
- a stop ends the lead's campaigns and withdraws their touches still in an outbox;
- a handoff sets human_takeover, alerts the owner (an injected notifier) and stops.

`run()` repeats the pass every `tick_s` on the injected clock until `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from sms.campaigns import core
from sms.campaigns.model import Campaign, parse_campaign
from sms.campaigns.settings import CampaignSettings
from store.campaign_models import Enrollment, touch_key
from store.errors import StoreError
from store.models import Lead, utcnow

if TYPE_CHECKING:
    from agents.compliance.engine import CompliancePolicy
    from store.repository import SqlRepository

log = logging.getLogger("leadline.campaigns")

# The SMS opt-out notice carriers expect in a marketing text; added to an SMS touch whose
# template does not already tell the lead how to stop (CTIA Messaging Principles 5.1).
STOP_NOTICE = "Reply STOP to opt out."
# Test-only fault injection, read once at construction: when set to a file path, the pass
# touches that file right after a touch is committed to its outbox and hangs before the
# enrollment moves on, so a test can SIGKILL the process in exactly that window.
HANG_AFTER_QUEUE_ENV = "LEADLINE_TEST_CAMPAIGN_HANG_AFTER_QUEUE"
# Largest number of rows one pass reports per list (a catch-up pass over a big backlog
# still prints a bounded document; the counts stay exact).
MAX_REPORTED = 10_000


def iso_z(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TickResult(msgspec.Struct):
    sent: list[dict[str, Any]] = msgspec.field(default_factory=list)
    deferred: list[dict[str, Any]] = msgspec.field(default_factory=list)
    skipped: list[dict[str, Any]] = msgspec.field(default_factory=list)
    stopped: int = 0
    claimed: int = 0

    def add(self, kind: str, row: dict[str, Any]) -> None:
        rows: list[dict[str, Any]] = getattr(self, kind)
        if len(rows) < MAX_REPORTED:
            rows.append(row)


class Personalizer(Protocol):
    async def __call__(self, brief: str, lead: Lead, channel: str) -> str | None:
        """The brief rewritten for the lead, or None (the template is used)."""
        ...


HandoffNotifier = Callable[[Lead, str], Awaitable[None]]


class SchedulerStats:
    def __init__(self) -> None:
        self.passes = 0
        self.sent = 0
        self.deferred = 0
        self.skipped = 0
        self.stopped = 0
        self.handoffs = 0
        self.errors = 0
        self.duplicates = 0
        self.personalized = 0
        self.personalize_fallbacks = 0


class Scheduler:
    def __init__(
        self,
        db: SqlRepository,
        *,
        settings: Callable[[], CampaignSettings],
        policy: Callable[[], CompliancePolicy],
        business_name: Callable[[], str],
        booking_url: Callable[[], str],
        sms_sender: Callable[[], str],
        email_from: Callable[[], str | None],
        wake_sms: Callable[[], None] = lambda: None,
        wake_email: Callable[[], None] = lambda: None,
        personalizer: Personalizer | None = None,
        notify_handoff: HandoffNotifier | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self._settings = settings
        self._policy = policy
        self._business_name = business_name
        self._booking_url = booking_url
        self._sms_sender = sms_sender
        self._email_from = email_from
        self._wake_sms = wake_sms
        self._wake_email = wake_email
        self.personalizer = personalizer
        self.notify_handoff = notify_handoff
        self._clock = clock
        self.stats = SchedulerStats()
        self._campaigns: dict[int, tuple[datetime, Campaign, str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._hang_marker = os.environ.get(HANG_AFTER_QUEUE_ENV) or None

    # lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                name="campaign-scheduler")

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick(self._clock())
            except Exception as exc:  # the loop never dies: count, log, try next tick
                self.stats.errors += 1
                log.error("campaign pass failed: %s", exc, exc_info=not isinstance(
                    exc, StoreError))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings().tick_s):
                    await self._stopping.wait()

    # one pass ----------------------------------------------------------------------

    async def tick(self, now: datetime) -> TickResult:
        """One pass as of `now`: every enrollment due by then is handled once."""
        cfg = self._settings()
        result = TickResult()
        self.stats.passes += 1
        email_ok = self._email_from() is not None
        channels = ["sms", "email"] if email_ok else ["sms"]
        # First the leads that changed (a reply, a booking, an opt-out): their stop rules
        # fire now, not when their next touch comes due days later.
        checked: set[int] = set()
        for _ in range(cfg.max_batches_per_pass):
            changed = await self.db.claim_changed_enrollments(now=now, limit=cfg.batch,
                                                              lease_s=cfg.lease_s)
            changed = [e for e in changed if e.id not in checked]
            if not changed:
                break
            checked.update(e.id for e in changed)
            for e in changed:
                try:
                    await self._check(e, now, result)
                except StoreError:
                    raise
                except Exception as exc:
                    self.stats.errors += 1
                    log.exception("campaign stop check failed", extra={
                        "enrollment_id": e.id, "error": str(exc)[:200]})
                    await self.db.release_enrollment(e.id)
        handled: set[int] = set()
        for _ in range(cfg.max_batches_per_pass):
            batch = await self.db.claim_enrollments(now=now, limit=cfg.batch,
                                                    lease_s=cfg.lease_s, channels=channels)
            batch = [e for e in batch if e.id not in handled]
            if not batch:
                break
            result.claimed += len(batch)
            for e in batch:
                handled.add(e.id)
                try:
                    await self._one(e, now, result)
                except StoreError:
                    raise  # the lease lapses and the row is claimed again later
                except Exception as exc:
                    self.stats.errors += 1
                    log.exception("campaign touch failed; retried next pass", extra={
                        "enrollment_id": e.id, "phone": e.phone, "error": str(exc)[:200]})
                    await self.db.reschedule_enrollment(e.id, now + timedelta(
                        seconds=cfg.tick_s))
        if not email_ok:
            for e in await self.db.due_enrollments(now=now, channel="email",
                                                   limit=min(MAX_REPORTED, 10_000)):
                result.add("skipped", {"lead": e.phone, "touch": e.next_touch,
                                       "reason": "email_not_configured"})
                self.stats.skipped += 1
        return result

    async def campaign(self, campaign_id: int) -> tuple[Campaign, str]:
        """The campaign's parsed definition (cached per version: a reload is seen at the
        next claim) and its name."""
        cached = self._campaigns.get(campaign_id)
        record = await self.db.get_campaign_by_id(campaign_id)
        if record is None:
            raise StoreError(f"campaign {campaign_id} vanished")
        if cached is not None and cached[0] == record.updated_at:
            return cached[1], cached[2]
        parsed = parse_campaign(record.definition)
        self._campaigns[campaign_id] = (record.updated_at, parsed, record.name)
        return parsed, record.name

    async def _facts(self, e: Enrollment, lead: Lead | None) -> core.LeadFacts:
        replied = await self.db.first_inbound_since(e.phone, e.enrolled_at)
        previous = None
        if e.next_touch > 1:
            mid = await self.db.last_touch_message(e.id, e.next_touch - 1)
            if mid is not None:
                previous = await self.db.touch_send(mid)
        bounced = bool(lead and lead.email and await self.db.is_bounced(lead.email))
        return core.LeadFacts(lead, replied, previous, bounced)

    async def _check(self, e: Enrollment, now: datetime, result: TickResult) -> None:
        """Stop rules only, for an enrollment whose lead changed: a stop or handoff is
        acted on; anything else gives the claim back with the due time untouched (a
        touch is only ever sent by the due-time claim)."""
        campaign, _ = await self.campaign(e.campaign_id)
        lead = await self.db.get_lead(e.phone)
        facts = await self._facts(e, lead)
        identity = core.Identity(self._business_name(), self._booking_url())
        decision = core.plan(campaign, e, facts, now, identity)
        if isinstance(decision, core.Stop):
            await self._stop(e, decision.reason, now, result)
        elif isinstance(decision, core.HandOff) and lead is not None:
            await self._hand_off(e, lead, decision.reason, now, result)
        else:
            await self.db.release_enrollment(e.id)

    async def _one(self, e: Enrollment, now: datetime, result: TickResult) -> None:
        from agents.compliance.engine import ContactRequest
        from agents.compliance.gate import check_and_audit
        from agents.compliance.rules import load_rules, number_facts

        campaign, _ = await self.campaign(e.campaign_id)
        lead = await self.db.get_lead(e.phone)
        facts = await self._facts(e, lead)
        identity = core.Identity(self._business_name(), self._booking_url())
        decision = core.plan(campaign, e, facts, now, identity)
        touch_no = e.next_touch
        match decision:
            case core.Stop(reason):
                await self._stop(e, reason, now, result)
                return
            case core.HandOff(reason):
                assert lead is not None
                await self._hand_off(e, lead, reason, now, result)
                return
            case core.Wait(until, why):
                await self.db.reschedule_enrollment(e.id, until)
                result.add("deferred", {"lead": e.phone, "touch": touch_no,
                                        "until": iso_z(until), "reason": why})
                self.stats.deferred += 1
                return
            case core.Skip(reason):
                await self._advance(campaign, e, touch_no, None, 0, f"skipped:{reason}", now)
                result.add("skipped", {"lead": e.phone, "touch": touch_no, "reason": reason})
                self.stats.skipped += 1
                return
        assert isinstance(decision, core.Send) and lead is not None
        policy = core.campaign_policy(self._policy(), campaign)
        pn = number_facts(e.phone)
        states = sorted({s for s in (pn.state, load_rules().state_code(lead.state)) if s})
        opens = core.window_open_at(now, list(pn.zones), states, campaign, policy)
        if opens is not None:
            await self._defer(e, touch_no, opens, "campaign_window", result)
            return
        answer = await check_and_audit(
            self.db, ContactRequest(phone=e.phone, channel=decision.channel,  # type: ignore[arg-type]
                                    purpose="marketing", at=now),
            policy, source=f"campaign:{e.campaign_id}:{e.id}:{touch_no}")
        if not answer.allowed:
            if answer.next_allowed_at is not None:
                await self._defer(e, touch_no, answer.next_allowed_at, answer.reason, result)
                return
            reason = "opt_out" if answer.reason == "opted_out" else answer.reason
            await self._stop(e, reason, now, result)
            return
        body = await self._body(decision, lead)
        message_id = await self._queue(e, decision, lead, body, now)
        if message_id is None:
            await self._defer(e, touch_no, now + timedelta(seconds=self._settings().tick_s),
                              "no_sender", result)
            return
        if self._hang_marker is not None:
            await self._hang_for_test()
        await self._advance(campaign, e, touch_no, message_id, decision.variant, "queued", now)
        result.add("sent", {"lead": e.phone, "touch": touch_no, "channel": decision.channel})
        self.stats.sent += 1

    async def _hang_for_test(self) -> None:
        marker = self._hang_marker
        assert marker is not None
        await asyncio.to_thread(Path(marker).write_text, "queued\n")
        log.warning("test fault injection: hanging after queue (%s)", HANG_AFTER_QUEUE_ENV)
        await asyncio.Event().wait()

    async def _defer(self, e: Enrollment, touch: int, until: datetime, why: str,
                     result: TickResult) -> None:
        await self.db.reschedule_enrollment(e.id, until)
        result.add("deferred", {"lead": e.phone, "touch": touch, "until": iso_z(until),
                                "reason": why})
        self.stats.deferred += 1

    async def _stop(self, e: Enrollment, reason: str, now: datetime,
                    result: TickResult) -> None:
        """An opt-out (or DNC) ends every campaign of the lead; other reasons this one."""
        if reason in ("opt_out", "dnc", "handoff"):
            await self.db.stop_campaigns_for(e.phone, reason, now)
        else:
            await self.db.stop_enrollment(e.id, reason, now)
        result.add("skipped", {"lead": e.phone, "touch": e.next_touch, "reason": reason})
        result.stopped += 1
        self.stats.stopped += 1
        log.info("campaign stopped for lead", extra={"enrollment_id": e.id, "phone": e.phone,
                                                      "reason": reason})

    async def _hand_off(self, e: Enrollment, lead: Lead, reason: str, now: datetime,
                        result: TickResult) -> None:
        await self.db.set_human_takeover(lead.phone, True)
        await self._stop(e, reason, now, result)
        self.stats.handoffs += 1
        if self.notify_handoff is not None:
            try:
                await self.notify_handoff(lead, reason)
            except Exception as exc:  # the takeover stands; the alert is logged as lost
                self.stats.errors += 1
                log.error("handoff alert failed: %s", exc, extra={"phone": lead.phone})

    async def _body(self, send: core.Send, lead: Lead) -> str:
        body = send.body
        if send.personalize and self.personalizer is not None:
            try:
                better = await self.personalizer(body, lead, send.channel)
            except Exception as exc:
                log.warning("personalisation failed, template used: %s", exc)
                better = None
            if better:
                self.stats.personalized += 1
                body = better
            else:
                self.stats.personalize_fallbacks += 1
        if send.channel == "sms" and "stop" not in body.lower():
            body = f"{body} {STOP_NOTICE}"
        return body

    async def _queue(self, e: Enrollment, send: core.Send, lead: Lead, body: str,
                     now: datetime) -> int | None:
        """Commit the touch to its outbox; the message id (None: no sender configured)."""
        from agents.chat.segments import count_segments

        key = touch_key(e.id, send.touch)
        if send.channel == "sms":
            try:
                sender = self._sms_sender()
            except ValueError as exc:
                log.error("campaign SMS not queued: %s", exc)
                return None
            msg, _, created = await self.db.queue_outbound_message(
                phone=e.phone, channel="sms", purpose="marketing", body=body,
                from_addr=sender, to_addr=e.phone, segments=count_segments(body)[0],
                idempotency_key=key, at=now)
            if created:
                self._wake_sms()
        else:
            sender_addr = self._email_from()
            if sender_addr is None or lead.email is None:
                return None
            msg, _, created = await self.db.queue_email(
                phone=e.phone, to_addr=lead.email, from_addr=sender_addr,
                subject=send.subject or "", body=body, purpose="marketing",
                idempotency_key=key, at=now)
            if created:
                self._wake_email()
        if not created:
            self.stats.duplicates += 1
            log.info("touch was queued already (resumed pass)", extra={"key": key})
        return msg.id

    async def _advance(self, campaign: Campaign, e: Enrollment, touch: int,
                       message_id: int | None, variant: int, outcome: str,
                       now: datetime) -> None:
        channel = campaign.touches[touch - 1].channel if touch <= len(campaign.touches) \
            else e.next_channel
        nxt = core.next_due(campaign, touch, now)
        moved = await self.db.advance_enrollment(
            e, touch=touch, channel=channel, variant=variant, message_id=message_id,
            outcome=outcome, at=now, next_channel=nxt[0] if nxt else None,
            next_due_at=nxt[1] if nxt else None)
        if not moved:
            log.warning("enrollment moved by another claimer", extra={"enrollment_id": e.id})
