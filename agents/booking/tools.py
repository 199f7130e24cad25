"""The booking tools of the realtime brain: `check_availability` and `book_meeting`.

Offered by listing them in `[openai] tools` (see README "Booking"):
"agents.booking.tools:check_availability", "agents.booking.tools:book_meeting".
They reach the server's one `BookingService` through `DESK`, which `ops/` fills at
start and on reload; with no service (booking not set up) they answer a tool error the
model can say, never an exception inside the call. Every argument is validated (schema
by the framework, then dates, the past, free slots and the email here), and what is
wrong is said in the error so the model can fix it: "that time is in the past", "that
slot was just taken; offer these instead: …".

The callee's zone: their state (job contact `State` parameter) or their number's zone,
else the business's. Day phrases are resolved relative to the call's first booking
question (≈ the call's start) in that zone. A successful booking sets
`CallContext.meeting`, which the dialer reports as `meeting_booked`; one meeting per call.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec

from agents.booking.core import (
    BookingInputError,
    Interval,
    callee_zone,
    clean_email,
    parse_day,
    parse_start,
    spoken_time,
)
from agents.booking.providers import CalendarError
from agents.booking.service import STATS, BookingService, Taken
from agents.tools.framework import ToolContext, ToolError, tool

MAX_CALLS = 4096


class BookingDesk:
    """The server's booking service and the per-call state the tools keep (bounded)."""

    def __init__(self) -> None:
        self.service: BookingService | None = None
        self._started: OrderedDict[str, datetime] = OrderedDict()

    def call_started_at(self, call_sid: str, now: datetime) -> datetime:
        started = self._started.get(call_sid)
        if started is None:
            started = self._started[call_sid] = now
            while len(self._started) > MAX_CALLS:
                self._started.popitem(last=False)
        return started


DESK = BookingDesk()


def _service() -> BookingService:
    if DESK.service is None:
        raise ToolError("booking is not set up on this line; offer that a person will "
                        "call back to schedule")
    return DESK.service


def _zones(context: ToolContext, service: BookingService) -> tuple[ZoneInfo, str]:
    call = context.call
    business_zone = call.business.timezone if call.business is not None else ""
    phone = call.to_number if call.direction == "outbound" else call.from_number
    fallback = business_zone or service.settings.time_zone
    zone = callee_zone(phone=phone, state=call.parameters.get("State", ""), fallback=fallback)
    return zone, business_zone


def _slot_json(slot: Interval, zone: ZoneInfo) -> dict[str, str]:
    return {"start": slot.start.astimezone(zone).isoformat(), "say": spoken_time(slot.start, zone)}


@tool(timeout_s=15)
async def check_availability(
    context: ToolContext,
    day: Annotated[str, msgspec.Meta(
        max_length=100,
        description="The day the person asked for, as they said it ('Thursday', 'next "
                    "Tuesday afternoon', 'December 9') or YYYY-MM-DD; empty for the "
                    "first free times.")] = "",
) -> dict[str, Any]:
    """Find two free meeting times to offer, in the person's own time zone.

    Offer both, exactly as given in `say`; when they ask for another day, call this
    again with that day."""
    service = _service()
    zone, business_zone = _zones(context, service)
    started = DESK.call_started_at(context.call.call_sid, service.clock())
    try:
        request = parse_day(day, now=started, zone=zone) if day.strip() else None
        if day.strip() and request is None:
            raise BookingInputError(f"{day!r} is not a day; ask which day suits them")
        if request is not None and request.day < service.clock().astimezone(zone).date():
            raise BookingInputError(f"{request.day:%A, %B} {request.day.day} has passed; "
                                    "ask for a day from today on")
        proposals = await service.proposals(callee=zone, business_zone=business_zone,
                                            day=request)
        if not proposals and request is not None:
            later = await service.proposals(callee=zone, business_zone=business_zone)
            return {"slots": [], "zone": zone.key,
                    "note": f"Nothing is free on {request.day:%A, %B} {request.day.day}. "
                            "Offer these instead.",
                    "alternatives": [_slot_json(s, zone) for s in later]}
    except BookingInputError as exc:
        raise ToolError(str(exc)) from None
    except CalendarError as exc:
        STATS.calendar_error(exc)
        raise ToolError(f"the calendar cannot be read right now ({exc}); offer that "
                        "someone will call back to schedule") from None
    if not proposals:
        return {"slots": [], "zone": zone.key,
                "note": "No free time in the booking window; offer a call back."}
    return {"slots": [_slot_json(s, zone) for s in proposals], "zone": zone.key,
            "note": "Offer these two times as said; then ask for their email to send "
                    "the invitation."}


@tool(timeout_s=25)
async def book_meeting(
    context: ToolContext,
    start: Annotated[str, msgspec.Meta(
        min_length=10, max_length=64,
        description="The chosen slot's start exactly as check_availability gave it "
                    "(ISO 8601 with offset).")],
    email: Annotated[str, msgspec.Meta(
        max_length=320,
        description="The attendee's email as they spelled it, e.g. 'ann.lee@example.com' "
                    "or 'ann dot lee at example dot com'.")] = "",
    name: Annotated[str, msgspec.Meta(max_length=100, description="Their name.")] = "",
    notes: Annotated[str, msgspec.Meta(max_length=500,
                                       description="What the meeting is about.")] = "",
) -> dict[str, Any]:
    """Book the meeting at a free time the person accepted and invite them by email.

    Then read back the confirmation in `say` (date, time and zone)."""
    service = _service()
    call = context.call
    if call.meeting is not None:
        raise ToolError("a meeting is already booked on this call for "
                        f"{call.meeting.get('start')}; do not book another")
    zone, business_zone = _zones(context, service)
    try:
        when = parse_start(start, zone)
        address = clean_email(email or call.parameters.get("Email", ""))
    except BookingInputError as exc:
        raise ToolError(str(exc)) from None
    business = call.business.name if call.business is not None else "us"
    who = " ".join(name.split()) or " ".join(
        p for p in (call.parameters.get("FirstName", ""), call.parameters.get("LastName", ""))
        if p)
    summary = service.settings.summary.replace("{business}", business)
    if who:
        summary = f"{summary} ({who})"
    description = "\n".join(line for line in (
        f"Booked by phone (call {call.call_sid}).",
        f"With: {who}" if who else "", f"Notes: {' '.join(notes.split())}" if notes else "",
    ) if line)
    try:
        booked = await service.book(
            when, address, callee=zone, business_zone=business_zone, summary=summary,
            description=description, key=f"{call.call_sid}:{when.isoformat()}",
            call_sid=call.call_sid)
    except BookingInputError as exc:
        raise ToolError(str(exc)) from None
    except Taken as taken:
        offers = "; ".join(spoken_time(s.start, zone) for s in taken.proposals)
        starts = ", ".join(_slot_json(s, zone)["start"] for s in taken.proposals)
        raise ToolError("that time is no longer free. "
                        + (f"Offer these instead: {offers} (starts: {starts})"
                           if taken.proposals else "Nothing else is free; offer a call back.")
                        ) from None
    except CalendarError as exc:
        STATS.calendar_error(exc)
        raise ToolError(f"the meeting could not be booked ({exc}); offer that someone "
                        "will confirm by email") from None
    call.meeting = booked.meeting()
    return {"booked": True, "say": booked.say, "meeting": call.meeting}
