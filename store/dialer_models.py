"""Records of the outbound dialer's store: one `DialRecord` per dial attempt of a job.

Kept apart from `store.models` because only the dialer reads them; the statuses are
Twilio's call statuses plus our own two before the provider answered (`reserved`: the
idempotency key is committed and the dial may be under way; `refused`: we never dialed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

# Order in which a call's status can only move forward: callbacks arrive out of order
# (Twilio retries them, several processes receive them) and a late "ringing" must not
# undo "in-progress". Terminal statuses share the top rank: the first one wins.
DIAL_STATUS_RANK: dict[str, int] = {
    "reserved": 0,
    "queued": 1,
    "initiated": 2,
    "ringing": 3,
    "in-progress": 4,
    "completed": 9,
    "busy": 9,
    "no-answer": 9,
    "failed": 9,
    "canceled": 9,
    "refused": 9,
}
TERMINAL_STATUSES = frozenset(s for s, rank in DIAL_STATUS_RANK.items() if rank == 9)
OUTCOMES = (
    "meeting_booked", "declined", "callback_requested", "voicemail_left", "no_answer",
    "busy", "failed", "do_not_call", "ivr_failed",
)


class DialRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One dial attempt. `detail` holds what the conversation produced (transcript URL,
    meeting, decline reason, objections) as plain JSON; `outcome` is one of OUTCOMES."""

    id: int
    dial_key: str
    queue: str
    job_id: str
    attempt: int
    campaign_id: str | None
    step: int | None
    phone: str
    caller_id: str
    script: str | None
    call_sid: str | None
    status: str
    answered_by: str | None
    outcome: str | None
    detail: dict[str, Any]
    error: str | None
    duration_s: int | None
    created_at: datetime
    dialed_at: datetime | None
    answered_at: datetime | None
    media_ended_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
