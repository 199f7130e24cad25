"""The dialer's store on both backends: one row per (job, attempt), statuses that only move
forward, first outcome wins, and the dial times the compliance gate counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from store.database import Database

SID = "CA" + "1" * 32
AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def reserve(db: Database, key: str = "bull:calls:1:0", **kw: object):
    args = {"dial_key": key, "queue": "calls", "job_id": "1", "attempt": 0,
            "phone": "+14155550123", "caller_id": "+14155550100", "campaign_id": "c1",
            "step": 2, "script": "default", "at": AT}
    args.update(kw)
    return await db.reserve_dial(**args)  # type: ignore[attr-defined]


async def test_reserve_is_idempotent(db: Database) -> None:
    first, created = await reserve(db)
    assert created and first.status == "reserved" and first.call_sid is None
    again, created_again = await reserve(db)
    assert not created_again and again.id == first.id
    other, created_other = await reserve(db, key="bull:calls:1:1", attempt=1)
    assert created_other and other.id != first.id
    assert [r.attempt for r in await db.list_dials("1")] == [0, 1]  # type: ignore[attr-defined]


async def test_concurrent_reservations_give_one_winner(db: Database) -> None:
    results = await asyncio.gather(*(reserve(db) for _ in range(8)))
    assert sum(1 for _, created in results if created) == 1
    assert len({r.id for r, _ in results}) == 1


async def test_status_only_moves_forward_and_first_terminal_wins(db: Database) -> None:
    await reserve(db)
    placed = await db.dial_placed("bull:calls:1:0", SID, at=AT)  # type: ignore[attr-defined]
    assert placed is not None and placed.status == "queued" and placed.dialed_at == AT
    up = db.update_dial_status  # type: ignore[attr-defined]
    assert (await up(SID, "ringing", at=AT)).status == "ringing"
    answered = await up(SID, "in-progress", at=AT + timedelta(seconds=3))
    assert answered.status == "in-progress" and answered.answered_at == AT + timedelta(seconds=3)
    late = await up(SID, "ringing", at=AT + timedelta(seconds=4))
    assert late.status == "in-progress"
    done = await up(SID, "completed", at=AT + timedelta(seconds=30), duration_s=27)
    assert done.terminal and done.ended_at == AT + timedelta(seconds=30)
    assert done.duration_s == 27 and done.outcome is None
    after = await up(SID, "failed", at=AT + timedelta(seconds=31), outcome="failed")
    assert after.status == "completed" and after.outcome is None
    assert await up("CA" + "2" * 32, "ringing") is None
    with pytest.raises(ValueError):
        await up(SID, "exploded")


async def test_terminal_status_sets_outcome_once(db: Database) -> None:
    await reserve(db)
    await db.dial_placed("bull:calls:1:0", SID)  # type: ignore[attr-defined]
    busy = await db.update_dial_status(SID, "busy", outcome="busy")  # type: ignore[attr-defined]
    assert busy.outcome == "busy" and busy.status == "busy"


async def test_media_outcome_first_wins_and_detail_merges(db: Database) -> None:
    await reserve(db)
    await db.dial_placed("bull:calls:1:0", SID)  # type: ignore[attr-defined]
    fin = db.finish_dial_media  # type: ignore[attr-defined]
    one = await fin(SID, outcome="meeting_booked",
                    detail={"meeting": {"when": "tuesday at 3"}, "transcriptUrl": None})
    assert one.outcome == "meeting_booked" and one.media_ended_at is not None
    assert one.detail == {"meeting": {"when": "tuesday at 3"}}
    two = await fin(SID, outcome="declined", detail={"objections": ["price"]})
    assert two.outcome == "meeting_booked"
    assert two.detail == {"meeting": {"when": "tuesday at 3"}, "objections": ["price"]}
    with pytest.raises(ValueError):
        await fin(SID, outcome="teleported", detail={})
    amd = await db.set_dial_answered_by(SID, "human")  # type: ignore[attr-defined]
    assert amd.answered_by == "human"
    amd2 = await db.set_dial_answered_by(SID, "machine_end_beep")  # type: ignore[attr-defined]
    assert amd2.answered_by == "human"


async def test_refused_dial_keeps_no_call(db: Database) -> None:
    await reserve(db)
    refused = await db.dial_refused("bull:calls:1:0", "failed",  # type: ignore[attr-defined]
                                    "twilio 400: 21211 invalid To")
    assert refused.status == "refused" and refused.outcome == "failed" and refused.terminal
    await reserve(db, key="k2", job_id="2")
    await db.dial_placed("k2", SID)  # type: ignore[attr-defined]
    assert await db.dial_refused("k2", "failed", "late") is None  # type: ignore[attr-defined]


async def test_dial_times_count_only_placed_calls(db: Database) -> None:
    await reserve(db)
    await reserve(db, key="k2", job_id="2")
    await db.dial_placed("k2", SID, at=AT)  # type: ignore[attr-defined]
    times = await db.dial_times("+14155550123",  # type: ignore[attr-defined]
                                AT - timedelta(hours=24))
    assert times == [AT]
    assert await db.dial_times("+14155550123", AT + timedelta(seconds=1)) == []  # type: ignore[attr-defined]
    got = await db.get_dial_by_call_sid(SID)  # type: ignore[attr-defined]
    assert got is not None and got.dial_key == "k2" and got.campaign_id == "c1" and got.step == 2
    assert await db.get_dial("nope") is None  # type: ignore[attr-defined]
