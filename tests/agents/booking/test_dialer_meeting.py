"""A meeting booked by the tools becomes the dialer's outcome: `meeting_booked` with the
event's start, end, zone, attendee, eventId and link (and the old `request` key)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from agents.brain import CallContext
from store.database import open_database
from telephony.dialer.observer import OutboundCalls
from telephony.dialer.outcome import Conversation, returnvalue
from telephony.dialer.settings import DialerSettings
from telephony.dialer.worker import CallWaiters

SID = "CA" + "7" * 32
MEETING = {"start": "2026-12-02T08:00:00-08:00", "end": "2026-12-02T08:30:00-08:00",
           "zone": "America/Los_Angeles", "attendee": "ann@example.com",
           "eventId": "abc123", "link": "https://www.google.com/calendar/event?eid=abc123"}


def test_a_booked_event_is_meeting_booked_even_without_booking_words() -> None:
    talk = Conversation()
    talk.heard("Hello, this is Ann.")
    talk.heard("Hmm, I am not sure, maybe.")
    talk.booked_event = dict(MEETING)
    assert talk.outcome("human") == "meeting_booked"
    assert talk.detail("human")["meeting"] == {"request": None, **MEETING}
    # The old shape is unchanged when no tool booked anything.
    words = Conversation()
    words.heard("Sure, Tuesday at 3 works.")
    assert words.detail("human")["meeting"] == {"request": "Sure, Tuesday at 3 works."}


def test_returnvalue_carries_the_meeting() -> None:
    record = SimpleNamespace(outcome="meeting_booked", status="completed", call_sid=SID,
                             duration_s=42, detail={"meeting": {"request": None, **MEETING}})
    value = returnvalue(record)
    assert value["outcome"] == "meeting_booked"
    assert value["meeting"]["eventId"] == "abc123" and value["meeting"]["zone"] == MEETING["zone"]


class StandInCall:
    def __init__(self) -> None:
        self.context = CallContext(call_sid=SID, from_number="+14155550100",
                                   to_number="+14155552671", direction="outbound",
                                   parameters={"DialKey": "k"})
        self.call_sid = SID
        self.end_reason = ""
        self.hangup_reason: str | None = None

    def send_dtmf(self, digits: str) -> None: ...
    def end_call(self, reason: str) -> None: ...


async def test_the_observer_reports_the_call_s_meeting(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/o.db")
    try:
        await db.reserve_dial(dial_key="k", queue="q", job_id="1", attempt=0,  # type: ignore[attr-defined]
                              phone="+14155552671", caller_id="+14155550100")
        await db.dial_placed("k", SID)  # type: ignore[attr-defined]
        obs = OutboundCalls(DialerSettings, lambda: db, CallWaiters())
        call = StandInCall()
        obs.call_started(call)  # type: ignore[arg-type]
        obs.transcript(call, "caller", "Okay, send it over.")  # type: ignore[arg-type]
        call.context.meeting = dict(MEETING)  # what book_meeting does
        obs.call_ended(call)  # type: ignore[arg-type]
        await obs.drain()
        record = await db.get_dial("k")  # type: ignore[attr-defined]
        assert record.outcome == "meeting_booked"
        assert record.detail["meeting"]["attendee"] == "ann@example.com"
        assert returnvalue(record)["meeting"]["link"] == MEETING["link"]
    finally:
        await db.close()
