"""The booking shell: a calendar provider plus the rules of `core`, one per server.

It fetches the busy intervals of exactly the window it needs, lets `core` choose, and
writes the event. The busy read right before a write is the insert-time check for
calendars that do not refuse overlaps themselves (Google); the built-in one also refuses
in SQL. A slot lost in between comes back as `Taken` with fresh proposals, so the agent
can offer two new times in the same breath.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agents.booking.core import (
    BookingInputError,
    DayRequest,
    Interval,
    Rules,
    check_start,
    confirmation,
    free_slots,
    propose,
    spoken_time,
)
from agents.booking.providers import CalendarProvider, CreatedEvent, SlotTaken
from agents.booking.settings import BookingSettings

log = logging.getLogger("leadline.booking")


class BookingStats:
    """Process-wide booking figures (plain ints, read at scrape time by `ops/`); they
    outlive a service rebuilt on reload."""

    __slots__ = ("booked", "calendar_errors", "conflicts", "link_booked", "link_refused",
                 "refreshes", "retries")

    def __init__(self) -> None:
        self.booked = 0
        self.conflicts = 0
        # by kind: auth (401), forbidden (403), rate_limited (429), unavailable (5xx,
        # timeouts, unreachable), other
        self.calendar_errors: dict[str, int] = {}
        self.refreshes = 0
        self.retries = 0
        self.link_booked = 0
        self.link_refused = 0

    def calendar_error(self, exc: Exception) -> None:
        status = getattr(exc, "status", None)
        kind = ("auth" if status == 401 else "forbidden" if status == 403
                else "rate_limited" if status == 429
                else "unavailable" if getattr(exc, "retryable", False) else "other")
        self.calendar_errors[kind] = self.calendar_errors.get(kind, 0) + 1


STATS = BookingStats()


@dataclass(frozen=True, slots=True)
class Booked:
    slot: Interval
    zone: ZoneInfo
    attendee: str
    event: CreatedEvent
    say: str

    def meeting(self) -> dict[str, Any]:
        """The call's `meeting` (the dialer outcome's, the job returnvalue's)."""
        return {
            "start": self.slot.start.astimezone(self.zone).isoformat(),
            "end": self.slot.end.astimezone(self.zone).isoformat(),
            "zone": getattr(self.zone, "key", str(self.zone)),
            "attendee": self.attendee,
            "eventId": self.event.event_id,
            "link": self.event.link or None,
        }


class Taken(Exception):
    """The slot went to someone else; `proposals` are the new ones to offer."""

    def __init__(self, proposals: list[Interval]) -> None:
        super().__init__("slot taken")
        self.proposals = proposals


class BookingService:
    def __init__(self, settings: BookingSettings, provider: CalendarProvider, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.provider = provider
        self.clock = clock
        self.booked = 0
        self.conflicts = 0

    def rules(self, business_zone: str = "") -> Rules:
        return Rules.from_settings(self.settings, business_zone)

    async def slots(self, *, callee: ZoneInfo, business_zone: str = "",
                    day: DayRequest | None = None, now: datetime | None = None,
                    limit: int = 50) -> list[Interval]:
        """Free slots (all of `day`, or from now on), read from the calendar now."""
        now = now or self.clock()
        rules = self.rules(business_zone)
        start, end = now, now + rules.horizon
        if day is not None:
            start = max(now, datetime.combine(day.day, datetime.min.time(), callee)
                        - timedelta(hours=1))
            end = min(end, datetime.combine(day.day, datetime.min.time(), callee)
                      + timedelta(days=1, hours=1))
            if end <= start:
                return []
        busy = await self.provider.free_busy(start - rules.buffer - rules.duration,
                                             end + rules.buffer + rules.duration)
        return free_slots(rules, busy, now=now, callee=callee,
                          day=day.day if day else None,
                          not_before=day.not_before if day else None, limit=limit)

    async def proposals(self, *, callee: ZoneInfo, business_zone: str = "",
                        day: DayRequest | None = None) -> list[Interval]:
        found = await self.slots(callee=callee, business_zone=business_zone, day=day)
        if not found and day is not None and day.not_before is not None:
            # "Thursday at 4" with nothing after 4: anything that Thursday.
            found = await self.slots(callee=callee, business_zone=business_zone,
                                     day=DayRequest(day.day))
        return propose(found)

    async def book(self, start: datetime, email: str, *, callee: ZoneInfo,
                   business_zone: str = "", summary: str, description: str = "",
                   key: str = "", call_sid: str = "") -> Booked:
        """Book the free slot starting at `start`; `Taken` with new proposals if it went."""
        now = self.clock()
        if start <= now:
            raise BookingInputError("that time is in the past; offer one of the free slots")
        local_day = start.astimezone(callee).date()
        free = await self.slots(callee=callee, business_zone=business_zone,
                                day=DayRequest(local_day), now=now)
        try:
            slot = check_start(start, now=now, slots=free)
        except BookingInputError:
            self.conflicts += 1
            STATS.conflicts += 1
            raise Taken(await self.proposals(callee=callee, business_zone=business_zone)) \
                from None
        kwargs: dict[str, Any] = {"key": key}
        if call_sid and self.provider.name == "builtin":
            kwargs["call_sid"] = call_sid
        try:
            event = await self.provider.create_event(slot.start, slot.end, summary,
                                                     description, email, **kwargs)
        except SlotTaken:
            self.conflicts += 1
            STATS.conflicts += 1
            raise Taken(await self.proposals(callee=callee, business_zone=business_zone)) \
                from None
        self.booked += 1
        STATS.booked += 1
        log.info("meeting booked", extra={"call_sid": call_sid, "start": slot.start.isoformat(),
                                          "provider": self.provider.name})
        invited = bool(getattr(self.provider, "invites", False))
        return Booked(slot, callee, email, event,
                      confirmation(slot, callee, email, invited=invited))

    def say(self, slot: Interval, zone: ZoneInfo) -> str:
        return spoken_time(slot.start, zone)
