"""Records of the campaign side of the store: campaigns, enrollments, touches, email outbox.

Immutable msgspec structs like store/models.py, times as aware UTC datetimes. The campaign
definition itself is kept as plain JSON data (`definition`): its shape and validation
belong to sms/campaigns, which the store must not import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

# Where an enrollment stands: "active" has a next touch due at `due_at`; "completed" sent
# every touch; "stopped" ended early for `stop_reason`.
ENROLLMENT_STATES: tuple[str, ...] = ("active", "completed", "stopped")
# Why a campaign ended early for a lead (the campaign's stop rules, plus the reasons the
# store or compliance gives: an unusable number, an unknown zone, an erased lead).
STOP_REASONS: tuple[str, ...] = (
    "reply", "opt_out", "handoff", "booked", "dnc", "invalid_number", "zone_unknown",
    "lead_missing", "removed",
)
# Idempotency keys of campaign touches start with this (purpose "marketing" first, so the
# SMS sender's `purpose_of` reads it as marketing).
TOUCH_KEY_PREFIX = "marketing:campaign:"


def touch_key(enrollment_id: int, touch: int) -> str:
    """The one idempotency key of touch `touch` (1-based) of an enrollment: a retried or
    duplicated pass queues nothing twice."""
    return f"{TOUCH_KEY_PREFIX}{enrollment_id}:{touch}"


class CampaignRecord(msgspec.Struct, frozen=True):
    id: int
    name: str
    business: str
    definition: dict[str, Any]
    paused: bool
    created_at: datetime
    updated_at: datetime


class Enrollment(msgspec.Struct, frozen=True):
    id: int
    campaign_id: int
    phone: str
    state: str
    stop_reason: str | None
    next_touch: int
    next_channel: str
    due_at: datetime | None
    enrolled_at: datetime
    last_touch_at: datetime | None
    stopped_at: datetime | None


class EnrollCounts(msgspec.Struct, frozen=True):
    enrolled: int
    already: int


class TouchSend(msgspec.Struct, frozen=True):
    """What became of a queued touch's message so far: `status` of its outbox row and
    when the provider accepted it (None while not yet sent)."""

    status: str
    sent_at: datetime | None


class EmailOutboxItem(msgspec.Struct, frozen=True):
    """An email committed before the SMTP call (see store/migrations/0004)."""

    id: int
    message_id: int
    idempotency_key: str
    phone: str
    to_addr: str
    subject: str
    body: str
    purpose: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    provider_id: str | None


class CampaignCounts(msgspec.Struct, frozen=True):
    """Raw per-campaign figures for the report; rates are computed by sms/report.py."""

    campaign: str
    enrolled: int
    active: int
    stopped: dict[str, int]


class TouchFact(msgspec.Struct, frozen=True):
    """One queued campaign touch with its message's fate, for the report."""

    campaign: str
    phone: str
    touch: int
    channel: str
    variant: int
    status: str
    provider_sid: str | None
    segments: int
    at: datetime
