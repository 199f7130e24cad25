"""The built-in calendar on both backends: no overlap (buffer included) even when many
bookings race, idempotent retries, windows, cancellation frees the slot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from store.booking_models import SlotConflict
from store.database import Database

AT = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)
BUF = timedelta(minutes=10)


async def book(db: Database, start: datetime, **kw: object):
    args: dict[str, object] = {"summary": "Intro call", "buffer": BUF}
    args.update(kw)
    return await db.book_slot("main", start, start + HALF, **args)  # type: ignore[attr-defined]


async def test_book_and_read_back(db: Database) -> None:
    booking, created = await book(db, AT, attendee_email="ann@example.com", call_sid="CA1")
    assert created and booking.status == "confirmed"
    assert booking.start_at == AT and booking.end_at == AT + HALF
    found = await db.bookings_between("main", AT - HALF, AT + 2 * HALF)  # type: ignore[attr-defined]
    assert [b.id for b in found] == [booking.id]
    assert found[0].attendee_email == "ann@example.com"
    assert await db.bookings_between("main", AT + HALF, AT + 4 * HALF) == []  # type: ignore[attr-defined]
    assert await db.bookings_between("other", AT - HALF, AT + HALF) == []  # type: ignore[attr-defined]


async def test_overlap_and_buffer_are_refused(db: Database) -> None:
    await book(db, AT)
    for start in (AT, AT + timedelta(minutes=15), AT - timedelta(minutes=15),
                  AT + HALF + timedelta(minutes=5), AT - HALF - timedelta(minutes=5)):
        with pytest.raises(SlotConflict):
            await book(db, start)
    # Just outside the buffer on both sides is fine.
    _, after = await book(db, AT + HALF + BUF)
    _, before = await book(db, AT - HALF - BUF)
    assert after and before


async def test_idempotent_retry_returns_the_first_booking(db: Database) -> None:
    one, created = await book(db, AT, idem_key="CA1:book")
    two, again = await book(db, AT, idem_key="CA1:book")
    assert created and not again and two.id == one.id


async def test_concurrent_overlapping_bookings_have_one_winner(db: Database) -> None:
    starts = [AT + timedelta(minutes=5 * i) for i in range(8)]  # all within 40 minutes

    async def attempt(start: datetime) -> bool:
        try:
            await book(db, start)
            return True
        except SlotConflict:
            return False

    results = await asyncio.gather(*(attempt(s) for s in starts))
    assert sum(results) == 1
    rows = await db.bookings_between("main", AT - HALF, AT + 4 * HALF)  # type: ignore[attr-defined]
    assert len(rows) == 1


async def test_cancel_frees_the_slot(db: Database) -> None:
    booking, _ = await book(db, AT)
    cancelled = await db.cancel_booking(booking.id)  # type: ignore[attr-defined]
    assert cancelled is not None and cancelled.status == "cancelled"
    _, created = await book(db, AT)
    assert created
    assert await db.cancel_booking(10_000) is None  # type: ignore[attr-defined]


async def test_bad_arguments(db: Database) -> None:
    naive = datetime(2026, 12, 8, 10, 0)
    with pytest.raises(ValueError):
        await db.book_slot("main", naive, naive + HALF, summary="x")  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        await db.book_slot("main", AT, AT, summary="x")  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        await db.book_slot("main", AT, AT + HALF, summary=" ")  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        await db.book_slot("", AT, AT + HALF, summary="x")  # type: ignore[attr-defined]
