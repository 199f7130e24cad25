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


class StoreStats(msgspec.Struct):
    """Failure counters for /metrics; mutable, owned by one Database."""

    write_errors: int = 0
    last_write_error: str = ""
