"""The records the SQL store hands out: immutable msgspec structs, times as aware UTC datetimes.

msgspec rather than dataclasses because the same structs are encoded per turn
into the journal and printed by the ops CLI; it is the fastest codec we have.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec


def utc(at: datetime) -> datetime:
    """`at` in UTC; naive datetimes are refused, since their zone is a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware (UTC) datetime")
    return at.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Caller(msgspec.Struct, frozen=True):
    """One phone number that has called or been called. `call_count == 1`: first call."""

    id: int
    phone: str
    name: str | None
    first_seen: datetime
    last_seen: datetime
    call_count: int


class Call(msgspec.Struct, frozen=True):
    """One phone call. `direction` is "inbound" | "outbound", or "unknown" for a call whose
    turns reached SQL before its start record did (write-behind replay)."""

    id: int
    call_sid: str
    direction: str
    from_number: str
    to_number: str
    status: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    recording_path: str | None
    brain: str | None
    input_tokens: int
    output_tokens: int


class Turn(msgspec.Struct, frozen=True):
    """One committed utterance. `seq` is assigned by the call (0, 1, 2, …) and with
    `call_sid` makes the turn's identity: writing it again replaces, never duplicates.
    `role` is "caller" | "agent" | "tool" | "system"."""

    call_sid: str
    seq: int
    role: str
    text: str
    started_at: datetime
    ended_at: datetime | None = None


class CallDetail(msgspec.Struct, frozen=True):
    call: Call
    turns: list[Turn]


class AuditEvent(msgspec.Struct, frozen=True):
    id: int
    at: datetime
    kind: str
    call_sid: str | None
    detail: dict[str, Any]


class PurgeCounts(msgspec.Struct, frozen=True):
    """What `purge_older_than` removed. `recordings` lists the files whose rows no longer
    point at them: the caller deletes them (the store does not own the recording dir)."""

    turns: int
    recordings: list[str]
    analyses: int = 0


class StoreStats(msgspec.Struct):
    """Failure counters for /metrics; mutable, owned by one Database."""

    write_errors: int = 0
    last_write_error: str = ""


# lead domain ------------------------------------------------------------------

# Where a lead stands in the funnel. "opted_out" mirrors the consent trail (set when an
# opt-out event arrives) so lists and campaigns can filter on one column; the trail itself
# stays the source of truth for `Lead.opted_out`.
LEAD_STATUSES: tuple[str, ...] = (
    "new",
    "contacted",
    "replied",
    "interested",
    "booked",
    "not_interested",
    "opted_out",
    "wrong_number",
)

# Why a message is sent; compliance rules differ by purpose (a conversation reply or an
# opt-out confirmation is not marketing and is not frequency-capped like one).
MESSAGE_PURPOSES: tuple[str, ...] = (
    "conversation",
    "marketing",
    "opt_out_confirmation",
    "help",
    "opt_in_confirmation",
    "transactional",
    "notification",
    # To the business's own owner/staff (alerts, new leads, handoffs), never to a lead.
    "owner_notice",
)
MESSAGE_DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
MESSAGE_CHANNELS: tuple[str, ...] = ("sms", "email")
CONSENT_KINDS: tuple[str, ...] = ("opt_out", "opt_in")
CONSENT_CHANNELS: tuple[str, ...] = ("sms", "email", "voice", "api", "twilio_error")
OUTBOX_STATUSES: tuple[str, ...] = ("pending", "sending", "sent", "failed", "cancelled")

# Delivery progress of a message, for status callbacks that arrive out of order: the
# stored status only moves to a higher rank. failed/undelivered outrank "sent" (the
# carrier gave up after accepting) but not delivered/read (a late failure report for a
# message the handset already has is noise). "received" is an inbound message's state.
MESSAGE_STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "queued": 1,
    "accepted": 1,
    "scheduled": 1,
    "sending": 2,
    "sent": 3,
    "failed": 4,
    "undelivered": 4,
    "canceled": 4,
    "delivered": 5,
    "received": 5,
    "read": 6,
}


class LeadInput(msgspec.Struct, frozen=True):
    """One lead as an import or the API offers it. None means "not given" (never "erase");
    `attributes` are merged key by key into the stored ones."""

    phone: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    state: str | None = None
    attributes: dict[str, str] = {}
    source: str | None = None


class Lead(msgspec.Struct, frozen=True):
    """A person we may contact, keyed by E.164 phone. `opted_out` is derived from the
    consent trail (the latest opt_out/opt_in event wins) and `dnc` from the DNC list, so
    neither can drift from the legal record. `caller_id` links the caller with the same
    number: caller memory spans voice and SMS."""

    id: int
    phone: str
    first_name: str | None
    last_name: str | None
    email: str | None
    state: str | None
    status: str
    source: str | None
    attributes: dict[str, Any]
    human_takeover: bool
    opted_out: bool
    dnc: bool
    caller_id: int | None
    created_at: datetime
    updated_at: datetime
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None


class LeadUpsertResult(msgspec.Struct, frozen=True):
    created: int
    updated: int
    unchanged: int


class Message(msgspec.Struct, frozen=True):
    """One SMS or email, stored before it is acted on. `status_history` keeps every
    provider report in arrival order ({"status", "at", "error_code"}); `status` is the
    furthest state reached (see MESSAGE_STATUS_RANK)."""

    id: int
    phone: str
    direction: str
    channel: str
    purpose: str
    body: str
    from_addr: str
    to_addr: str
    provider_sid: str | None
    status: str
    status_history: list[dict[str, Any]]
    error_code: int | None
    segments: int
    intent: str | None
    confidence: float | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime


class ConsentEvent(msgspec.Struct, frozen=True):
    """One append-only consent fact: what was said (`text`), when, on which channel."""

    id: int
    phone: str
    kind: str
    channel: str
    text: str
    at: datetime
    source: str | None


class DncEntry(msgspec.Struct, frozen=True):
    phone: str
    reason: str | None
    added_at: datetime


class OutboxItem(msgspec.Struct, frozen=True):
    """A send committed before the provider call, keyed by an idempotency key, so a crash
    or retry sends nothing twice and loses nothing. `status` "sending" with a lapsed lease
    means the sender died mid-send: the row is claimable again."""

    id: int
    message_id: int
    idempotency_key: str
    channel: str
    to_addr: str
    from_addr: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    provider_sid: str | None
