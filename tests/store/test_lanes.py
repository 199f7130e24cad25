"""Write-behind lanes: order per key, bounded depth, retries keep order, drops never wedge."""

from __future__ import annotations

import asyncio

import pytest

from store.errors import StoreError
from store.lanes import Lane, Lanes, drain


async def test_jobs_of_one_key_run_in_order_and_a_full_lane_refuses() -> None:
    errors: list[BaseException] = []
    lanes = Lanes("t", 3, 2, errors.append)
    done: list[int] = []
    gate = asyncio.Event()

    async def job(n: int) -> None:
        await gate.wait()
        done.append(n)

    # Unstarted: nothing runs, so the lane of "CA1" fills up at its depth.
    assert lanes.put("CA1", lambda: job(1))
    assert lanes.put("CA1", lambda: job(2))
    assert not lanes.put("CA1", lambda: job(3))
    assert lanes.queued == 2
    lanes.start()
    gate.set()
    assert await drain([lanes], 2.0) == 0
    assert done == [1, 2] and errors == []


async def test_a_refused_write_is_retried_before_the_jobs_behind_it() -> None:
    errors: list[BaseException] = []
    lane = Lane("t", 10, errors.append, retry_min_s=0.001, retry_max_s=0.002)
    attempts = 0
    done: list[str] = []

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise StoreError("disk full")
        done.append("start")

    async def after() -> None:
        done.append("end")

    lane.start()
    lane.put(flaky)
    lane.put(after)
    await asyncio.wait_for(lane.queue.join(), 2.0)
    assert done == ["start", "end"]
    assert attempts == 3 and len(errors) == 2 and not lane.retrying
    assert await lane.stop() == 0


async def test_a_bug_in_a_job_drops_that_job_only() -> None:
    errors: list[BaseException] = []
    lane = Lane("t", 10, errors.append)
    done: list[str] = []

    async def broken() -> None:
        raise KeyError("bad data")

    async def fine() -> None:
        done.append("fine")

    lane.start()
    lane.put(broken)
    lane.put(fine)
    await asyncio.wait_for(lane.queue.join(), 2.0)
    assert done == ["fine"]
    assert [type(e) for e in errors] == [KeyError]
    await lane.stop()


async def test_drain_gives_up_after_its_timeout_and_counts_what_was_left() -> None:
    lanes = Lanes("t", 1, 10, lambda exc: None)
    lanes.start()
    stuck = asyncio.Event()
    for _ in range(4):
        lanes.put("CA1", stuck.wait)
    assert await drain([lanes], 0.05) == 3  # one is running, three wait behind it


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        Lanes("t", 0, 10, lambda exc: None)
    with pytest.raises(ValueError):
        Lane("t", 0, lambda exc: None)
