"""Whatever a model sends the booking tools, the answer is a result or a tool error the
model can read: never another exception inside the call (hypothesis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.booking.core import Interval
from agents.booking.providers import CreatedEvent
from agents.booking.service import BookingService
from agents.booking.settings import BookingSettings
from agents.booking.tools import DESK, book_meeting, check_availability
from agents.brain import CallContext
from agents.tools.framework import ToolContext, ToolError

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


class MemoryCalendar:
    name = "memory"
    invites = True

    def __init__(self) -> None:
        self.events: list[Interval] = []

    async def free_busy(self, start: datetime, end: datetime) -> list[Interval]:
        return [e for e in self.events if e.start < end and e.end > start]

    async def create_event(self, start: datetime, end: datetime, summary: str,
                           description: str, attendee_email: str, *,
                           key: str = "") -> CreatedEvent:
        self.events.append(Interval(start, end))
        return CreatedEvent(f"m{len(self.events)}")

    async def close(self) -> None:
        return None


class Output:
    def end_call(self, reason: str) -> None: ...
    def transfer_call(self, number: str) -> None: ...
    def send_dtmf(self, digits: str) -> None: ...
    def caller_named(self, name: str) -> None: ...


def _context(params: dict[str, str]) -> ToolContext:
    call = CallContext(call_sid="CA" + "9" * 32, to_number="+14155550123",
                       direction="outbound", parameters=params)
    return ToolContext(call, Output(), after_reply=lambda action: None)


_STARTS = st.one_of(
    st.text(max_size=70),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                 timezones=st.sampled_from([UTC, None])).map(
        lambda d: d.isoformat(timespec="minutes")),
    st.integers(0, 400).map(lambda n: (NOW + timedelta(minutes=30 * n)).isoformat()),
)
_ARGS = st.fixed_dictionaries({"start": _STARTS}, optional={
    "email": st.one_of(st.text(max_size=40), st.emails()), "name": st.text(max_size=30),
    "notes": st.text(max_size=30), "extra": st.integers()})


def _run(tool: Any, raw: str, params: dict[str, str]) -> None:
    async def go() -> None:
        try:
            kwargs = tool.parse_arguments(raw)
            await tool.invoke(kwargs, _context(params))
        except ToolError:
            pass

    DESK.service = BookingService(BookingSettings(), MemoryCalendar(), clock=lambda: NOW)
    try:
        asyncio.run(go())
    finally:
        DESK.service = None


@settings(max_examples=120, deadline=None)
@given(_ARGS, st.sampled_from([{}, {"State": "TX"}, {"Email": "lead@example.com"},
                               {"State": "??", "Email": "nope"}]))
def test_book_meeting_never_raises_anything_but_a_tool_error(
        args: dict[str, Any], params: dict[str, str]) -> None:
    _run(book_meeting, msgspec.json.encode(args).decode(), params)


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(max_size=120).map(lambda t: msgspec.json.encode({"day": t}).decode()),
                 st.text(max_size=60)))
def test_check_availability_never_raises_anything_but_a_tool_error(raw: str) -> None:
    _run(check_availability, raw, {})
