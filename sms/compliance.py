"""The compliance engine (agents.compliance) as the conversation's `Compliance`, plus the
fixed texts it requires.

`check` is the audited gate every outbound text passes when it is queued. `recheck` runs
when the sender claims a row, because time passes between the two: the lead may opt out
or land on the DNC list, a deferred row must only leave inside the window, and a reply
held past the conversation window is no longer one. It decides with the same pure engine
over fresh facts, with two differences that keep it from refusing the row for its own
existence: the row is already counted in the frequency cap (it was allowed, or deferred
to a time the cap had cleared, when queued), so the cap is not applied twice; and an
opt-out confirmation being sent is this row, not an earlier one. Refusals at send time
are audited too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sms.conversation import ComplianceAnswer
from sms.sender import GateVerdict
from store.database import Database
from store.models import OutboxItem

if TYPE_CHECKING:
    from agents.chat.settings import SmsSettings
    from agents.compliance.engine import CompliancePolicy
    from agents.compliance.settings import ComplianceSettings

log = logging.getLogger("leadline.sms.compliance")


class EngineCompliance:
    def __init__(self, db: Database, settings: Callable[[], ComplianceSettings]) -> None:
        self.db = db
        self._settings = settings
        self._policy: tuple[ComplianceSettings, CompliancePolicy] | None = None
        self._warming: asyncio.Future[float] | None = None

    def start_warm_up(self) -> asyncio.Future[float]:
        """Pay the engine's first-decision cost (phonenumbers' time-zone and geocoder data,
        seconds) in a worker thread now, so the event loop stays free meanwhile and the first
        text does not wait for it. Decisions asked for before it finishes wait for it
        instead of loading the same data on the loop. Resolves to the seconds it took."""
        if self._warming is None:
            self._warming = asyncio.ensure_future(asyncio.to_thread(self._warm_up))
            self._warming.add_done_callback(_log_warm_up_failure)
        return self._warming

    def _warm_up(self) -> float:
        from agents.compliance.engine import ContactRequest, decide

        started = time.perf_counter()
        decide(ContactRequest(phone="+14155552671", channel="sms", purpose="conversation",
                              at=datetime.now(UTC)), self.policy())
        took = time.perf_counter() - started
        log.info("compliance engine warmed up in %.2f s", took)
        return took

    async def _warmed(self) -> None:
        warming = self._warming
        if warming is not None and not warming.done():
            # A failed warm-up only means the first decision pays the cost itself.
            with contextlib.suppress(Exception):
                await asyncio.shield(warming)

    def policy(self) -> CompliancePolicy:
        from agents.compliance.engine import CompliancePolicy

        settings = self._settings()
        if self._policy is None or self._policy[0] is not settings:
            self._policy = (settings, CompliancePolicy.from_settings(settings))
        return self._policy[1]

    async def check(self, phone: str, purpose: str, *, now: datetime) -> ComplianceAnswer:
        from agents.compliance.engine import ContactRequest
        from agents.compliance.gate import check_and_audit

        await self._warmed()
        request = ContactRequest(phone=phone, channel="sms", purpose=purpose, at=now)
        decision = await check_and_audit(self.db, request, self.policy())
        return ComplianceAnswer(decision.allowed, decision.reason, decision.next_allowed_at)

    async def recheck(self, item: OutboxItem, purpose: str, *, now: datetime) -> GateVerdict:
        from agents.compliance.engine import ContactRequest, decide

        await self._warmed()
        phone = item.to_addr
        lead = await self.db.get_lead(phone)
        request = ContactRequest(
            phone=phone, channel="sms", purpose=purpose, at=now,
            lead_state=lead.state if lead is not None else None,
            opted_out=await self.db.is_opted_out(phone),
            dnc=await self.db.is_dnc(phone),
            last_inbound_at=await self.db.last_inbound_at(phone))
        decision = decide(request, self.policy())
        if decision.allowed:
            return GateVerdict("send", decision.reason)
        await self.db.audit("compliance", detail={
            "phone": phone, "channel": "sms", "purpose": purpose, "allowed": False,
            "reason": decision.reason, "stage": "send", "outbox_id": item.id,
            "next_allowed_at": decision.next_allowed_at.isoformat()
            if decision.next_allowed_at else None})
        if decision.next_allowed_at is not None:
            return GateVerdict("defer", decision.reason, decision.next_allowed_at)
        return GateVerdict("cancel", decision.reason)


def _log_warm_up_failure(future: asyncio.Future[float]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("compliance engine warm-up failed (the first decision pays for it): %s",
                  future.exception())


class EngineWording:
    """HELP / opt-out / opt-in texts from agents.compliance.replies with our [sms] names."""

    def __init__(self, settings: Callable[[], SmsSettings]) -> None:
        self._settings = settings

    def help_reply(self) -> str:
        """The business's contact line (`[sms] help_text`, checked when the config was
        loaded) in the carrier-required HELP template."""
        from agents.compliance.replies import help_reply

        s = self._settings()
        return help_reply(s.business_name, s.help_text)

    def opt_out_confirmation(self) -> str:
        from agents.compliance.replies import opt_out_confirmation

        return opt_out_confirmation(self._settings().business_name)

    def opt_in_confirmation(self) -> str:
        from agents.compliance.replies import opt_in_confirmation

        return opt_in_confirmation(self._settings().business_name)
