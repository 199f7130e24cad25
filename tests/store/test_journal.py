"""Journal segments: locking tells orphans from live writers; torn lines are skipped."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import journal
from store.models import Turn, utcnow


def line(turn: Turn) -> bytes:
    buf = bytearray()
    journal.encode_into(turn, buf, msgspec.json.Encoder())
    return bytes(buf)


def test_segment_is_created_locked_and_named(tmp_path: Path) -> None:
    segment = journal.Segment.create(tmp_path)
    assert segment.path.name.startswith("turns-") and segment.path.suffix == ".jsonl"
    assert [p.name for p in tmp_path.iterdir()] == [segment.path.name]  # no temp left
    # a live writer's segment (locked through another open file) is not an orphan
    assert journal.claim_orphans(tmp_path) == []
    segment.release()
    claimed = journal.claim_orphans(tmp_path)
    assert [c.path for c in claimed] == [segment.path]
    claimed[0].remove()
    assert list(tmp_path.iterdir()) == []


def test_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    now = utcnow()
    turns = [Turn("CA1", i, "caller", f"héllo \"{i}\"\n next", now) for i in range(3)]
    segment = journal.Segment.create(tmp_path)
    for turn in turns:
        segment.append(line(turn))
    segment.append(line(Turn("CA1", 3, "agent", "cut off", now))[:20])  # killed mid-write
    segment.release()
    read, bad = journal.read_turns(segment.path)
    assert read == turns
    assert bad == 1


def test_orphans_come_back_oldest_first(tmp_path: Path) -> None:
    first = journal.Segment.create(tmp_path)
    second = journal.Segment.create(tmp_path)
    for s in (second, first):
        s.release()
    assert [c.path for c in journal.claim_orphans(tmp_path)] == [first.path, second.path]


def test_leftover_temp_files_are_removed_but_not_live_ones(tmp_path: Path) -> None:
    dead = tmp_path / ".deadbeef.tmp"
    dead.write_bytes(b"")
    live = tmp_path / ".cafebabe.tmp"
    fd = os.open(live, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        journal.claim_orphans(tmp_path)
        assert not dead.exists()
        assert live.exists()
    finally:
        os.close(fd)


def test_append_reports_a_full_disk(tmp_path: Path) -> None:
    segment = journal.Segment.create(tmp_path)
    full = os.open("/dev/full", os.O_WRONLY)
    real, segment.fd = segment.fd, full
    try:
        with pytest.raises(OSError) as info:
            segment.append(b"x\n")
        assert info.value.errno == errno.ENOSPC
    finally:
        os.close(full)
        segment.fd = real
        segment.remove()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_replay_never_crashes_on_garbage(tmp_path: Path, lines: list[bytes]) -> None:
    """Whatever a torn or corrupted journal holds, replay reads what it can and counts
    the rest; it never stops the writer from starting."""
    path = tmp_path / "turns-garbage.jsonl"
    good = line(Turn("CA1", 0, "caller", "kept", utcnow()))
    path.write_bytes(good + b"\n".join(lines))
    turns, bad = journal.read_turns(path)
    assert turns[0].text == "kept"
    assert len(turns) + bad <= 1 + sum(max(1, chunk.count(b"\n") + 1) for chunk in lines)
