"""The retention schedule over a real database: rows and their recording files go together."""

from __future__ import annotations

import asyncio
from pathlib import Path

from store.database import Database
from store.errors import StoreError
from store.models import Turn, utcnow
from store.retention import Retention, remove_files

MARIA = "+14155550100"


async def test_purge_deletes_old_turns_and_their_recordings(db: Database, tmp_path: Path) -> None:
    old_at = utcnow().replace(year=utcnow().year - 1)
    recording = tmp_path / "old.wav"
    recording.write_bytes(b"RIFF")
    await db.start_call("OLD", direction="inbound", from_number=MARIA, to_number=MARIA,
                        started_at=old_at)
    await db.add_turns([Turn("OLD", 0, "caller", "hello", old_at)])
    await db.end_call("OLD", recording_path=str(recording))
    days = 0
    retention = Retention(db, lambda: days, lambda exc, what: None)
    assert await retention.purge_now() == 0  # 0 days: retention is off
    assert recording.exists() and retention.stats.last_purge_at == ""
    days = 30  # read per run: a reloaded config applies at the next one
    assert await retention.purge_now() == 1
    assert not recording.exists()
    stats = retention.stats
    assert (stats.purged_turns, stats.purged_recordings) == (1, 1) and stats.last_purge_at


async def test_a_failed_run_is_counted_and_the_schedule_goes_on(db: Database) -> None:
    seen: list[str] = []
    calls = 0

    def days() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("database away")
        return 30

    retention = Retention(db, days, lambda exc, what: seen.append(what), every_s=0.01)
    task = asyncio.create_task(retention.run())
    try:
        for _ in range(200):
            if retention.stats.last_purge_at:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert retention.stats.failures == 1 and seen == ["retention purge failed"]
    assert retention.stats.last_purge_at


def test_remove_files_counts_only_files_that_existed(tmp_path: Path) -> None:
    there = tmp_path / "a.wav"
    there.write_bytes(b"x")
    assert remove_files([str(there), str(tmp_path / "gone.wav")]) == 1
