"""The in-memory session core, on a fake clock: bounds, expiry, snapshots."""

from __future__ import annotations

import pytest

from store.session_memory import MemorySessions
from tests.fakes.clock import ManualClock


def test_oldest_session_is_evicted_beyond_the_bound() -> None:
    clock = ManualClock(1000.0)
    mem = MemorySessions(max_sessions=3, timeout_s=60, tail_len=5, clock=clock)
    for call in ("a", "b", "c"):
        mem.touch(call)
        clock.now += 1
    mem.touch("a")  # a is now the most recent
    mem.touch("d")
    assert "b" not in mem and {"a", "c", "d"} == {c for c, _ in mem.items()}
    assert mem.evicted == 1 and len(mem) == 3


def test_evicting_a_dirty_session_is_counted_as_lost() -> None:
    mem = MemorySessions(max_sessions=1, timeout_s=60, tail_len=5, clock=ManualClock(1000.0))
    mem.touch("a").dirty = True
    mem.touch("b")
    assert mem.lost_dirty == 1


def test_sessions_expire_after_the_timeout_of_inactivity() -> None:
    clock = ManualClock(1000.0)
    mem = MemorySessions(max_sessions=10, timeout_s=30, tail_len=5, clock=clock)
    mem.touch("old")
    clock.now += 20
    mem.touch("new")
    clock.now += 15  # old idle 35 s, new idle 15 s
    assert mem.expire() == 1
    assert mem.get("old") is None and mem.get("new") is not None
    clock.now += 30
    assert mem.get("new") is None  # reading an expired one drops it too
    assert mem.expired == 2 and len(mem) == 0


def test_reading_does_not_keep_a_session_alive() -> None:
    clock = ManualClock(1000.0)
    mem = MemorySessions(max_sessions=10, timeout_s=30, tail_len=5, clock=clock)
    mem.touch("a")
    clock.now += 25
    assert mem.get("a") is not None
    clock.now += 10
    assert mem.get("a") is None


def test_transcript_tail_is_bounded_and_snapshots_are_copies() -> None:
    mem = MemorySessions(max_sessions=10, timeout_s=30, tail_len=3, clock=ManualClock(1000.0))
    state = mem.touch("a")
    for i in range(5):
        state.tail.append(f"line {i}")
    state.fields["stage"] = "greeting"
    snap = state.snapshot("a")
    assert snap.transcript == ["line 2", "line 3", "line 4"]
    state.fields["stage"] = "booking"
    assert snap.fields == {"stage": "greeting"}


@pytest.mark.parametrize("args", [(0, 30, 5), (10, 0, 5), (10, 30, 0)])
def test_bounds_must_be_positive(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        MemorySessions(*args)
