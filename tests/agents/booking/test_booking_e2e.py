"""End to end through the real server: an outbound sales call where the callee raises two
objections and the realtime model (the fake, scripted) then calls `book_meeting`; the
event lands in the fake Google Calendar with the callee invited (sendUpdates=all) and the
BullMQ job's returnvalue is `meeting_booked` with the event's start, zone, attendee, id
and link, and the objections."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import msgspec

from agents.booking.core import Rules, free_slots
from agents.booking.settings import BookingSettings, GoogleCalendarSettings
from agents.realtime.breaker import default_breaker
from ops.dev.fake_realtime import Script, ScriptedToolCall, Turn, serve_fake_realtime
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.telephony.dialer.rig import BOOKER, Rig, contact, make_rig

LA = ZoneInfo("America/Los_Angeles")


def a_free_slot() -> datetime:
    """A slot the server will find free: tomorrow or later, by the default rules."""
    rules = Rules.from_settings(BookingSettings(), "")
    slots = free_slots(rules, [], now=datetime.now(UTC) + timedelta(days=1), callee=LA)
    return slots[0].start


@contextlib.asynccontextmanager
async def booking_rig(tmp_path: Path, start: datetime
                      ) -> AsyncIterator[tuple[Rig, FakeGoogleCalendar, Any]]:
    default_breaker.reset()
    google = await FakeGoogleCalendar(calendar_id="sales@example.com").start()
    turns = (
        Turn(transcript="Hello, front desk. We already have insurance, and what does it cost?",
             reply="This is a free benchmark of what you have. Could we set up a short call?"),
        Turn(transcript="Sure, Tuesday at 3 works.", reply="Let me book that.",
             tool_calls=(ScriptedToolCall("book_meeting", {
                 "start": start.astimezone(LA).isoformat(), "email": "ada@example.com",
                 "name": "Ada Lovelace"}),),
             after_tool_reply="You're booked; the invitation is on its way."),
    )
    fake = await serve_fake_realtime(0, Script(greeting="Hi, this is the assistant for Bay "
                                               "Dental.", turns=turns, default_reply="I see."))
    try:
        async with make_rig(tmp_path, {
            "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
            "LEADLINE_OPENAI_BASE_URL": fake.websocket_base_url,
        }) as rig:
            runtime = rig.server.runtime
            cfg = runtime.config
            runtime.config = msgspec.structs.replace(
                cfg,
                openai=msgspec.structs.replace(cfg.openai, tools=(
                    "agents.booking.tools:check_availability",
                    "agents.booking.tools:book_meeting")),
                booking=BookingSettings(provider="google", google=GoogleCalendarSettings(
                    calendar_id=google.calendar_id, client_id=google.client_id,
                    client_secret=google.client_secret, refresh_token=google.refresh_token,
                    base_url=google.base_url, token_url=google.token_url)))
            runtime.booking.configure()
            yield rig, google, fake
    finally:
        await fake.cleanup()
        await google.stop()
        default_breaker.reset()


async def test_book_meeting_through_the_server_invites_and_reports(tmp_path: Path) -> None:
    start = a_free_slot()
    async with booking_rig(tmp_path, start) as (rig, google, fake):
        job = await rig.add(contact(BOOKER))
        done = await rig.finished(job.id, limit_s=60)
        value = done.returnvalue
        assert value["outcome"] == "meeting_booked", value
        meeting = value["meeting"]
        assert len(google.events) == 1, value
        event = next(iter(google.events.values()))
        assert event["attendees"] == [{"email": "ada@example.com",
                                       "responseStatus": "needsAction"}]
        assert event["_sendUpdates"] == "all"
        assert event["summary"] == "Meeting with us (Ada Lovelace)"
        assert meeting["eventId"] == event["id"] and meeting["link"] == event["htmlLink"]
        assert meeting["attendee"] == "ada@example.com"
        assert meeting["zone"] == "America/Los_Angeles"
        assert datetime.fromisoformat(meeting["start"]) == start
        assert meeting["request"] == "Sure, Tuesday at 3 works."
        assert value["objections"] == ["competitor", "price"]  # raised, then booked anyway
        received = google.requests
        assert [r.path.rsplit("/", 1)[-1] for r in received] == ["freeBusy", "events"]
        # The model was offered the booking tools and got the spoken confirmation back.
        updates = [e for e in fake.fake.received if e.get("type") == "session.update"]
        offered = {t["name"] for t in updates[0]["session"]["tools"]}
        assert {"check_availability", "book_meeting"} <= offered
        outputs = [e["item"]["output"] for e in fake.fake.received
                   if e.get("type") == "conversation.item.create"
                   and e["item"].get("type") == "function_call_output"]
        assert len(outputs) == 1 and '"booked":true' in outputs[0]
        assert "You're booked for" in outputs[0] and "Pacific" in outputs[0]
        async with aiohttp.ClientSession() as http, \
                http.get(rig.server.url + "/metrics") as resp:
            text = await resp.text()
        booked = [line for line in text.splitlines()
                  if line.startswith("leadline_booking_booked_total ")]
        assert booked and float(booked[0].split()[1]) >= 1
        assert 'leadline_booking_calendar_errors_total{kind="auth"}' in text
        assert google.token_requests[0]["grant_type"] == "refresh_token"
