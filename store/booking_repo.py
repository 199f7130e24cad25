"""The built-in calendar's SQL: bookings that never overlap, on SQLite and PostgreSQL.

A mixin of `SqlRepository`, written against its small driver (`fetch`, `fetchrow`,
`transaction`, `dialect`). Double booking is prevented in the database, not in memory
(several server processes share one calendar): `book_slot` locks the calendar's row
(`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` writer is already alone), then
looks for a confirmed booking within the buffer and inserts only if there is none. Under
READ COMMITTED each statement sees rows committed before it started, so the second of two
racing transactions, waiting on the lock, sees the first one's booking and is refused.
The partial unique index on (calendar, start_at) is the backstop for identical starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from store.booking_models import Booking, SlotConflict
from store.repo_mixin import RepoMixin

if TYPE_CHECKING:

    from store.repository import Row

BOOKING_COLS = ("id, calendar, start_at, end_at, summary, description, attendee_email,"
                " call_sid, idem_key, status, created_at")
MAX_TEXT = 2000
# A booking longer than a day is a bug in the caller, not a meeting.
MAX_DURATION = timedelta(hours=24)
MAX_WINDOW = timedelta(days=366)


def _text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:limit]


def _check_calendar(calendar: str) -> str:
    if not isinstance(calendar, str) or not 1 <= len(calendar) <= 200:
        raise ValueError("calendar must be 1..200 characters")
    return calendar


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return at


class BookingRepoMixin(RepoMixin):
    """The built-in calendar; see the module docstring. Needs the `SqlRepository` driver."""

    def _booking(self, r: Row) -> Booking:
        d = self.dialect
        return Booking(id=r[0], calendar=r[1], start_at=d.dt(r[2]), end_at=d.dt(r[3]),
                       summary=r[4], description=r[5], attendee_email=r[6], call_sid=r[7],
                       idem_key=r[8], status=r[9], created_at=d.dt(r[10]))

    async def bookings_between(self, calendar: str, start: datetime,
                               end: datetime) -> list[Booking]:
        """Confirmed bookings overlapping [start, end), by start time."""
        _check_calendar(calendar)
        _aware(start, "start")
        _aware(end, "end")
        if end <= start or end - start > MAX_WINDOW:
            raise ValueError("the window must be positive and at most a year")
        d = self.dialect
        rows = await self.fetch(
            f"SELECT {BOOKING_COLS} FROM bookings WHERE calendar = $1"
            " AND status = 'confirmed' AND start_at < $3 AND end_at > $2"
            " ORDER BY start_at, id",
            calendar, d.ts(start), d.ts(end))
        return [self._booking(r) for r in rows]

    async def book_slot(
        self,
        calendar: str,
        start: datetime,
        end: datetime,
        *,
        summary: str,
        description: str | None = None,
        attendee_email: str | None = None,
        call_sid: str | None = None,
        idem_key: str | None = None,
        buffer: timedelta = timedelta(0),
    ) -> tuple[Booking, bool]:
        """Book [start, end) unless a confirmed booking lies within `buffer` of it.

        Returns (booking, True) when written; (the earlier booking, False) when `idem_key`
        was booked before. Raises `SlotConflict` (nothing written) on an overlap."""
        _check_calendar(calendar)
        _aware(start, "start")
        _aware(end, "end")
        if not timedelta(0) < end - start <= MAX_DURATION:
            raise ValueError("a booking lasts more than 0 and at most 24 hours")
        if buffer < timedelta(0) or buffer > MAX_DURATION:
            raise ValueError("buffer must be 0..24 hours")
        if not summary.strip():
            raise ValueError("summary must not be empty")
        if idem_key is not None and not 1 <= len(idem_key) <= 400:
            raise ValueError("idem_key must be 1..400 characters")
        d = self.dialect
        now = d.ts(self.clock())
        async with self.transaction("booking") as tx:
            await tx.execute(
                "INSERT INTO booking_calendars (name, created_at) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING", calendar, now)
            await tx.fetchrow(
                f"SELECT name FROM booking_calendars WHERE name = $1{d.for_update}", calendar)
            if idem_key is not None:
                row = await tx.fetchrow(
                    f"SELECT {BOOKING_COLS} FROM bookings WHERE idem_key = $1", idem_key)
                if row is not None:
                    return self._booking(row), False
            rows = await tx.fetch(
                f"SELECT {BOOKING_COLS} FROM bookings WHERE calendar = $1"
                " AND status = 'confirmed' AND start_at < $3 AND end_at > $2"
                " ORDER BY start_at",
                calendar, d.ts(start - buffer), d.ts(end + buffer))
            if rows:
                raise SlotConflict(
                    f"{start.isoformat()} overlaps {len(rows)} booking(s) on {calendar!r}",
                    tuple(self._booking(r) for r in rows))
            row = await tx.fetchrow(
                "INSERT INTO bookings (calendar, start_at, end_at, summary, description,"
                " attendee_email, call_sid, idem_key, status, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'confirmed', $9)"
                f" RETURNING {BOOKING_COLS}",
                calendar, d.ts(start), d.ts(end), _text(summary, 300), _text(description),
                _text(attendee_email, 320), _text(call_sid, 64), idem_key, now)
        assert row is not None
        return self._booking(row), True

    async def cancel_booking(self, booking_id: int) -> Booking | None:
        """Cancel a booking (its slot becomes free); None if there is no such booking."""
        async with self.transaction("booking cancel") as tx:
            row = await tx.fetchrow(
                "UPDATE bookings SET status = 'cancelled' WHERE id = $1"
                f" RETURNING {BOOKING_COLS}", booking_id)
        return None if row is None else self._booking(row)
