"""The one interface every calendar implements, and the errors it may raise.

`free_busy(start, end)` answers the busy intervals of the calendar in a window;
`create_event(...)` writes a meeting with the attendee invited and returns its id and
link. `SlotTaken` means somebody else got there first (the caller is offered new
slots); `CalendarError` is anything else, with a message fit for a log and a tool error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agents.booking.core import Interval


class CalendarError(Exception):
    """The calendar could not answer (auth, permission, rate limit, outage, timeout).
    `retryable` says whether trying again later may work."""

    def __init__(self, message: str, *, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class SlotTaken(CalendarError):
    """The slot was booked by someone else between the proposal and the booking."""


@dataclass(frozen=True, slots=True)
class CreatedEvent:
    event_id: str
    link: str = ""


class CalendarProvider(Protocol):
    name: str
    # Whether creating an event emails the attendee an invitation.
    invites: bool

    async def free_busy(self, start: datetime, end: datetime) -> list[Interval]: ...

    async def create_event(self, start: datetime, end: datetime, summary: str,
                           description: str, attendee_email: str, *,
                           key: str = "") -> CreatedEvent: ...

    async def close(self) -> None: ...
