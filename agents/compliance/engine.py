"""May we contact this person on this channel for this purpose now, and if not, when?

A pure function of a `ContactRequest` (the facts, gathered by the shell in `gate.py`)
and a `CompliancePolicy` (the law from rules.toml plus the business's stricter config).
No clock and no I/O here: `request.at` is the moment asked about, so the same facts
always give the same answer and tests can walk any instant, DST days included.

Order of the checks, and why:

1. a number that cannot be reached (invalid) — nothing else matters;
2. the one opt-out confirmation after an opt-out — the only message an opted-out or DNC
   number may still get (CTIA, FCC 24-24), once;
3. opt-out, then DNC — block every channel and purpose;
4. replies the lead asked for (a conversation they started within the window, HELP and
   opt-in confirmations) — not telephone solicitation, so no quiet hours or caps; and
   notices to the business's own owner or staff ("owner_notice": an emergency alert, a
   new lead, a handoff), who configured the number to be told at any hour — the
   quiet-hour and cap laws govern solicitations of consumers, not these;
5. email — neither the quiet-hour laws nor the per-24 h caps (telephone calls and
   texts only) apply;
6. quiet hours in every zone of the number, and the FL/OK/MD-style frequency cap.

`next_allowed_at` is the earliest instant at or after `at` when every zone is inside its
window and the cap has cleared, found by jumping from window start to window start (no
minute-by-minute scan), in whole minutes, at most `LOOKAHEAD` ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import msgspec

from agents.compliance.rules import (
    Rules,
    Window,
    load_rules,
    number_facts,
    parse_hhmm,
    zone_info,
)
from agents.compliance.settings import ComplianceSettings

Channel = Literal["sms", "voice", "email"]
CHANNELS: tuple[str, ...] = ("sms", "voice", "email")
# Replies to something the lead sent: exempt from quiet hours and caps.
REPLY_PURPOSES = frozenset({"help", "opt_in_confirmation", "opt_out_confirmation"})
# To the business's own owner/staff contact (never a lead): opt-out and DNC still hold.
OWNER_PURPOSES = frozenset({"owner_notice"})
LOOKAHEAD = timedelta(days=8)
CAP_PERIOD = timedelta(hours=24)
# Every decision says which of these it is; callers and the audit trail key on them.
REASONS = (
    "allowed", "allowed_conversation", "allowed_opt_out_confirmation", "allowed_owner_notice",
    "opted_out", "dnc",
    "quiet_hours", "zone_unknown", "frequency_cap", "invalid_number",
)
_MAX_JUMPS = 64


class ContactRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The facts about one intended contact. `recent_contacts`: when this phone got
    marketing contacts (calls and texts, any channel), for the rolling caps."""

    phone: str
    channel: Channel
    purpose: str
    at: datetime
    lead_state: str | None = None
    opted_out: bool = False
    dnc: bool = False
    last_inbound_at: datetime | None = None
    recent_contacts: Sequence[datetime] = ()
    invalid: bool = False
    # The opt-out confirmation went out already: no second one.
    opt_out_confirmation_sent: bool = False

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}: {self.channel!r}")
        if not self.purpose:
            raise ValueError("purpose must not be empty")
        for name in ("at", "last_inbound_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware: {value!r}")
        if any(c.utcoffset() is None for c in self.recent_contacts):
            raise ValueError("recent_contacts must be timezone-aware")


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str
    zones: list[str]
    next_allowed_at: datetime | None
    states: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CompliancePolicy:
    """The law (rules) plus the business's own stricter limits, ready to decide with."""

    rules: Rules = field(default_factory=load_rules)
    business_window: Window | None = None
    conversation_window: timedelta = timedelta(minutes=15)
    cap_states: frozenset[str] = field(default_factory=lambda: load_rules().capped_states)
    cap_per_24h: int = 3

    @classmethod
    def from_settings(cls, settings: ComplianceSettings,
                      rules: Rules | None = None) -> CompliancePolicy:
        rules = rules or load_rules()
        window = Window(parse_hhmm(settings.window_start), parse_hhmm(settings.window_end))
        return cls(
            rules=rules,
            business_window=None if window == rules.federal else window,
            conversation_window=timedelta(minutes=settings.conversation_window_min),
            cap_states=frozenset(settings.frequency_cap_states) | rules.capped_states,
            cap_per_24h=min(settings.cap_per_24h, rules.min_cap or settings.cap_per_24h),
        )

    def window(self, weekday: int, states: Sequence[str]) -> Window | None:
        return self.rules.window(weekday, states, self.business_window)


