"""A sales call end to end: a BullMQ job with `script`, the real server and dialer, the fake
Twilio playing the callee, the fake Realtime service as the model. The script reaches the
session's instructions; the callee's two objections reach the job's outcome and the call's
audit trail under the script's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.realtime.breaker import default_breaker
from ops.dev.fake_realtime import Script, Turn, serve_fake_realtime
from tests.helpers import eventually
from tests.telephony.dialer.rig import LONG, contact, make_rig

pytestmark = pytest.mark.e2e


async def test_a_sales_call_with_two_objections_books(tmp_path: Path) -> None:
    default_breaker.reset()
    fake = await serve_fake_realtime(0, Script(
        greeting="Hi Ada, this is Alex, an automated assistant.",
        turns=(Turn(transcript="We already have insurance.", reply="It's a benchmark."),
               Turn(transcript="Okay, and what does it cost?", reply="It's free."),
               Turn(transcript="Sure, Tuesday at 3 works.", reply="Great, see you then.")),
        default_reply="I see.", default_transcript="(unscripted caller turn)"))
    try:
        async with make_rig(tmp_path, {
            "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
            "LEADLINE_OPENAI_BASE_URL": fake.websocket_base_url,
        }) as rig:
            job = await rig.add({**contact(LONG), "script": "default"})
            done = await rig.finished(job.id, limit_s=60)
            value = done.returnvalue
            assert value["outcome"] == "meeting_booked", value
            assert value["objections"] == ["competitor", "price"]
            (update, *_) = [e for e in fake.fake.received if e.get("type") == "session.update"]
            instructions = update["session"]["instructions"]
            assert "This is a sales call for Practice Benchmark" in instructions
            assert "licensed insurance agent" in instructions
            assert "Bay Dental" in instructions  # the job's contact, interpolated
            creates = [e for e in fake.fake.received if e.get("type") == "response.create"]
            assert ("Hi Ada, this is Alex, an automated assistant calling for Practice "
                    "Benchmark") in str(creates[0])
            db = rig.server.runtime.persistence.db

            async def summary() -> object:
                events = await db.list_audit(call_sid=value["callSid"], kind="sales_call")
                return events[0] if events else None

            event = await eventually(summary, "the sales summary on the call's audit trail")
            assert event.detail["script"] == "default"  # type: ignore[attr-defined]
            assert event.detail["objections"] == ["competitor", "price"]  # type: ignore[attr-defined]
    finally:
        await fake.cleanup()
        default_breaker.reset()
