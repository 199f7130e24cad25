"""Live call sessions in process memory: bounded, expiring, with an injected clock.

The sans-I/O half of the session store. `sessions.SessionStore` keeps a copy
of every session this process touches here, so that when Redis goes away the
call reads and writes here without a pause, and marks what changed (`dirty`)
to push back when Redis returns. With no Redis configured it is the store.

Bounds: at most `max_sessions` (least recently touched evicted first) and
`timeout_s` without activity (expired by `expire()`, which the store runs
periodically). Both are O(1) per operation, O(removed) per sweep: the
OrderedDict is kept in last-touched order.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator

import msgspec


class Session(msgspec.Struct, frozen=True):
    """A snapshot of one call's live state, as handed to callers."""

    call_id: str
    fields: dict[str, str]
    flags: list[str]
    transcript: list[str]
    counters: dict[str, int]


class SessionState:
    """Mutable state of one session in memory."""

    __slots__ = (
        "complete", "counters", "dirty", "fields", "flags", "removed_flags", "tail", "touched",
    )

    def __init__(self, tail_len: int, now: float):
        self.fields: dict[str, str] = {}
        self.flags: set[str] = set()
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_len)
        self.counters: dict[str, int] = {}
        self.touched = now
        # Changed while Redis could not be told: resync pushes it.
        self.dirty = False
        # True once this copy holds the whole session (read from Redis). A partial copy
        # (first touched here while Redis was away) holds only our changes: counters are
        # deltas, the tail is what we appended, and resync merges rather than replaces.
        self.complete = False
        self.removed_flags: set[str] = set()

    def snapshot(self, call_id: str) -> Session:
        return Session(
            call_id, dict(self.fields), sorted(self.flags), list(self.tail), dict(self.counters)
        )

    def replace(self, session: Session) -> None:
        """Take the state read from Redis (the shared truth) as ours."""
        self.fields = dict(session.fields)
        self.flags = set(session.flags)
        self.tail.clear()
        self.tail.extend(session.transcript)
        self.counters = dict(session.counters)
        self.complete = True
        self.removed_flags.clear()


class MemorySessions:
    def __init__(
        self,
        max_sessions: int = 100,
        timeout_s: float = 1800.0,
        tail_len: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_sessions < 1 or timeout_s <= 0 or tail_len < 1:
            raise ValueError("max_sessions, timeout_s and tail_len must be positive")
        self.max_sessions = max_sessions
        self.timeout_s = timeout_s
        self.tail_len = tail_len
        self._clock = clock
        self._sessions: collections.OrderedDict[str, SessionState] = collections.OrderedDict()
        self.evicted = 0
        self.expired = 0
        # Evicted or expired while dirty: changes Redis never got.
        self.lost_dirty = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._sessions

    def get(self, call_id: str) -> SessionState | None:
        """The live state, or None if absent or timed out (reading does not keep it alive)."""
        state = self._sessions.get(call_id)
        if state is not None and self._clock() - state.touched >= self.timeout_s:
            self._drop(call_id, state)
            self.expired += 1
            return None
        return state

    def touch(self, call_id: str) -> SessionState:
        """The state to modify, created if needed; counts as activity."""
        now = self._clock()
        state = self.get(call_id)
        if state is None:
            state = SessionState(self.tail_len, now)
            self._sessions[call_id] = state
            while len(self._sessions) > self.max_sessions:
                old_id, old = next(iter(self._sessions.items()))
                self._drop(old_id, old)
                self.evicted += 1
        else:
            state.touched = now
            self._sessions.move_to_end(call_id)
        return state

    def delete(self, call_id: str) -> bool:
        return self._sessions.pop(call_id, None) is not None

    def expire(self) -> int:
        """Drop sessions idle for `timeout_s`; returns how many."""
        deadline = self._clock() - self.timeout_s
        removed = 0
        while self._sessions:
            call_id, state = next(iter(self._sessions.items()))
            if state.touched > deadline:
                break
            self._drop(call_id, state)
            removed += 1
        self.expired += removed
        return removed

    def items(self) -> list[tuple[str, SessionState]]:
        """Live (unexpired) sessions, least recently touched first."""
        return [(cid, s) for cid, s in list(self._sessions.items()) if self.get(cid) is s]

    def dirty(self) -> Iterator[tuple[str, SessionState]]:
        return ((cid, s) for cid, s in list(self._sessions.items()) if s.dirty)

    def remaining_s(self, state: SessionState) -> float:
        return max(0.0, self.timeout_s - (self._clock() - state.touched))

    def _drop(self, call_id: str, state: SessionState) -> None:
        del self._sessions[call_id]
        if state.dirty:
            self.lost_dirty += 1
