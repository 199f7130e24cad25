"""The process-wide media clock: one 20 ms tick paces every call.

One asyncio task sleeps to absolute deadlines (start + k·period), so sleeping
a little long never accumulates into drift; after a late wake-up the callback
is told how many periods elapsed (`frames_due`, capped) and catches up instead
of dropping audio. The deadline arithmetic is the sans-I/O `TickSchedule`; the
task around it only sleeps and calls back.

Lag (actual − scheduled wake-up) is kept in a bounded ring for percentiles; a
scrape reads it, the tick never logs. A failing callback is logged at most
once per error type per minute and the clock keeps ticking: one bad call must
not silence all the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from array import array
from bisect import bisect_left
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

TickCallback = Callable[[float, int], None]

# Failures of the same type are logged at most once per this many ms.
_ERROR_LOG_INTERVAL_MS = 60_000.0
LAG_BOUNDS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


class SampleRing:
    """The last `size` float samples, preallocated; `add` never allocates."""

    __slots__ = ("_data", "_i", "_n", "_size", "bounds", "bucket_counts", "count", "total")

    def __init__(self, size: int, bounds: tuple[float, ...] = ()) -> None:
        """`bounds` (ascending upper bucket bounds) adds a cumulative histogram
        over every sample ever added, for Prometheus; the ring keeps the recent ones."""
        if size < 1:
            raise ValueError("size must be at least 1")
        if list(bounds) != sorted(bounds):
            raise ValueError("bounds must be ascending")
        self._data = array("d", bytes(8 * size))
        self._size = size
        self._i = 0
        self._n = 0
        self.bounds = bounds
        # bucket_counts[k]: samples <= bounds[k] and > bounds[k-1]; the last is +Inf.
        self.bucket_counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        if self.bounds:
            self.bucket_counts[bisect_left(self.bounds, value)] += 1
            self.count += 1
            self.total += value
        i = self._i
        self._data[i] = value
        i += 1
        self._i = 0 if i == self._size else i
        if self._n < self._size:
            self._n += 1

    def __len__(self) -> int:
        return self._n

    def values(self) -> list[float]:
        """The samples held, oldest first (a copy)."""
        if self._n < self._size:
            return self._data[: self._n].tolist()
        return self._data[self._i :].tolist() + self._data[: self._i].tolist()

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Nearest-rank percentiles (0–100) of the samples held; NaN when empty."""
        if not self._n:
            return tuple(math.nan for _ in qs)
        ordered = sorted(self._data[: self._n])
        last = self._n - 1
        return tuple(ordered[min(last, max(0, math.ceil(q / 100 * self._n) - 1))] for q in qs)