def _ceil_minute(at: datetime) -> datetime:
    if at.second == 0 and at.microsecond == 0:
        return at
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _entry(at: datetime, zone: str, states: Sequence[str],
           policy: CompliancePolicy) -> datetime | None:
    """None when `at` is inside the zone's window, else the next window start (UTC)."""
    tz = zone_info(zone)
    local = at.astimezone(tz)
    today = policy.window(local.weekday(), states)
    if today is not None and today.contains(local.time()):
        return None
    day: date = local.date()
    if today is None or local.time() >= today.start_time:
        day += timedelta(days=1)
    for _ in range(8):
        w = policy.window(day.weekday(), states)
        if w is not None:
            start = datetime.combine(day, w.start_time, tzinfo=tz).astimezone(UTC)
            # A start inside a DST gap maps before `at`'s minute: never move backwards.
            return start if start > at else at + timedelta(minutes=1)
        day += timedelta(days=1)
    return at + LOOKAHEAD + timedelta(days=1)


def inside_windows(at: datetime, zones: Sequence[str], states: Sequence[str],
                   policy: CompliancePolicy) -> bool:
    """Is `at` inside the strictest window in every one of `zones`?"""
    return all(_entry(at, z, states, policy) is None for z in zones)


def next_allowed(at: datetime, zones: Sequence[str], states: Sequence[str],
                 policy: CompliancePolicy, not_before: datetime | None = None) -> datetime | None:
    """Earliest instant ≥ max(at, not_before) inside every zone's window, or None past
    LOOKAHEAD."""
    t = at if not_before is None or not_before <= at else _ceil_minute(not_before)
    limit = at + LOOKAHEAD
    for _ in range(_MAX_JUMPS):
        if t > limit:
            return None
        entries = [e for z in zones if (e := _entry(t, z, states, policy)) is not None]
        if not entries:
            return t.astimezone(UTC)
        t = max(entries)
    return None


def cap_clears_at(at: datetime, contacts: Sequence[datetime], cap: int) -> datetime | None:
    """When a new contact would be the cap-th within a rolling 24 h at the earliest, or
    None when one is allowed at `at` already."""
    recent = sorted(c for c in contacts if c > at - CAP_PERIOD)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + CAP_PERIOD


def decide(request: ContactRequest, policy: CompliancePolicy | None = None) -> Decision:
    """The answer for one contact; never raises for a well-formed request."""
    policy = policy or CompliancePolicy()
    rules = policy.rules
    at = request.at.astimezone(UTC)
    facts = number_facts(request.phone)
    zones = list(facts.zones)
    states = sorted({s for s in (facts.state, rules.state_code(request.lead_state)) if s})

    def answer(allowed: bool, reason: str, nxt: datetime | None = None) -> Decision:
        return Decision(allowed, reason, zones, nxt, states)

    needs_phone = request.channel in ("sms", "voice")
    if request.invalid or (needs_phone and not facts.valid):
        return answer(False, "invalid_number")
    if request.purpose == "opt_out_confirmation" and (request.opted_out or request.dnc) \
            and not request.opt_out_confirmation_sent:
        return answer(True, "allowed_opt_out_confirmation")
    if request.opted_out:
        return answer(False, "opted_out")
    if request.dnc:
        return answer(False, "dnc")
    if request.purpose in REPLY_PURPOSES or (
        request.purpose == "conversation"
        and request.last_inbound_at is not None
        and timedelta(0) <= at - request.last_inbound_at <= policy.conversation_window
    ):
        return answer(True, "allowed_conversation")
    if request.purpose in OWNER_PURPOSES:
        return answer(True, "allowed_owner_notice")
    if request.channel == "email":
        return answer(True, "allowed")
    if not zones:
        return answer(False, "zone_unknown")

    clears = None
    if policy.cap_states.intersection(states):
        clears = cap_clears_at(at, request.recent_contacts, policy.cap_per_24h)
    inside = inside_windows(at, zones, states, policy)
    if inside and clears is None:
        return answer(True, "allowed")
    reason = "quiet_hours" if not inside else "frequency_cap"
    return answer(False, reason, next_allowed(at, zones, states, policy, clears))


__all__ = [
    "CHANNELS", "LOOKAHEAD", "OWNER_PURPOSES", "REASONS", "CompliancePolicy", "ContactRequest",
    "Decision", "cap_clears_at", "decide", "inside_windows", "next_allowed",
]
