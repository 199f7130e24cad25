"""A process-wide circuit breaker in front of the Realtime service.

When OpenAI is down every new call would otherwise spend the connect timeout
in silence before falling back. After `failures` failures within `window_s`
the breaker opens and `should_use_realtime()` answers False, so new calls
start on the keyless brain at once. After `cooldown_s` it half-opens and lets
exactly one call through as a probe; its outcome closes or re-opens it. A
probe that never reports (its call ended before connecting) frees the slot
after another cooldown, so the breaker cannot wedge half-open.

Plain class with an injected clock: deterministic in tests, no tasks, no I/O.
It counts its trips and keeps its state in plain fields; `ops.metrics` exports
the shared breaker's at scrape time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failures: int = 5,
        window_s: float = 60.0,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._recent: deque[float] = deque(maxlen=failures)
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_at: float | None = None
        # Times the breaker opened.
        self.trips = 0

    def configure(self, failures: int, window_s: float, cooldown_s: float) -> None:
        """Apply new thresholds (config reload) without forgetting the state."""
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if failures != self.failures:
            self._recent = deque(self._recent, maxlen=failures)
        self.failures, self.window_s, self.cooldown_s = failures, window_s, cooldown_s

    @property
    def state(self) -> BreakerState:
        self._advance()
        return self._state

    @property
    def last_state(self) -> BreakerState:
        """The state as of the last call that moved it (reading it moves nothing: a
        scrape must not be what half-opens the breaker)."""
        return self._state

    def allow(self) -> bool:
        """May a new call use the Realtime brain? In half-open, True once (the probe)."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probe_at is None:
            self._probe_at = self._clock()
            return True
        return False

    def record_success(self) -> None:
        self._recent.clear()
        self._probe_at = None
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED

    def record_failure(self) -> None:
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            self._trip(now)
            return
        if self._state is BreakerState.OPEN:
            return
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.failures:
            self._trip(now)

    def reset(self) -> None:
        self._recent.clear()
        self._probe_at = None
        self._state = BreakerState.CLOSED

    def _trip(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probe_at = None
        self._recent.clear()
        self.trips += 1

    def _advance(self) -> None:
        now = self._clock()
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.cooldown_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_at = None
        elif (
            self._state is BreakerState.HALF_OPEN
            and self._probe_at is not None
            and now - self._probe_at >= self.cooldown_s
        ):
            self._probe_at = None


# The breaker shared by every call of the process.
default_breaker = CircuitBreaker()


def should_use_realtime() -> bool:
    """Whether a new call should start on the Realtime brain (False: keyless brain)."""
    return default_breaker.allow()
