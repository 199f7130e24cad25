"""The built-in calendar: our own SQL (`store/booking_repo.py`), the embedded default.

Busy intervals are the confirmed bookings; a new event is written only if nothing lies
within the buffer (checked in the database, so two processes racing for a slot cannot
both win). Invitations are not emailed by this provider: the booking is recorded with
the attendee, and the confirmation is spoken on the call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from agents.booking.core import Interval
from agents.booking.providers import CalendarError, CreatedEvent, SlotTaken


class BuiltinCalendar:
    name = "builtin"
    invites = False

    def __init__(self, db: Callable[[], Any], calendar: str, *,
                 buffer: timedelta = timedelta(0)) -> None:
        self._db = db
        self.calendar = calendar
        self.buffer = buffer

    async def free_busy(self, start: datetime, end: datetime) -> list[Interval]:
        from store.errors import StoreError

        try:
            rows = await self._db().bookings_between(self.calendar, start, end)
        except StoreError as exc:
            raise CalendarError(f"built-in calendar unavailable: {exc}", retryable=True) \
                from exc
        return [Interval(b.start_at, b.end_at) for b in rows]

    async def create_event(self, start: datetime, end: datetime, summary: str,
                           description: str, attendee_email: str, *,
                           key: str = "", call_sid: str = "") -> CreatedEvent:
        from store.booking_models import SlotConflict
        from store.errors import StoreError

        try:
            booking, _ = await self._db().book_slot(
                self.calendar, start, end, summary=summary, description=description or None,
                attendee_email=attendee_email or None, call_sid=call_sid or None,
                idem_key=key or None, buffer=self.buffer)
        except SlotConflict as exc:
            raise SlotTaken(str(exc), status=409) from exc
        except StoreError as exc:
            raise CalendarError(f"built-in calendar unavailable: {exc}", retryable=True) \
                from exc
        return CreatedEvent(event_id=f"builtin-{booking.id}")

    async def close(self) -> None:
        return None
