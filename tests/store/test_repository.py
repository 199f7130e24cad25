"""Conformance: the same repository tests on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import migrations
from store.database import Database, open_database
from store.errors import StoreError
from store.models import Turn
from store.phones import InvalidPhoneNumber

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MARIA = "+14155552671"
# Every shipped migration: a fresh database is at this version.
LATEST = len(migrations.load("sqlite"))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def turn(call_sid: str, seq: int, text: str = "hello", role: str = "caller") -> Turn:
    return Turn(call_sid, seq, role, text, at(seq), at(seq + 0.5))


# schema ----------------------------------------------------------------------


async def test_open_applies_migrations_once(db: Database, db_url: str) -> None:
    assert await db.schema_version() == LATEST
    assert await db.migrate() == []
    again = await open_database(db_url)
    try:
        assert await again.schema_version() == LATEST
    finally:
        await again.close()


# callers ---------------------------------------------------------------------


async def test_first_and_returning_caller(db: Database) -> None:
    assert await db.get_caller(MARIA) is None
    first = await db.upsert_caller_seen("(415) 555-2671", at=at(0))
    assert (first.phone, first.call_count, first.name) == (MARIA, 1, None)
    assert first.first_seen == first.last_seen == at(0)
    second = await db.upsert_caller_seen("+1 415-555-2671", at=at(60))
    assert (second.id, second.call_count) == (first.id, 2)
    assert (second.first_seen, second.last_seen) == (at(0), at(60))
    # an out-of-order (late) report never moves last_seen backwards
    third = await db.upsert_caller_seen(MARIA, at=at(30))
    assert third.last_seen == at(60)
    assert await db.get_caller("4155552671") == third


async def test_name_before_first_call_keeps_first_call_semantics(db: Database) -> None:
    named = await db.set_caller_name(MARIA, "  Maria  ")
    assert (named.name, named.call_count) == ("Maria", 0)
    seen = await db.upsert_caller_seen(MARIA)
    assert (seen.name, seen.call_count) == ("Maria", 1)
    forgotten = await db.set_caller_name(MARIA, None)
    assert forgotten.name is None


@pytest.mark.parametrize(
    "name",
    [
        "José Ñúñez",
        "O'Brien",
        'Robert "Bobby" Tables',
        "Robert'); DROP TABLE callers;--",
        "1 OR 1=1",
        "王小明",
        "Zoë 🎉",
        "\\x00 literally",
        "$1 ? %s :name",
    ],
)
async def test_names_stored_and_read_back_exactly(db: Database, name: str) -> None:
    await db.set_caller_name(MARIA, name)
    caller = await db.get_caller(MARIA)
    assert caller is not None and caller.name == name
    assert (await db.upsert_caller_seen(MARIA)).name == name


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=80,
    ).filter(lambda s: s.strip())
)
async def test_any_name_round_trips(db: Database, name: str) -> None:
    await db.set_caller_name(MARIA, name)
    caller = await db.get_caller(MARIA)
    assert caller is not None and caller.name == name.strip()


@pytest.mark.parametrize(
    "bad", ["", "   ", "x" * 201, "nul\x00inside"]
)
async def test_bad_names_are_refused(db: Database, bad: str) -> None:
    with pytest.raises(ValueError):
        await db.set_caller_name(MARIA, bad)


@pytest.mark.parametrize("phone", ["anonymous", "+15551234567", "12", "+1 (415) 555-26711"])
async def test_invalid_phone_numbers_are_refused(db: Database, phone: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        await db.upsert_caller_seen(phone)
    with pytest.raises(InvalidPhoneNumber):
        await db.get_caller(phone)


async def test_bulk_load_skips_existing_phones(db: Database) -> None:
    await db.set_caller_name(MARIA, "Maria")
    rows = [(MARIA, "Someone Else"), ("+14155550100", "Ann"), ("+14155550101", None)]
    assert await db.bulk_load_callers(rows, at=at(0)) == 2
    assert (await db.get_caller(MARIA)).name == "Maria"  # type: ignore[union-attr]
    ann = await db.get_caller("+14155550100")
    assert ann is not None and (ann.name, ann.call_count) == ("Ann", 0)


# calls -----------------------------------------------------------------------


async def test_call_lifecycle(db: Database) -> None:
    started = await db.start_call(
        "CA1", direction="inbound", from_number=MARIA, to_number="+15005550006",
        started_at=at(0), brain="scripted",
    )
    assert (started.status, started.ended_at, started.input_tokens) == ("in-progress", None, 0)
    ended = await db.end_call(
        "CA1", outcome="booked", ended_at=at(90), input_tokens=1200, output_tokens=340,
        recording_path="/data/rec/CA1.wav",
    )
    assert ended is not None
    assert (ended.status, ended.outcome, ended.ended_at) == ("completed", "booked", at(90))
    assert (ended.input_tokens, ended.output_tokens) == (1200, 340)
    assert ended.recording_path == "/data/rec/CA1.wav"
    assert ended.brain == "scripted" and ended.started_at == at(0)
    # a late webhook retry of the start does not reopen the call
    retried = await db.start_call(
        "CA1", direction="inbound", from_number=MARIA, to_number="+15005550006",
        started_at=at(5),
    )
    assert (retried.status, retried.started_at, retried.brain) == ("completed", at(0), "scripted")
    assert retried.id == started.id
    assert await db.end_call("CA-missing") is None


async def test_end_call_keeps_values_not_given(db: Database) -> None:
    await db.start_call("CA1", direction="outbound", from_number="+15005550006",
                        to_number=MARIA, started_at=at(0), answered_at=at(3))
    await db.end_call("CA1", outcome="voicemail", input_tokens=10, output_tokens=5)
    again = await db.end_call("CA1", status="failed")
    assert again is not None
    assert (again.outcome, again.input_tokens, again.status) == ("voicemail", 10, "failed")
    assert again.answered_at == at(3)


async def test_list_calls_newest_first_with_since_and_limit(db: Database) -> None:
    for i in range(5):
        await db.start_call(f"CA{i}", direction="inbound", from_number=MARIA,
                            to_number="+15005550006", started_at=at(i * 60))
    calls = await db.list_calls()
    assert [c.call_sid for c in calls] == ["CA4", "CA3", "CA2", "CA1", "CA0"]
    assert [c.call_sid for c in await db.list_calls(since=at(120))] == ["CA4", "CA3", "CA2"]
    assert [c.call_sid for c in await db.list_calls(limit=2)] == ["CA4", "CA3"]
    with pytest.raises(ValueError):
        await db.list_calls(limit=0)


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="naive"):
        await db.start_call("CA1", direction="inbound", from_number=MARIA, to_number=MARIA,
                            started_at=datetime(2025, 1, 1))


# turns -----------------------------------------------------------------------


async def test_turns_round_trip_in_order(db: Database) -> None:
    await db.start_call("CA1", direction="inbound", from_number=MARIA,
                        to_number="+15005550006", started_at=at(0))
    texts = ["Hi, my name is Maria.", "¿Puedo reservar? \"sí\" 'ok'", "DROP TABLE turns; --"]
    batch = [turn("CA1", i, text, "caller" if i % 2 == 0 else "agent")
             for i, text in enumerate(texts)]
    assert await db.add_turns(list(reversed(batch))) == 3
    detail = await db.get_call("CA1")
    assert detail is not None
    assert detail.turns == batch
    assert await db.get_call("CA-none") is None


async def test_add_turns_is_idempotent_and_last_write_wins(db: Database) -> None:
    await db.add_turns([turn("CA1", 0, "first"), turn("CA1", 1, "second")])
    await db.add_turns([turn("CA1", 0, "first"), turn("CA1", 1, "second")])  # replay
    # the same turn twice in one batch (a re-recorded, truncated turn): the later one wins
    await db.add_turns([turn("CA1", 1, "sec"), turn("CA1", 1, "second, truncated")])
    detail = await db.get_call("CA1")
    assert detail is not None
    assert [(t.seq, t.text) for t in detail.turns] == [(0, "first"), (1, "second, truncated")]
    assert await db.add_turns([]) == 0


async def test_turns_before_call_start_get_a_placeholder_then_the_real_call(
    db: Database,
) -> None:
    await db.add_turns([turn("CA9", 0), turn("CA9", 1)])
    placeholder = await db.get_call("CA9")
    assert placeholder is not None
    assert (placeholder.call.direction, placeholder.call.started_at) == ("unknown", at(0))
    real = await db.start_call("CA9", direction="inbound", from_number=MARIA,
                               to_number="+15005550006", started_at=at(-2))
    assert (real.direction, real.from_number, real.started_at) == ("inbound", MARIA, at(-2))
    assert len((await db.get_call("CA9")).turns) == 2  # type: ignore[union-attr]


async def test_nul_in_turn_text_is_replaced_not_lost(db: Database) -> None:
    await db.add_turns([turn("CA1", 0, "a\x00b")])
    detail = await db.get_call("CA1")
    assert detail is not None and detail.turns[0].text == "a\ufffdb"


# audit -----------------------------------------------------------------------


async def test_audit_events(db: Database) -> None:
    first = await db.audit("call.transfer", call_sid="CA1", detail={"to": "+1", "n": [1, 2]},
                           at=at(0))
    second = await db.audit("consent.revoked", detail={"why": "STOP ✋"}, at=at(1))
    assert second > first
    events = await db.list_audit()
    assert [e.kind for e in events] == ["consent.revoked", "call.transfer"]
    assert events[0].detail == {"why": "STOP ✋"} and events[0].call_sid is None
    assert [e.id for e in await db.list_audit(call_sid="CA1")] == [first]
    assert [e.id for e in await db.list_audit(kind="consent.revoked")] == [second]


# retention -------------------------------------------------------------------


async def test_purge_removes_old_turns_and_recordings_only(db: Database) -> None:
    now = at(40 * 86400)
    await db.start_call("OLD", direction="inbound", from_number=MARIA, to_number=MARIA,
                        started_at=at(0))
    await db.start_call("NEW", direction="inbound", from_number=MARIA, to_number=MARIA,
                        started_at=now - timedelta(days=1))
    await db.add_turns([turn("OLD", 0), turn("OLD", 1), turn("NEW", 0)])
    await db.end_call("OLD", recording_path="/rec/old.wav")
    await db.end_call("NEW", recording_path="/rec/new.wav")
    counts = await db.purge_older_than(30, now=now)
    assert (counts.turns, counts.recordings) == (2, ["/rec/old.wav"])
    old = await db.get_call("OLD")
    assert old is not None and old.turns == [] and old.call.recording_path is None
    new = await db.get_call("NEW")
    assert new is not None and len(new.turns) == 1 and new.call.recording_path == "/rec/new.wav"
    assert (await db.purge_older_than(30, now=now)).turns == 0
    with pytest.raises(ValueError):
        await db.purge_older_than(0)


async def test_purge_removes_old_call_analyses_with_the_turns(db: Database) -> None:
    now = at(40 * 86400)
    for sid, when in (("OLD", at(0)), ("NEW", now - timedelta(days=1))):
        saved = await db.save_call_analysis(  # type: ignore[attr-defined]
            {"call_sid": sid, "direction": "inbound", "outcome": "message_taken",
             "success": True, "priority": "NORMAL", "new_lead": True,
             "summary": "Raj Patel, 12 Oak Street: leak"}, at=when)
        assert saved
    counts = await db.purge_older_than(30, now=now)
    assert counts.analyses == 1
    assert await db.get_call_analysis("OLD") is None  # type: ignore[attr-defined]
    assert await db.get_call_analysis("NEW") is not None  # type: ignore[attr-defined]
    assert (await db.purge_older_than(30, now=now)).analyses == 0


# backup ----------------------------------------------------------------------


async def test_backup(db: Database, tmp_path: Path) -> None:
    await db.set_caller_name(MARIA, "Maria")
    target = tmp_path / "backup" / "copy.db"
    target.parent.mkdir()
    if db.backend == "postgresql":
        with pytest.raises(StoreError, match="pg_dump"):
            await db.backup(str(target))
        return
    await db.backup(str(target))
    await db.set_caller_name(MARIA, "Changed after backup")
    copy = await open_database(f"sqlite:///{target}", migrate=False)
    try:
        assert await copy.schema_version() == LATEST
        caller = await copy.get_caller(MARIA)
        assert caller is not None and caller.name == "Maria"
    finally:
        await copy.close()
    assert not (tmp_path / "backup" / "copy.db.partial").exists()
