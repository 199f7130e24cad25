"""The realtime brain's booking tools on the built-in calendar: proposals in the callee's
zone, "Thursday instead", bookings that set the call's meeting, and every bad argument
(schema, the past, a bad email, a taken slot, no calendar) a tool error, never a raise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.booking.builtin import BuiltinCalendar
from agents.booking.service import BookingService
from agents.booking.settings import BookingSettings
from agents.booking.tools import DESK, book_meeting, check_availability
from agents.brain import CallContext
from agents.tools.framework import (
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolRunner,
    ToolStats,
)
from store.database import Database, open_database

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # Wednesday, 09:00 Eastern


class Output:
    def end_call(self, reason: str) -> None: ...
    def transfer_call(self, number: str) -> None: ...
    def send_dtmf(self, digits: str) -> None: ...
    def caller_named(self, name: str) -> None: ...


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path}/store.db")
    yield database
    await database.close()


@pytest.fixture
async def service(db: Database) -> AsyncIterator[BookingService]:
    settings = BookingSettings()
    svc = BookingService(settings, BuiltinCalendar(lambda: db, "main", buffer=timedelta(
        minutes=settings.buffer_min)), clock=lambda: NOW)
    DESK.service = svc
    yield svc
    DESK.service = None


def context(sid: str = "CA" + "1" * 32, to: str = "+14155550123",
            **params: str) -> ToolContext:
    call = CallContext(call_sid=sid, from_number="+12125550100", to_number=to,
                       direction="outbound", parameters=params)
    return ToolContext(call, Output(), after_reply=lambda action: None)


async def run(tool: Any, ctx: ToolContext, raw: str) -> Any:
    return await tool.invoke(tool.parse_arguments(raw), ctx)


async def test_two_slots_in_the_callee_s_zone(service: BookingService) -> None:
    out = await run(check_availability, context(), "{}")
    assert out["zone"] == "America/Los_Angeles"  # a San Francisco number
    assert [s["say"] for s in out["slots"]] == [
        "Wednesday, December 2 at 8:00 AM Pacific", "Wednesday, December 2 at 10:00 AM Pacific"]
    assert out["slots"][0]["start"] == "2026-12-02T08:00:00-08:00"
    # The contact's state wins over the number.
    out = await run(check_availability, context(State="NY"), "{}")
    assert out["slots"][0]["say"] == "Wednesday, December 2 at 10:00 AM Eastern"


async def test_thursday_instead(service: BookingService) -> None:
    out = await run(check_availability, context(), '{"day": "can we do Thursday instead"}')
    assert all(s["say"].startswith("Thursday, December 3") for s in out["slots"])
    assert len(out["slots"]) == 2
    out = await run(check_availability, context(), '{"day": "Saturday"}')
    assert out["slots"] == [] and "Nothing is free on Saturday" in out["note"]
    assert out["alternatives"][0]["say"].startswith("Wednesday, December 2")
    with pytest.raises(ToolError, match="not a day"):
        await run(check_availability, context(), '{"day": "purple"}')
    with pytest.raises(ToolError, match="has passed"):
        await run(check_availability, context(), '{"day": "2026-11-30"}')


async def test_book_sets_the_meeting_and_confirms(service: BookingService, db: Database) -> None:
    ctx = context(FirstName="Ann", LastName="Lee")
    out = await run(book_meeting, ctx, '{"start": "2026-12-02T08:00:00-08:00", '
                                       '"email": "ann dot lee at example dot com"}')
    assert out["say"] == ("You're booked for Wednesday, December 2 at 8:00 AM Pacific. "
                          "I have your email as ann dot lee at example dot com.")
    meeting = ctx.call.meeting
    assert meeting == out["meeting"]
    assert meeting is not None and meeting["start"] == "2026-12-02T08:00:00-08:00"
    assert meeting["end"] == "2026-12-02T08:30:00-08:00"
    assert meeting["zone"] == "America/Los_Angeles" and meeting["attendee"] == "ann.lee@example.com"
    assert meeting["eventId"].startswith("builtin-") and meeting["link"] is None
    rows = await db.bookings_between("main", NOW, NOW + timedelta(days=1))  # type: ignore[attr-defined]
    assert len(rows) == 1 and rows[0].summary == "Meeting with us (Ann Lee)"
    assert rows[0].attendee_email == "ann.lee@example.com" and rows[0].call_sid == ctx.call.call_sid
    with pytest.raises(ToolError, match="already booked"):
        await run(book_meeting, ctx, '{"start": "2026-12-02T10:00:00-08:00", '
                                     '"email": "ann@example.com"}')
    # The booked slot (and its buffer) is gone from the next caller's proposals.
    out = await run(check_availability, context("CA" + "2" * 32), "{}")
    assert out["slots"][0]["start"] == "2026-12-02T09:00:00-08:00"


@pytest.mark.parametrize(("raw", "error"), [
    ("{}", ToolArgumentsError),
    ('{"start": 5}', ToolArgumentsError),
    ('{"start": "2026-12-02T08:00:00-08:00", "email": "x", "colour": "red"}', ToolArgumentsError),
    ('{"start": "' + "9" * 80 + '"}', ToolArgumentsError),
    ("not json", ToolArgumentsError),
])
async def test_schema_violations_are_argument_errors(service: BookingService, raw: str,
                                                     error: type[Exception]) -> None:
    with pytest.raises(error):
        book_meeting.parse_arguments(raw)


@pytest.mark.parametrize(("raw", "message"), [
    ('{"start": "2026-12-01T10:00:00-05:00", "email": "a@example.com"}', "past"),
    ('{"start": "next tuesday", "email": "a@example.com"}', "ISO 8601"),
    ('{"start": "2026-12-02T08:00:00-08:00", "email": "ann at nowhere"}', "valid email"),
    ('{"start": "2026-12-02T08:00:00-08:00"}', "email address is needed"),
    ('{"start": "2026-12-02T08:10:00-08:00", "email": "a@example.com"}', "Offer these instead"),
    ('{"start": "2026-12-05T10:00:00-05:00", "email": "a@example.com"}', "Offer these instead"),
])
async def test_bad_bookings_are_tool_errors(service: BookingService, raw: str,
                                            message: str) -> None:
    ctx = context()
    with pytest.raises(ToolError, match=message):
        await run(book_meeting, ctx, raw)
    assert ctx.call.meeting is None


async def test_the_contact_s_email_is_used_when_none_is_given(service: BookingService) -> None:
    ctx = context(Email="lead@example.com")
    out = await run(book_meeting, ctx, '{"start": "2026-12-02T08:00:00-08:00"}')
    assert out["meeting"]["attendee"] == "lead@example.com"


async def test_racing_calls_one_slot_one_booking_the_other_reproposed(
        service: BookingService) -> None:
    raw = '{"start": "2026-12-02T08:00:00-08:00", "email": "a@example.com"}'
    contexts = [context("CA" + str(i) * 32) for i in range(1, 5)]
    results = await asyncio.gather(*(run(book_meeting, c, raw) for c in contexts),
                                   return_exceptions=True)
    booked = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ToolError)]
    assert len(booked) == 1 and len(refused) == 3
    assert all("no longer free. Offer these instead" in str(r) for r in refused)
    assert "2026-12-02T09:00:00-08:00" in str(refused[0])  # 08:30 is in the buffer
    assert service.conflicts == 3


async def test_without_a_calendar_the_tools_say_so() -> None:
    DESK.service = None
    with pytest.raises(ToolError, match="not set up"):
        await run(check_availability, context(), "{}")


async def test_the_runner_reports_a_bad_booking_to_the_model(service: BookingService) -> None:
    reports: list[tuple[str, str, bool]] = []
    runner = ToolRunner(ToolRegistry([check_availability, book_meeting]), context(),
                        lambda *r: reports.append(r), stats=ToolStats())
    runner.start(ToolCall("c1", "book_meeting",
                          '{"start": "2020-01-01T10:00:00Z", "email": "a@example.com"}'))
    runner.start(ToolCall("c2", "book_meeting", '{"when": "soon"}'))
    for _ in range(200):
        if len(reports) == 2:
            break
        await asyncio.sleep(0.01)
    outputs = dict((cid, out) for cid, out, _ in reports)
    assert '"error"' in outputs["c1"] and "past" in outputs["c1"]
    assert '"error"' in outputs["c2"] and "invalid arguments" in outputs["c2"]
    await runner.aclose()
