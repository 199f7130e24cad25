"""Per-sender token bucket under a fake clock."""

from __future__ import annotations

import pytest

from sms.throttle import SenderThrottle


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_per_second_reserves_slots_in_order() -> None:
    clock = Clock()
    bucket = SenderThrottle(1.0, clock=clock)
    waits = [bucket.reserve("+14155550123") for _ in range(4)]
    assert waits == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert bucket.waits == 3


def test_senders_are_independent() -> None:
    bucket = SenderThrottle(1.0, clock=Clock())
    assert bucket.reserve("A") == 0.0
    assert bucket.reserve("B") == 0.0
    assert bucket.reserve("A") == pytest.approx(1.0)


def test_refill_is_capped_by_burst() -> None:
    clock = Clock()
    bucket = SenderThrottle(2.0, burst=2.0, clock=clock)
    assert bucket.reserve("A") == 0.0
    clock.t += 100  # a long pause saves up at most `burst` tokens
    assert [bucket.reserve("A") for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


def test_segments_cost_tokens() -> None:
    clock = Clock()
    bucket = SenderThrottle(1.0, clock=clock)
    assert bucket.reserve("A", cost=3) == pytest.approx(2.0)
    clock.t += 2.0
    assert bucket.reserve("A") == pytest.approx(1.0)


def test_rate_change_applies_to_new_reservations() -> None:
    clock = Clock()
    bucket = SenderThrottle(1.0, clock=clock)
    bucket.reserve("A")
    bucket.set_rate(10.0)
    assert bucket.reserve("A") == pytest.approx(0.1)


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        SenderThrottle(0, clock=Clock())
    with pytest.raises(ValueError):
        SenderThrottle(1, clock=Clock()).set_rate(-1)
