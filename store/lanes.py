"""Ordered, bounded write-behind lanes: how work reaches the store without the call waiting.

A `Lane` is one worker task running jobs (zero-argument coroutine functions)
in the order they were queued. `put` never waits: a full lane refuses the job
and the caller counts the drop, so a stalled database costs memory only up to
the lane's depth, never a call's progress.

A job the database refuses (`StoreError`: disk full, connection lost) is
retried with backoff and holds back the jobs behind it, because the order is
the point: a call's end must never be written before its start. Any other
exception is a bug or bad data, and retrying it would wedge the lane forever,
so that job is dropped. Either way `on_error` hears of it.

`Lanes` spreads keyed work over a fixed set of lanes (the key picks the lane
by CRC-32), so work for one key stays ordered while different keys proceed
in parallel and one slow key holds back only its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from store.errors import StoreError

Job = Callable[[], Awaitable[Any]]
ErrorHook = Callable[[BaseException], None]

# Backoff of a job the database refused: first pause, and the ceiling it doubles up to.
RETRY_MIN_S = 0.25
RETRY_MAX_S = 5.0


class Lane:
    """One worker running jobs in order; `put` never waits (a full lane refuses)."""

    def __init__(self, name: str, depth: int, on_error: ErrorHook, *,
                 retry_min_s: float = RETRY_MIN_S, retry_max_s: float = RETRY_MAX_S) -> None:
        if depth < 1:
            raise ValueError("a lane needs a depth of at least 1")
        self.name = name
        self.queue: asyncio.Queue[Job] = asyncio.Queue(depth)
        self._on_error = on_error
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self.task: asyncio.Task[None] | None = None
        # True while the job at the head is being retried (the database refuses it).
        self.retrying = False

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=self.name)

    def put(self, job: Job) -> bool:
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            return False
        return True

    async def _run(self) -> None:
        queue = self.queue
        while True:
            job = await queue.get()
            delay = self._retry_min_s
            try:
                while True:
                    try:
                        await job()
                    except StoreError as exc:
                        self._on_error(exc)
                        self.retrying = True
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self._retry_max_s)
                        continue
                    except Exception as exc:  # a bug or bad data: counted, logged, dropped
                        self._on_error(exc)
                    break
            finally:
                self.retrying = False
                queue.task_done()

    async def stop(self) -> int:
        """Stop now; returns the jobs abandoned (drain first with `queue.join()`)."""
        if self.task is None:
            return 0
        left = self.queue.qsize()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None
        return left


class Lanes:
    """`count` lanes of `depth` jobs each; a key always maps to the same lane."""

    def __init__(self, name: str, count: int, depth: int, on_error: ErrorHook) -> None:
        if count < 1:
            raise ValueError("need at least one lane")
        self.lanes = [Lane(f"{name}-{i}", depth, on_error) for i in range(count)]

    def start(self) -> None:
        for lane in self.lanes:
            lane.start()

    def put(self, key: str, job: Job) -> bool:
        """Queue `job` behind earlier work of `key`; False when that lane is full."""
        lanes = self.lanes
        return lanes[zlib.crc32(key.encode()) % len(lanes)].put(job)

    @property
    def queued(self) -> int:
        return sum(lane.queue.qsize() for lane in self.lanes)


async def drain(groups: Iterable[Lanes], timeout_s: float) -> int:
    """Let queued jobs finish for up to `timeout_s` (all groups together), then stop
    every lane; returns the jobs abandoned."""
    lanes = [lane for group in groups for lane in group.lanes]
    joins = [asyncio.ensure_future(lane.queue.join()) for lane in lanes]
    if joins:
        _, late = await asyncio.wait(joins, timeout=timeout_s)
        for join in late:
            join.cancel()
    abandoned = 0
    for lane in lanes:
        abandoned += await lane.stop()
    return abandoned
