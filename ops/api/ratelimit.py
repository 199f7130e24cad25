"""Per-token request budget: a token bucket per key with an injected clock.

A bucket holds at most `burst` requests and refills at `rate_per_s`; a request that
finds it empty is refused with the seconds until one request's worth is back (the
`Retry-After` of the 429). Buckets are kept for at most `max_keys` tokens, the least
recently seen dropped first, so a flood of distinct keys cannot grow memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def configure(self, rate_per_s: float, burst: int) -> None:
        """New limits (hot reload); existing buckets keep their level, capped."""
        self.rate, self.burst = rate_per_s, burst

    def take(self, key: object) -> float:
        """0.0 when the request may go ahead, else the seconds to wait (> 0)."""
        now = self._clock()
        level, last = self._buckets.pop(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.rate)
        if level >= 1.0:
            self._store(key, level - 1.0, now)
            return 0.0
        self._store(key, level, now)
        self.refused += 1
        return (1.0 - level) / self.rate

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The Retry-After header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))

    def _store(self, key: object, level: float, now: float) -> None:
        self._buckets[key] = (level, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
