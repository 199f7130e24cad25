"""The one door every outbound contact goes through: gather facts, decide, audit.

The engine is pure; this shell reads what it needs from the store — consent trail,
DNC list, the lead's recorded state, the conversation window, the marketing contacts of
the last 24 h — and appends every decision to the audit trail (kind "compliance") before
returning it, so a send can always be traced to the answer that allowed it.

Facts only ever add restrictions: the caller may pass `opted_out=True` or extra
`recent_contacts` (the dialer's calls), and the store's answer is OR-ed / added in; the
store can never turn a caller's "opted out" into "allowed". A store error propagates:
without the facts there is no decision, and without a decision there is no send.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from agents.compliance.engine import (
    CAP_PERIOD,
    REPLY_PURPOSES,
    CompliancePolicy,
    ContactRequest,
    Decision,
    decide,
)

if TYPE_CHECKING:
    from store.database import Database

log = logging.getLogger("leadline.compliance")

# Outbound purposes that count toward the per-24 h caps (telephone solicitations).
MARKETING_PURPOSES: tuple[str, ...] = ("marketing", "follow_up")
# Messages read back to date the contacts that count_outbound counted.
HISTORY_LIMIT = 200
# Decisions by reason since start; ops exports these as a metric.
DECISIONS: Counter[str] = Counter()

# Extra marketing contacts the store's message table does not hold (the dialer's calls):
# (E.164 phone, since) → their times.
ContactSource = Callable[[str, datetime], Awaitable[Sequence[datetime]]]


async def gather(db: Database, request: ContactRequest, *,
                 extra_contacts: ContactSource | None = None) -> ContactRequest:
    """`request` completed with the store's facts (never weakened by them)."""
    from store.phones import InvalidPhoneNumber, normalize_phone

    try:
        phone = normalize_phone(request.phone)
    except InvalidPhoneNumber as exc:
        log.info("compliance: unusable phone %s", exc)
        return msgspec.structs.replace(request, invalid=True)
    at = request.at.astimezone(UTC)
    lead = await db.get_lead(phone)
    opted_out = request.opted_out or await db.is_opted_out(phone)
    dnc = request.dnc or await db.is_dnc(phone)
    lead_state = request.lead_state or (lead.state if lead is not None else None)
    last_inbound = _latest(request.last_inbound_at, await db.last_inbound_at(phone))
    contacts = list(request.recent_contacts)
    if request.purpose not in REPLY_PURPOSES:
        contacts += await _marketing_contacts(db, phone, at)
        if extra_contacts is not None:
            contacts += await extra_contacts(phone, at - CAP_PERIOD)
    sent = request.opt_out_confirmation_sent
    if request.purpose == "opt_out_confirmation" and (opted_out or dnc) and not sent:
        sent = await _confirmation_sent(db, phone)
    return msgspec.structs.replace(
        request, phone=phone, opted_out=opted_out, dnc=dnc, lead_state=lead_state,
        last_inbound_at=last_inbound, recent_contacts=tuple(contacts),
        opt_out_confirmation_sent=sent,
    )


async def check_and_audit(db: Database, request: ContactRequest,
                          policy: CompliancePolicy | None = None, *,
                          extra_contacts: ContactSource | None = None,
                          source: str | None = None) -> Decision:
    """Decide on `request` with the store's facts, append the decision to the audit trail,
    return it. Call this for every real send; the answer is binding."""
    facts = await gather(db, request, extra_contacts=extra_contacts)
    decision = decide(facts, policy)
    DECISIONS[decision.reason] += 1
    await db.audit("compliance", detail=audit_detail(facts, decision, source=source))
    if not decision.allowed:
        log.info("compliance: %s %s %s refused: %s", facts.channel, facts.purpose,
                 facts.phone, decision.reason)
    return decision


def audit_detail(request: ContactRequest, decision: Decision, *,
                 source: str | None = None) -> dict[str, Any]:
    """What the audit trail keeps of one decision: the question, the facts that mattered
    and the answer, as plain JSON values."""
    detail: dict[str, Any] = {
        "phone": request.phone,
        "channel": request.channel,
        "purpose": request.purpose,
        "at": request.at.astimezone(UTC).isoformat(),
        "allowed": decision.allowed,
        "reason": decision.reason,
        "zones": decision.zones,
        "states": decision.states,
        "next_allowed_at": _iso(decision.next_allowed_at),
        "opted_out": request.opted_out,
        "dnc": request.dnc,
        "last_inbound_at": _iso(request.last_inbound_at),
        "recent_contacts": len(request.recent_contacts),
    }
    if source:
        detail["source"] = source
    return detail


async def _marketing_contacts(db: Database, phone: str, at: datetime) -> list[datetime]:
    since = at - CAP_PERIOD
    count = await db.count_outbound(phone, since=since, purposes=MARKETING_PURPOSES)
    if count <= 0:
        return []
    times = [
        m.created_at for m in await db.list_messages(phone, limit=HISTORY_LIMIT)
        if m.direction == "outbound" and m.purpose in MARKETING_PURPOSES
        and m.created_at >= since
    ][-count:]
    # More counted than dated (history beyond the page): the undated ones are taken as
    # happening now, which only ever delays the next contact.
    times += [at] * (count - len(times))
    return times


async def _confirmation_sent(db: Database, phone: str) -> bool:
    """Has an opt-out confirmation gone out since the latest opt-out (ever, if the block
    is a DNC entry without an opt-out event)?"""
    since = datetime(1970, 1, 1, tzinfo=UTC)
    for event in await db.list_consent_events(phone):
        if event.kind == "opt_out" and event.at > since:
            since = event.at
    found = await db.count_outbound(phone, since=since, purposes=("opt_out_confirmation",))
    return found > 0


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


__all__ = ["DECISIONS", "MARKETING_PURPOSES", "ContactSource", "audit_detail",
           "check_and_audit", "gather"]
