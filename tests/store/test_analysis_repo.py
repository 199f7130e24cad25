"""Call analyses on both backends: stored once per call, read back whole, filtered,
the new-lead notice merged into the row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.database import Database

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def record(sid: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "call_sid": sid, "direction": "inbound", "outcome": "message_taken",
        "success": True, "priority": "HIGH", "new_lead": True,
        "summary": "HIGH (no_heat), Ann: The furnace is out. Outcome: message taken.",
        "entities": {"phones": [{"text": "four one five", "value": "+14155550199"}]},
        "answers": {"name": {"question": "Your name?", "answer": "Ann", "refused": False}},
    }
    base.update(kw)
    return base


async def test_saved_once_and_read_back(db: Database) -> None:
    assert await db.save_call_analysis(record("CA1"), at=AT)  # type: ignore[attr-defined]
    # A replayed call end keeps the first record and says so.
    again = record("CA1", outcome="info_only", success=False)
    assert not await db.save_call_analysis(again, at=AT)  # type: ignore[attr-defined]
    got = await db.get_call_analysis("CA1")  # type: ignore[attr-defined]
    assert got is not None
    assert (got.outcome, got.success, got.priority, got.new_lead) == (
        "message_taken", True, "HIGH", True)
    assert got.created_at == AT
    assert got.record["entities"]["phones"][0]["value"] == "+14155550199"
    assert got.record["answers"]["name"]["answer"] == "Ann"
    assert got.notified == {}
    assert await db.get_call_analysis("CA-none") is None  # type: ignore[attr-defined]


async def test_notified_is_merged(db: Database) -> None:
    await db.save_call_analysis(record("CA2"), at=AT)  # type: ignore[attr-defined]
    await db.mark_analysis_notified("CA2", {"sms": "queued"})  # type: ignore[attr-defined]
    await db.mark_analysis_notified("CA2", {"email": "refused"})  # type: ignore[attr-defined]
    got = await db.get_call_analysis("CA2")  # type: ignore[attr-defined]
    assert got is not None and got.notified == {"sms": "queued", "email": "refused"}


async def test_list_filters_newest_first(db: Database) -> None:
    await db.save_call_analysis(record("CA3"), at=AT)  # type: ignore[attr-defined]
    await db.save_call_analysis(  # type: ignore[attr-defined]
        record("CA4", outcome="abandoned", success=False, new_lead=False),
        at=AT + timedelta(minutes=1))
    await db.save_call_analysis(record("CA5"), at=AT + timedelta(minutes=2))  # type: ignore[attr-defined]
    every = await db.list_call_analyses()  # type: ignore[attr-defined]
    assert [a.call_sid for a in every] == ["CA5", "CA4", "CA3"]
    failed = await db.list_call_analyses(success=False)  # type: ignore[attr-defined]
    assert [a.call_sid for a in failed] == ["CA4"]
    taken = await db.list_call_analyses(outcome="message_taken", limit=1)  # type: ignore[attr-defined]
    assert [a.call_sid for a in taken] == ["CA5"]


async def test_bad_input_refused(db: Database) -> None:
    with pytest.raises(ValueError):
        await db.save_call_analysis(record(""))  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        await db.save_call_analysis(record("CA6", summary="x", blob="y" * 300_000))  # type: ignore[attr-defined]
    # NUL bytes and odd text are stored, not crashed on.
    assert await db.save_call_analysis(record("CA7", summary="a\x00b ☃"))  # type: ignore[attr-defined]
    got = await db.get_call_analysis("CA7")  # type: ignore[attr-defined]
    assert got is not None and "\x00" not in got.summary
