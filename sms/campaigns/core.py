"""The scheduler's decision for one claimed enrollment: a pure function of facts and a clock.

Given the campaign, the enrollment, what the store knows about the lead (its row, when it
first wrote back since enrolling, whether the previous touch has left the outbox) and
`now`, `plan` answers one of:

- `Stop(reason)`: a stop rule fired (reply, opt-out, handoff, booked) or the lead cannot
  be reached at all; the enrollment ends and nothing more is sent;
- `HandOff(reason)`: the lead showed interest or booked in a reply: a person takes over
  (the shell sets human_takeover, alerts the owner) and the enrollment ends;
- `Wait(until, why)`: not yet (the previous touch is still in the outbox, its delay runs
  from when it actually left, or the campaign's own window is closed now);
- `Skip(reason)`: this touch cannot go to this lead (no email address, a bounced one, a
  template value the lead lacks); it is recorded and the enrollment moves on;
- `Send(...)`: render this touch's variant now; the shell still asks the compliance
  engine, which may defer it (quiet hours, caps) to its `next_allowed_at`.

Order of checks: reachability and consent first (an opt-out ends everything, whatever the
campaign's stop rules say), then the human side (takeover, booking, interest), then
replies, then timing. No I/O, no clock of its own; tests walk any instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import msgspec

from agents.compliance.engine import CompliancePolicy, next_allowed
from agents.compliance.rules import Window, zone_info
from sms.campaigns.model import (
    Campaign,
    MissingVariable,
    pick_variant,
    render,
    variables_for,
)
from store.campaign_models import Enrollment, TouchSend
from store.models import Lead

# While the previous touch is still waiting in its outbox, look again this much later.
PREVIOUS_PENDING_RETRY = timedelta(minutes=5)
# A queued touch that never left (failed, cancelled) is counted as sent at queue time for
# the next delay: the drip goes on rather than stalling on one bad message.
_CLOSED_UNSENT = frozenset({"failed", "cancelled"})
# Lead statuses that end a campaign as a handoff (interest) or a booking.
INTEREST_STATUSES = frozenset({"interested", "booked"})


class Stop(msgspec.Struct, frozen=True):
    reason: str


class HandOff(msgspec.Struct, frozen=True):
    reason: str  # "handoff" (interested) or "booked"


class Wait(msgspec.Struct, frozen=True):
    until: datetime
    why: str


class Skip(msgspec.Struct, frozen=True):
    reason: str


class Send(msgspec.Struct, frozen=True):
    touch: int
    channel: str
    variant: int
    body: str
    subject: str | None
    personalize: bool


Plan = Stop | HandOff | Wait | Skip | Send


@dataclass(frozen=True, slots=True)
class LeadFacts:
    lead: Lead | None
    # First inbound message (any channel) at or after enrolling; None: no reply.
    replied_at: datetime | None
    # The previous touch's outbox fate (touch > 1); None if it was skipped or absent.
    previous: TouchSend | None
    # Whether the lead's email address bounced for good.
    email_bounced: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    business_name: str
    booking_url: str


def campaign_policy(base: CompliancePolicy, campaign: Campaign) -> CompliancePolicy:
    """The compliance policy narrowed by the campaign's window: a window preference can
    only ever make the legal window smaller."""
    minutes = campaign.window_minutes()
    if minutes is None:
        return base
    window = Window(*minutes).intersect(base.business_window)
    if window is None:  # disjoint with the business window: keep the stricter business one
        return base
    return replace(base, business_window=window)


def window_open_at(now: datetime, zones: Sequence[str], states: Sequence[str],
                   campaign: Campaign, policy: CompliancePolicy) -> datetime | None:
    """None when `now` is inside the campaign's window (and days) in every zone, else the
    next instant it is. Without zones (unknown place) the window cannot be placed and is
    not applied: compliance decides about such numbers on its own."""
    if (campaign.window is None and not campaign.days) or not zones:
        return None
    days = campaign.weekdays()
    t = now
    for _ in range(16):
        nxt = next_allowed(t, zones, states, policy)
        if nxt is None:
            return None
        bad = [z for z in zones if nxt.astimezone(zone_info(z)).weekday() not in days]
        if not bad:
            return None if nxt <= now else nxt
        local = nxt.astimezone(zone_info(bad[0]))
        t = (local.replace(hour=0, minute=0, second=0, microsecond=0)
             + timedelta(days=1)).astimezone(UTC)
    return None


def plan(campaign: Campaign, e: Enrollment, facts: LeadFacts, now: datetime,
         identity: Identity) -> Plan:
    lead = facts.lead
    stop_on = set(campaign.stop_on)
    if lead is None:
        return Stop("lead_missing")
    if lead.opted_out:
        return Stop("opt_out")
    if lead.dnc:
        return Stop("dnc")
    if lead.status == "wrong_number":
        return Stop("invalid_number")
    if lead.human_takeover and "handoff" in stop_on:
        return Stop("handoff")
    if facts.replied_at is not None and lead.status in INTEREST_STATUSES:
        if "handoff" in stop_on or ("booked" in stop_on and lead.status == "booked"):
            return HandOff("booked" if lead.status == "booked" else "handoff")
    if lead.status == "booked" and "booked" in stop_on:
        return Stop("booked")
    if facts.replied_at is not None and "reply" in stop_on:
        return Stop("reply")
    n = e.next_touch
    if not 1 <= n <= len(campaign.touches):
        return Stop("removed")  # the campaign was reloaded with fewer touches
    touch = campaign.touches[n - 1]
    if n > 1:
        prev = facts.previous
        if prev is not None and prev.status not in _CLOSED_UNSENT:
            if prev.sent_at is None:
                return Wait(now + PREVIOUS_PENDING_RETRY, "previous_touch_pending")
            due = prev.sent_at + touch.delay_td
            if due > now:
                return Wait(due, "delay_from_send")
    if touch.channel == "email":
        if not lead.email:
            return Skip("no_email")
        if facts.email_bounced:
            return Skip("email_bounced")
    variant = pick_variant(touch, e.id, n)
    template, subject, _ = touch.choices()[variant]
    values = variables_for(
        first_name=lead.first_name, last_name=lead.last_name, phone=lead.phone,
        email=lead.email, attributes=lead.attributes, business_name=identity.business_name,
        booking_url=identity.booking_url, declared=campaign.attributes)
    try:
        body = render(template, values)
        subj = render(subject, values) if subject is not None else None
    except MissingVariable as exc:
        return Skip(f"missing_variable:{exc.name}")
    return Send(n, touch.channel, variant, body.strip(), subj, touch.personalize)


def next_due(campaign: Campaign, touch: int, sent_at: datetime) -> tuple[str, datetime] | None:
    """(channel, provisional due time) of the touch after `touch`, or None when `touch`
    was the last. Provisional: when it comes due, `plan` re-reads the actual send time of
    `touch` and waits for the delay from there."""
    if touch >= len(campaign.touches):
        return None
    nxt = campaign.touches[touch]
    return nxt.channel, sent_at + nxt.delay_td


def first_due(campaign: Campaign, enrolled_at: datetime) -> tuple[str, datetime]:
    first = campaign.touches[0]
    return first.channel, enrolled_at + first.delay_td
