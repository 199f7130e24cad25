"""Write-behind turns: batched, ordered, bounded, and nothing lost to SIGKILL or a SQL outage."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from store.database import Database
from store.errors import StoreWriteError
from store.models import Turn, utcnow
from store.turn_writer import TurnWriter
from tests.helpers import eventually
from tests.store.turn_writer_child import CALL_SID

REPO = Path(__file__).resolve().parents[2]


def turn(seq: int, text: str | None = None, call_sid: str = "CA1") -> Turn:
    return Turn(call_sid, seq, "caller", text or f"turn {seq}", utcnow())


class FlakyDb:
    """Stands in for the SQL store where a test needs it to refuse on command."""

    def __init__(self) -> None:
        self.failing = False
        self.batches: list[list[Turn]] = []

    async def add_turns(self, turns: Sequence[Turn]) -> int:
        await asyncio.sleep(0)
        if self.failing:
            raise StoreWriteError("database or disk is full")
        self.batches.append(list(turns))
        return len(turns)

    def applied(self) -> dict[tuple[str, int], str]:
        state: dict[tuple[str, int], str] = {}
        for batch in self.batches:
            for t in batch:
                state[(t.call_sid, t.seq)] = t.text
        return state


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("turns-*.jsonl"))


# with the real backends ------------------------------------------------------


async def test_record_flush_close(db: Database, tmp_path: Path) -> None:
    writer = TurnWriter(db, tmp_path / "journal", batch_size=100, flush_interval_s=60)
    assert await writer.start() == 0
    for seq in range(10):
        writer.record(turn(seq))
    assert writer.pending == 10
    await writer.flush()
    assert writer.pending == 0
    detail = await db.get_call("CA1")
    assert detail is not None and [t.seq for t in detail.turns] == list(range(10))
    assert len(segments(tmp_path / "journal")) == 1  # only the open one, empty
    await writer.close()
    assert segments(tmp_path / "journal") == []
    assert writer.stats.flushed == 10 and writer.stats.journal_errors == 0


async def test_a_full_batch_is_flushed_in_the_background(db: Database, tmp_path: Path) -> None:
    writer = TurnWriter(db, tmp_path, batch_size=5, flush_interval_s=60)
    await writer.start()
    try:
        for seq in range(5):
            writer.record(turn(seq))

        async def stored() -> bool:
            detail = await db.get_call("CA1")
            return detail is not None and len(detail.turns) == 5

        await eventually(stored, "batch of 5 written without an explicit flush")
    finally:
        await writer.close()


@pytest.mark.parametrize("kill_midway", [False, True], ids=["journal-only", "mid-flush"])
async def test_sigkill_loses_no_committed_turn(
    db: Database, db_url: str, tmp_path: Path, kill_midway: bool
) -> None:
    journal_dir = tmp_path / "journal"
    count = 400
    # journal-only: nothing reaches SQL before the kill; mid-flush: small batches are being
    # written while the child is killed at an arbitrary point.
    batch, interval = (100_000, 3600.0) if not kill_midway else (16, 0.005)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.store.turn_writer_child",
        db_url, str(journal_dir), str(count), str(batch), str(interval),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    committed = -1
    killed = False
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"started\n"
        kill_after = count // 2 if kill_midway else count
        while committed < kill_after - 1:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line, "child died early"
            if line == b"done\n":
                break
            committed = int(line)
        child.send_signal(signal.SIGKILL)
        killed = True
    finally:
        # Only once: Popen.send_signal polls first, and a second signal could reap the
        # zombie before asyncio's watcher does (it would then report returncode 255).
        if not killed:
            child.kill()
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert committed >= kill_after - 1
    before = await db.get_call(CALL_SID)
    in_sql_before = 0 if before is None else len(before.turns)
    if not kill_midway:
        assert in_sql_before == 0  # the replay below is what brings them in

    writer = TurnWriter(db, journal_dir, batch_size=100, flush_interval_s=60)
    replayed = await writer.start()
    await writer.close()
    detail = await db.get_call(CALL_SID)
    assert detail is not None
    seqs = [t.seq for t in detail.turns]
    assert seqs == sorted(set(seqs))  # no duplicates
    assert set(range(committed + 1)) <= set(seqs)
    assert all(t.text == f"turn {t.seq} ✓" for t in detail.turns)
    assert replayed >= len(seqs) - in_sql_before
    assert segments(journal_dir) == []


# with a database that refuses on command ------------------------------------


async def test_sql_outage_keeps_turns_in_order_until_it_ends(tmp_path: Path) -> None:
    db = FlakyDb()
    writer = TurnWriter(db, tmp_path, batch_size=1000, flush_interval_s=60)  # type: ignore[arg-type]
    await writer.start()
    db.failing = True
    for seq in range(10):
        writer.record(turn(seq))
    with pytest.raises(StoreWriteError):
        await writer.flush()
    writer.record(turn(3, "turn 3, corrected"))  # re-recorded while SQL is down
    writer.record(turn(10))
    with pytest.raises(StoreWriteError):
        await writer.flush()
    assert writer.pending == 12 and writer.stats.flush_failures == 2
    assert len(segments(tmp_path)) == 3  # two sealed and waiting, one open
    db.failing = False
    await writer.flush()
    state = db.applied()
    assert state[("CA1", 3)] == "turn 3, corrected"
    assert sorted(seq for _, seq in state) == list(range(11))
    assert writer.pending == 0
    await writer.close()
    assert segments(tmp_path) == []


async def test_the_background_flush_retries_until_sql_is_back(tmp_path: Path) -> None:
    db = FlakyDb()
    writer = TurnWriter(db, tmp_path, batch_size=2, flush_interval_s=0.01)  # type: ignore[arg-type]
    await writer.start()
    db.failing = True
    for seq in range(6):
        writer.record(turn(seq))

    async def failed_twice() -> bool:
        return writer.stats.flush_failures >= 2

    await eventually(failed_twice, "background retries while SQL is down")
    db.failing = False

    async def all_in() -> bool:
        return len(db.applied()) == 6

    await eventually(all_in, "backlog written once SQL is back")
    await writer.close()


async def test_memory_stays_bounded_during_a_long_outage(tmp_path: Path) -> None:
    db = FlakyDb()
    writer = TurnWriter(db, tmp_path, batch_size=5, flush_interval_s=60,  # type: ignore[arg-type]
                        max_buffered=10)
    await writer.start()
    db.failing = True
    for seq in range(60):
        writer.record(turn(seq))
        if seq % 5 == 4:
            with pytest.raises(StoreWriteError):
                await writer.flush()
            assert writer._buffered <= 10
    db.failing = False
    await writer.flush()
    assert sorted(seq for _, seq in db.applied()) == list(range(60))
    assert writer.stats.dropped == 0
    await writer.close()


async def test_close_during_outage_leaves_the_journal_for_the_next_start(
    db: Database, tmp_path: Path
) -> None:
    flaky = FlakyDb()
    flaky.failing = True
    writer = TurnWriter(flaky, tmp_path, batch_size=1000, flush_interval_s=60)  # type: ignore[arg-type]
    await writer.start()
    for seq in range(7):
        writer.record(turn(seq))
    await writer.close()
    assert len(segments(tmp_path)) == 1
    again = TurnWriter(db, tmp_path, batch_size=1000, flush_interval_s=60)
    assert await again.start() == 7
    await again.close()
    detail = await db.get_call("CA1")
    assert detail is not None and len(detail.turns) == 7


async def test_full_journal_disk_is_counted_and_the_turn_still_reaches_sql(
    tmp_path: Path,
) -> None:
    db = FlakyDb()
    writer = TurnWriter(db, tmp_path, batch_size=1000, flush_interval_s=60)  # type: ignore[arg-type]
    await writer.start()
    assert writer._segment is not None
    full = os.open("/dev/full", os.O_WRONLY)
    real, writer._segment.fd = writer._segment.fd, full
    try:
        writer.record(turn(0))  # must not raise
    finally:
        writer._segment.fd = real
        os.close(full)
    assert writer.stats.journal_errors == 1 and "No space" in writer.stats.last_error
    await writer.flush()
    assert db.applied() == {("CA1", 0): "turn 0"}
    await writer.close()


async def test_a_live_writer_sharing_the_directory_is_not_replayed(tmp_path: Path) -> None:
    first_db, second_db = FlakyDb(), FlakyDb()
    first = TurnWriter(first_db, tmp_path, batch_size=1000, flush_interval_s=60)  # type: ignore[arg-type]
    await first.start()
    first.record(turn(0))
    second = TurnWriter(second_db, tmp_path, batch_size=1000, flush_interval_s=60)  # type: ignore[arg-type]
    assert await second.start() == 0
    await second.close()
    await first.close()
    assert second_db.batches == [] and len(first_db.batches) == 1


async def test_record_outside_start_and_close_is_a_bug(tmp_path: Path) -> None:
    writer = TurnWriter(FlakyDb(), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        writer.record(turn(0))
    await writer.start()
    await writer.close()
    with pytest.raises(RuntimeError):
        writer.record(turn(1))


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TurnWriter(FlakyDb(), tmp_path, batch_size=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TurnWriter(FlakyDb(), tmp_path, flush_interval_s=0)  # type: ignore[arg-type]
