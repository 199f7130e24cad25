"""Records of the built-in calendar (`store/booking_repo.py`): immutable msgspec structs."""

from __future__ import annotations

from datetime import datetime

import msgspec

from store.errors import StoreError

BOOKING_STATUSES: tuple[str, ...] = ("confirmed", "cancelled")


class Booking(msgspec.Struct, frozen=True):
    id: int
    calendar: str
    start_at: datetime
    end_at: datetime
    summary: str
    description: str | None
    attendee_email: str | None
    call_sid: str | None
    idem_key: str | None
    status: str
    created_at: datetime


class SlotConflict(StoreError):
    """The interval (with its buffer) overlaps a confirmed booking; nothing was written.
    `conflicts` are the bookings in the way."""

    def __init__(self, message: str, conflicts: tuple[Booking, ...] = ()) -> None:
        super().__init__(message)
        self.conflicts = conflicts
