"""The live-call observer without a media server: a stand-in call records what the
observer asks of it (in-band DTMF, hang-ups); the store is a real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.brain import CallContext
from store.database import open_database
from telephony.dialer.observer import OutboundCalls
from telephony.dialer.settings import DialerSettings
from telephony.dialer.worker import CallWaiters

SID = "CA" + "4" * 32


class StandInCall:
    def __init__(self) -> None:
        self.context = CallContext(call_sid=SID, from_number="+14155550100",
                                   to_number="+14155552671", direction="outbound",
                                   parameters={"DialKey": "k", "FirstName": "Ada"})
        self.call_sid = SID
        self.dtmf: list[str] = []
        self.ended: list[str] = []
        self.end_reason = ""
        self.hangup_reason: str | None = None

    def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)

    def end_call(self, reason: str) -> None:
        self.ended.append(reason)
        self.end_reason = reason


async def observer(tmp_path: Path) -> tuple[OutboundCalls, Any]:
    db = await open_database(f"sqlite:///{tmp_path}/o.db")
    await db.reserve_dial(dial_key="k", queue="q", job_id="1", attempt=0,  # type: ignore[attr-defined]
                          phone="+14155552671", caller_id="+14155550100")
    await db.dial_placed("k", SID)  # type: ignore[attr-defined]
    return OutboundCalls(DialerSettings, lambda: db, CallWaiters()), db


async def test_menu_pressed_then_person(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    obs.call_started(call)  # type: ignore[arg-type]
    obs.transcript(call, "caller", "For appointments press 1. For the front desk press 2.")  # type: ignore[arg-type]
    assert call.dtmf == ["2"]
    obs.transcript(call, "caller", "Front desk, this is Sam.")  # type: ignore[arg-type]
    obs.transcript(call, "caller", "Sure, Tuesday at 3 works.")  # type: ignore[arg-type]
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    record = await db.get_dial("k")
    assert record.outcome == "meeting_booked"
    await db.close()


async def test_menu_given_up_is_ivr_failed(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    obs.call_started(call)  # type: ignore[arg-type]
    menu = "For appointments press 1. For the front desk press 2."
    for _ in range(4):
        obs.transcript(call, "caller", menu)  # type: ignore[arg-type]
    assert call.dtmf == ["2", "0"] and call.ended == ["ivr failed"]
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    assert (await db.get_dial("k")).outcome == "ivr_failed"
    await db.close()


async def test_agent_lines_and_strangers_are_ignored(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    stranger = StandInCall()
    stranger.context = CallContext(call_sid="CAx", direction="inbound")
    obs.call_started(stranger)  # type: ignore[arg-type]
    assert obs.live == {}
    call = StandInCall()
    obs.call_started(call)  # type: ignore[arg-type]
    obs.transcript(call, "agent", "Don't call us again.")  # type: ignore[arg-type]
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    assert (await db.get_dial("k")).outcome == "declined"
    assert not await db.is_dnc("+14155552671")
    await db.close()