class TickSchedule:
    """Deadline arithmetic of a fixed-period clock, in ms, without I/O.

    Deadline k is `start + k·period`. `due(now)` answers how many periods
    elapsed since the last due tick; more than `max_catch_up` are not
    replayed (the excess is counted in `skipped`), the schedule moves on.
    """

    __slots__ = ("_k", "last_lag_ms", "max_catch_up", "period_ms", "skipped", "start_ms")

    def __init__(self, period_ms: float, start_ms: float, max_catch_up: int = 5) -> None:
        if period_ms <= 0:
            raise ValueError("period_ms must be positive")
        if max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        self.period_ms = period_ms
        self.start_ms = start_ms
        self.max_catch_up = max_catch_up
        self._k = 0
        self.skipped = 0
        self.last_lag_ms = 0.0

    @property
    def next_deadline_ms(self) -> float:
        return self.start_ms + (self._k + 1) * self.period_ms

    def delay_ms(self, now_ms: float) -> float:
        """How long to sleep until the next deadline (0 if it passed)."""
        delay = self.next_deadline_ms - now_ms
        return delay if delay > 0.0 else 0.0

    def due(self, now_ms: float) -> int:
        """Periods to serve at `now_ms`: 0 if woken early, else 1..max_catch_up."""
        deadline = self.next_deadline_ms
        if now_ms < deadline:
            return 0
        k_now = int((now_ms - self.start_ms) // self.period_ms)
        frames = k_now - self._k
        if frames < 1:  # float edge: now == deadline rounding down
            frames = 1
            k_now = self._k + 1
        self.last_lag_ms = now_ms - deadline
        self._k = k_now
        if frames > self.max_catch_up:
            self.skipped += frames - self.max_catch_up
            frames = self.max_catch_up
        return frames


class MediaClock:
    """One asyncio task ticking every `period_ms` for the whole process.

    `now` is a seconds clock (time.monotonic); callbacks get `now_ms` on the
    same clock in ms. `sleep` is injectable so tests can drive virtual time.
    """

    def __init__(
        self,
        period_ms: float = 20.0,
        now: Callable[[], float] = time.monotonic,
        *,
        on_tick: TickCallback | None = None,
        max_catch_up: int = 5,
        lag_window: int = 3000,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if period_ms <= 0:
            raise ValueError("period_ms must be positive")
        self.period_ms = period_ms
        self._now = now
        self._sleep = sleep
        self._max_catch_up = max_catch_up
        # A tuple, replaced on change: a callback may (un)register during a tick.
        self._callbacks: tuple[TickCallback, ...] = (on_tick,) if on_tick is not None else ()
        self._lags = SampleRing(lag_window, LAG_BOUNDS_MS)
        self._task: asyncio.Task[None] | None = None
        self._schedule: TickSchedule | None = None
        self._error_logged_at: dict[type[BaseException], float] = {}
        self._errors_suppressed: dict[type[BaseException], int] = {}
        self.ticks = 0
        self.late_ticks = 0
        self.errors = 0

    # -- callbacks -------------------------------------------------------

    def register(self, on_tick: TickCallback) -> None:
        """Call `on_tick(now_ms, frames_due)` on every tick, in registration order."""
        self._callbacks = (*self._callbacks, on_tick)

    def unregister(self, on_tick: TickCallback) -> None:
        self._callbacks = tuple(cb for cb in self._callbacks if cb != on_tick)

    # -- observers -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def skipped_periods(self) -> int:
        """Periods beyond max_catch_up that were not replayed after a stall."""
        return self._schedule.skipped if self._schedule is not None else 0

    def lag_percentiles(self) -> tuple[float, float]:
        """(p50, p99) of recent tick lag in ms; NaN before the first tick."""
        p50, p99 = self._lags.percentiles(50, 99)
        return p50, p99

    def lag_samples(self) -> list[float]:
        return self._lags.values()

    @property
    def lag_ring(self) -> SampleRing:
        """Tick lag in ms: recent samples and a cumulative histogram."""
        return self._lags

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start ticking on the running loop (idempotent)."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- internals -------------------------------------------------------

    def _now_ms(self) -> float:
        return self._now() * 1000.0

    async def _run(self) -> None:
        schedule = TickSchedule(self.period_ms, self._now_ms(), self._max_catch_up)
        self._schedule = schedule
        period = self.period_ms
        sleep = self._sleep
        while True:
            # Always await, even for 0: a late clock must still let I/O run.
            await sleep(schedule.delay_ms(self._now_ms()) / 1000.0)
            now_ms = self._now_ms()
            frames = schedule.due(now_ms)
            if not frames:
                continue
            lag = schedule.last_lag_ms
            self._lags.add(lag)
            self.ticks += 1
            if lag >= period:
                self.late_ticks += 1
            for callback in self._callbacks:
                try:
                    callback(now_ms, frames)
                except Exception as exc:
                    self._report(exc, now_ms)

    def _report(self, exc: Exception, now_ms: float) -> None:
        self.errors += 1
        kind = type(exc)
        last = self._error_logged_at.get(kind)
        if last is not None and now_ms - last < _ERROR_LOG_INTERVAL_MS:
            self._errors_suppressed[kind] = self._errors_suppressed.get(kind, 0) + 1
            return
        self._error_logged_at[kind] = now_ms
        suppressed = self._errors_suppressed.pop(kind, 0)
        log.error(
            "media clock callback failed (%d more %s suppressed in the last minute)",
            suppressed,
            kind.__name__,
            exc_info=exc,
        )
