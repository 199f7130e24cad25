"""The suite's one virtual clock, in two forms.

`ManualClock` is for the sans-I/O cores (playout, turn machine, breaker,
sessions, the bench's caller script): they take a `clock` callable, and a test
moves time by hand, so every timing rule is checked at exact instants and no
test waits for the wall clock.

`virtual_time` is for asyncio code that sleeps and times out on the event
loop (budgets, retries, backoff): the fixture makes the running loop's clock
virtual and, whenever the loop has nothing ready and would block until its next
timer, jumps straight to that timer instead of sleeping. A test that waits out
an hour-long `asyncio.sleep` then finishes in milliseconds, and `loop.time()`
says exactly how much virtual time the code under test let pass. Real sockets
still work (they are polled on every turn of the loop), but a timer always wins
over I/O that has not arrived yet, so keep network peers out of such tests.
When nothing is scheduled and no I/O comes for `IDLE_LIMIT_S` of real time, the
loop is deadlocked: the fixture fails the test rather than hanging the suite.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import AsyncIterator
from typing import Any

import pytest

# Real seconds a virtual-time loop may sit with no timer and no I/O before the
# test is failed as deadlocked.
IDLE_LIMIT_S = 10.0


class ManualClock:
    """A clock callable that only moves when told to (any unit: s or ms)."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: float) -> float:
        """Move forward by `delta`; returns the new time. Time never goes back."""
        if delta < 0:
            raise ValueError("a clock does not go back")
        self.now += delta
        return self.now


class VirtualTimeDeadlock(AssertionError):
    """The loop had no timer to jump to and no I/O arrived: nothing can ever wake it."""


class _JumpingSelector(selectors.BaseSelector):
    """Wraps the loop's selector: polls real I/O, and jumps virtual time to the next timer
    instead of blocking on it."""

    def __init__(self, inner: selectors.BaseSelector, clock: VirtualTime) -> None:
        self._inner = inner
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O can wake the loop
            ready = self._inner.select(IDLE_LIMIT_S)
            if not ready:
                raise VirtualTimeDeadlock(
                    f"no timer scheduled and no I/O for {IDLE_LIMIT_S} s: the test waits "
                    "for something that can never happen")
            return ready
        self._clock.now += timeout
        self._clock.jumps += 1
        return []

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class VirtualTime:
    """The running loop's clock, made virtual (see the module docstring).

    Starts at the loop's real time, so timers set before it took over keep
    their meaning. Also a clock callable in seconds, to inject into code that
    takes `now` (e.g. `Call(now=...)`), so both views of time agree.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        selector = getattr(loop, "_selector", None)
        if not isinstance(selector, selectors.BaseSelector):
            raise TypeError(f"virtual time needs a selector event loop, not {type(loop)!r}")
        self.now = loop.time()
        self.start = self.now
        self.jumps = 0
        self._loop = loop
        self._selector = selector
        loop._selector = _JumpingSelector(selector, self)  # type: ignore[attr-defined]
        loop.time = self.__call__  # type: ignore[method-assign]

    def __call__(self) -> float:
        return self.now

    @property
    def elapsed(self) -> float:
        """Virtual seconds since the fixture took over."""
        return self.now - self.start

    def close(self) -> None:
        self._loop._selector = self._selector  # type: ignore[attr-defined]
        del self._loop.time  # back to the class's method


@pytest.fixture
async def virtual_time() -> AsyncIterator[VirtualTime]:
    """The test's event loop on virtual time; the clock is yielded."""
    clock = VirtualTime(asyncio.get_running_loop())
    try:
        yield clock
    finally:
        clock.close()
