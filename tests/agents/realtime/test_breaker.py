"""The process-wide circuit breaker, with an injected clock."""

from __future__ import annotations

import pytest

from agents.realtime import breaker as breaker_mod
from agents.realtime.breaker import BreakerState, CircuitBreaker
from tests.fakes.clock import ManualClock


def test_opens_after_n_failures_within_the_window() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=3, window_s=10, cooldown_s=30, clock=clock)
    b.record_failure()
    clock.now = 5
    b.record_failure()
    assert b.allow()
    clock.now = 9
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_failures_spread_out_do_not_open_it() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=3, window_s=10, cooldown_s=30, clock=clock)
    for t in (0, 8, 16, 24, 32):
        clock.now = t
        b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=1, window_s=10, cooldown_s=30, clock=clock)
    b.record_failure()
    clock.now = 29
    assert not b.allow()
    clock.now = 30
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # everyone else waits for its outcome
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()


def test_failed_probe_reopens() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=1, window_s=10, cooldown_s=30, clock=clock)
    b.record_failure()
    clock.now = 31
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.now = 60
    assert not b.allow()
    clock.now = 61
    assert b.allow()


def test_probe_that_never_reports_frees_the_slot() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=1, window_s=10, cooldown_s=30, clock=clock)
    b.record_failure()
    clock.now = 30
    assert b.allow()
    clock.now = 45
    assert not b.allow()
    clock.now = 61
    assert b.allow()


def test_success_clears_recent_failures() -> None:
    clock = ManualClock(0.0)
    b = CircuitBreaker(failures=2, window_s=10, cooldown_s=30, clock=clock)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_configure_and_validation() -> None:
    b = CircuitBreaker(failures=5)
    b.configure(failures=2, window_s=5, cooldown_s=1)
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


def test_should_use_realtime_follows_the_shared_breaker() -> None:
    shared = breaker_mod.default_breaker
    try:
        shared.reset()
        assert breaker_mod.should_use_realtime()
        for _ in range(shared.failures):
            shared.record_failure()
        assert not breaker_mod.should_use_realtime()
    finally:
        shared.reset()
