"""Media clock: deadline arithmetic and the loop, on virtual time."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from media.clock import MediaClock, SampleRing, TickSchedule


def test_deadlines_are_absolute_so_late_wakeups_do_not_drift() -> None:
    s = TickSchedule(20.0, start_ms=1000.0)
    assert s.next_deadline_ms == 1020.0
    assert s.delay_ms(1005.0) == 15.0
    assert s.due(1019.9) == 0  # woken early: nothing due, nothing consumed
    assert s.due(1020.0) == 1 and s.last_lag_ms == 0.0
    assert s.due(1047.0) == 1 and s.last_lag_ms == 7.0
    # The next deadline stays on the grid despite the 7 ms late wake-up.
    assert s.next_deadline_ms == 1060.0
    assert s.delay_ms(1047.0) == 13.0
    assert s.delay_ms(1070.0) == 0.0


def test_a_late_loop_catches_up_instead_of_skipping() -> None:
    s = TickSchedule(20.0, start_ms=0.0)
    assert s.due(20.0) == 1
    # Woken 45 ms after the 40 ms deadline: 40, 60, 80 are all due.
    assert s.due(85.0) == 3 and s.last_lag_ms == 45.0
    assert s.next_deadline_ms == 100.0
    assert s.skipped == 0


def test_catch_up_is_capped_and_the_rest_is_skipped() -> None:
    s = TickSchedule(20.0, start_ms=0.0, max_catch_up=5)
    assert s.due(1000.0) == 5
    assert s.skipped == 45
    assert s.next_deadline_ms == 1020.0
    assert s.due(1020.0) == 1


def test_schedule_validation() -> None:
    with pytest.raises(ValueError):
        TickSchedule(0.0, 0.0)
    with pytest.raises(ValueError):
        TickSchedule(20.0, 0.0, max_catch_up=0)
    with pytest.raises(ValueError):
        MediaClock(period_ms=-1)


def test_sample_ring_is_bounded_and_ordered() -> None:
    ring = SampleRing(4)
    assert math.isnan(ring.percentiles(50)[0])
    for v in range(1, 8):
        ring.add(float(v))
    assert len(ring) == 4
    assert ring.values() == [4.0, 5.0, 6.0, 7.0]
    assert ring.percentiles(0, 50, 100) == (4.0, 5.0, 7.0)
    with pytest.raises(ValueError):
        SampleRing(0)


class VirtualTime:
    """A seconds clock that only moves when the clock sleeps (plus scripted lateness)."""

    def __init__(self, start: float = 50.0) -> None:
        self.t = start
        self.late_ms: list[float] = []
        self.sleeps: list[float] = []
        # Set once a test has seen enough ticks: sleeping then never ends.
        self.frozen = False

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if self.frozen:
            await asyncio.Event().wait()
        self.sleeps.append(seconds)
        extra = self.late_ms.pop(0) if self.late_ms else 0.0
        self.t += seconds + extra / 1000.0
        await asyncio.sleep(0)


async def run_ticks(
    clock: MediaClock, vt: VirtualTime, n: int, seen: list[tuple[float, int]]
) -> None:
    done = asyncio.Event()

    def on_tick(now_ms: float, frames: int) -> None:
        seen.append((now_ms, frames))
        if len(seen) >= n:
            vt.frozen = True
            done.set()

    clock.register(on_tick)
    clock.start()
    await asyncio.wait_for(done.wait(), 5)
    await clock.stop()
    clock.unregister(on_tick)


async def test_loop_ticks_on_the_grid_and_catches_up_after_a_stall() -> None:
    vt = VirtualTime()
    clock = MediaClock(20.0, now=vt.now, sleep=vt.sleep)
    # Tick 3 wakes 3 ms late, tick 5 wakes 50 ms late.
    vt.late_ms = [0.0, 0.0, 3.0, 0.0, 50.0, 0.0, 0.0]
    seen: list[tuple[float, int]] = []
    await run_ticks(clock, vt, 7, seen)
    start = 50_000.0
    assert [frames for _, frames in seen] == [1, 1, 1, 1, 3, 1, 1]
    assert [round(t - start, 6) for t, _ in seen] == [20, 40, 63, 80, 150, 160, 180]
    assert clock.ticks == 7 and clock.late_ticks == 1
    assert clock.lag_samples() == pytest.approx([0, 0, 3, 0, 50, 0, 0], abs=1e-6)
    p50, p99 = clock.lag_percentiles()
    assert p50 == pytest.approx(0.0, abs=1e-6) and p99 == pytest.approx(50.0)
    assert not clock.running


async def test_failing_callback_is_logged_once_per_type_and_never_stops_the_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vt = VirtualTime()
    clock = MediaClock(20.0, now=vt.now, sleep=vt.sleep)

    def broken(now_ms: float, frames: int) -> None:
        raise (KeyError if int(now_ms) % 40 else RuntimeError)("boom")

    clock.register(broken)
    seen: list[tuple[float, int]] = []
    with caplog.at_level(logging.ERROR, logger="media.clock"):
        await run_ticks(clock, vt, 20, seen)
    assert len(seen) == 20  # the healthy callback after the broken one ran every tick
    assert clock.errors == 20
    assert len(caplog.records) == 2
    assert {r.exc_info[0] for r in caplog.records if r.exc_info} == {KeyError, RuntimeError}


async def test_start_is_idempotent_and_stop_without_start_is_harmless() -> None:
    vt = VirtualTime()
    clock = MediaClock(20.0, now=vt.now, sleep=vt.sleep)
    await clock.stop()
    seen: list[tuple[float, int]] = []
    clock.start()
    clock.start()
    await run_ticks(clock, vt, 3, seen)
    assert [frames for _, frames in seen] == [1, 1, 1]
    assert math.isnan(MediaClock().lag_percentiles()[0])


async def test_a_callback_may_unregister_itself_during_a_tick() -> None:
    vt = VirtualTime()
    clock = MediaClock(20.0, now=vt.now, sleep=vt.sleep)
    calls: list[str] = []

    def once(now_ms: float, frames: int) -> None:
        calls.append("once")
        clock.unregister(once)

    clock.register(once)
    seen: list[tuple[float, int]] = []
    await run_ticks(clock, vt, 4, seen)
    assert calls == ["once"] and len(seen) == 4
