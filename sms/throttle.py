"""Per-sender send rate: one token bucket per sender number, on an injected clock.

Carriers meter a long code at about one segment per second (more only when the
10DLC campaign allows it), and Twilio queues what exceeds it, which delays
replies unpredictably. So the sender paces itself: `reserve` books the next slot
and says how long to wait for it; the caller sleeps that long. Reserving ahead
(tokens may go negative) keeps the order of concurrent sends and never sleeps
in here, so the bucket is sans-I/O and exact under a fake clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

# Distinct senders remembered; an idle full bucket forgotten loses nothing.
MAX_SENDERS = 10_000


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class SenderThrottle:
    """`rate` tokens per second per sender, holding at most `burst` tokens."""

    def __init__(self, rate: float, *, burst: float = 1.0,
                 clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.waits = 0  # reservations that had to wait (for /metrics)
        self.waited_s = 0.0

    def set_rate(self, rate: float) -> None:
        """Hot reload of `[sms] max_mps`; booked slots keep their time."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate

    def reserve(self, sender: str, cost: float = 1.0) -> float:
        """Book `cost` tokens (segments) for `sender`; seconds to wait before sending."""
        now = self._clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[sender] = bucket
            if len(self._buckets) > MAX_SENDERS:
                self._forget(now)
        else:
            self._buckets.move_to_end(sender)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        # A message costs at least one slot; a long one costs its segments, as the carrier
        # meters segments: the next send waits until they have drained.
        bucket.tokens -= max(cost, 1.0)
        if bucket.tokens >= 0:
            return 0.0
        wait = -bucket.tokens / self.rate
        self.waits += 1
        self.waited_s += wait
        return wait

    def _forget(self, now: float) -> None:
        for key in list(self._buckets)[: len(self._buckets) - MAX_SENDERS]:
            bucket = self._buckets[key]
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self._buckets[key]
        while len(self._buckets) > MAX_SENDERS:  # all busy: drop the oldest anyway
            self._buckets.popitem(last=False)
