"""Live call sessions: Redis first, shared by all server processes; memory when Redis is not.

Layout per call (a hash tag keeps both keys in one cluster slot):
    <prefix>{<call id>}        hash: "f:<name>" fields, "g:<flag>" flags, "c:<name>" counters
    <prefix>{<call id>}:tail   list: the last `transcript_tail` transcript lines (LTRIM)
Every write refreshes the TTL of both (`session_timeout`).

Degrading without a pause: every session this process touches is mirrored in
`MemorySessions`. While Redis answers, reads come from Redis (another process
may have written) and writes go to both. When a command fails or times out
(`op_timeout_s`), the store marks Redis down and from then on serves the call
from memory without trying Redis, marking what changes as dirty. A background
task reconnects with exponential backoff and, before declaring Redis back,
pushes the dirty sessions (this process owns its calls: its copy wins; a
session first touched here during the outage holds only our changes, which are
merged into Redis's instead) and restores any mirrored session Redis no longer
has (a restart without persistence). While connected, Redis is the truth: a
session missing there was ended or expired by someone, and is dropped here too.
Memory is bounded by `max_in_memory_sessions` and `session_timeout` either way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from store.session_memory import MemorySessions, Session, SessionState
from store.settings import SessionsSettings

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.1
MAX_CALL_ID = 128
# Longer transcript lines are cut: a bound on memory and on Redis traffic.
MAX_LINE = 2000
_FAILURES = (RedisError, OSError, TimeoutError)


class SessionStore:
    def __init__(
        self,
        settings: SessionsSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings = settings
        self.memory = MemorySessions(
            settings.max_in_memory_sessions,
            settings.session_timeout,
            settings.transcript_tail,
            clock,
        )
        self.configured = bool(settings.redis_url)
        self.connected = False
        # Cumulative, for /health: how often we tried to get Redis back.
        self.reconnect_attempts = 0
        # Failures since Redis last answered.
        self.consecutive_failures = 0
        self.resyncs = 0
        self.last_error = ""
        self._redis: aioredis.Redis | None = None
        self._tombstones: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._down = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Connect if configured (failure is not an error: we start on memory) and start
        the health / reconnect / cleanup task."""
        if self.configured:
            self._redis = aioredis.Redis.from_url(
                self._settings.redis_url,
                decode_responses=True,
                socket_timeout=self._settings.op_timeout_s,
                socket_connect_timeout=self._settings.op_timeout_s,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
                client_name="leadline-sessions",
            )
            try:
                await self._ping()
            except _FAILURES as exc:
                self._note_failure(exc)
                log.warning("sessions: Redis unavailable at start, using memory: %s", exc)
            else:
                self.connected = True
        self._task = asyncio.create_task(self._run(), name="sessions-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._redis is not None:
            with contextlib.suppress(*_FAILURES):
                await self._redis.aclose()
            self._redis = None
        self.connected = False

    def status(self) -> dict[str, Any]:
        """For /health (served under "redis")."""
        dirty = sum(1 for _ in self.memory.dirty())
        return {
            "configured": self.configured,
            "connected": self.connected,
            "reconnectAttempts": self.reconnect_attempts,
            "consecutiveFailures": self.consecutive_failures,
            "lastError": self.last_error,
            "sessions": {
                "memory": len(self.memory),
                "dirty": dirty,
                "evicted": self.memory.evicted,
                "expired": self.memory.expired,
                "lostDirty": self.memory.lost_dirty,
            },
        }

    # writes ------------------------------------------------------------------

    async def set_fields(self, call_id: str, fields: Mapping[str, str]) -> None:
        for name, value in fields.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("session fields are str -> str")
        fresh, state = self._touch(call_id)
        state.fields.update(fields)
        if fields:
            await self._push(call_id, state, fresh, "hset",
                             {f"f:{name}": value for name, value in fields.items()})

    async def set_flag(self, call_id: str, flag: str, on: bool = True) -> None:
        fresh, state = self._touch(call_id)
        if on:
            state.flags.add(flag)
            state.removed_flags.discard(flag)
            await self._push(call_id, state, fresh, "hset", {f"g:{flag}": "1"})
        else:
            state.flags.discard(flag)
            if not state.complete:
                state.removed_flags.add(flag)
            await self._push(call_id, state, fresh, "hdel", f"g:{flag}")

    async def append_transcript(self, call_id: str, line: str) -> None:
        if len(line) > MAX_LINE:
            line = line[: MAX_LINE - 1] + "…"
        fresh, state = self._touch(call_id)
        state.tail.append(line)
        await self._push(call_id, state, fresh, "tail", line)

    async def incr(self, call_id: str, counter: str, by: int = 1) -> int:
        """Add to a counter; returns the new value (Redis's when it answers)."""
        fresh, state = self._touch(call_id)
        state.counters[counter] = state.counters.get(counter, 0) + by
        result = await self._push(call_id, state, fresh, "incr", (f"c:{counter}", by))
        if result is not None:
            state.counters[counter] = int(result)
        return state.counters[counter]

    async def delete(self, call_id: str) -> None:
        _check_id(call_id)
        self.memory.delete(call_id)
        if self.connected and self._redis is not None:
            key = self._key(call_id)
            try:
                await self._run_timed(self._redis.delete(key, key + ":tail"))
                return
            except _FAILURES as exc:
                self._mark_down(exc)
        if self.configured:
            self._tombstones[call_id] = None
            while len(self._tombstones) > 10 * self.memory.max_sessions:
                self._tombstones.popitem(last=False)

    # reads -------------------------------------------------------------------

    async def get(self, call_id: str) -> Session | None:
        """The session as Redis has it (fresh across processes), else as memory has it."""
        _check_id(call_id)
        state = self.memory.get(call_id)
        if self.connected and self._redis is not None:
            try:
                shared = await self._read(call_id)
            except _FAILURES as exc:
                self._mark_down(exc)
            else:
                if state is not None:
                    if shared is None:
                        # Ended (deleted) or expired by another process: Redis decides.
                        self.memory.delete(call_id)
                    else:
                        state.replace(shared)
                return shared
        return None if state is None else state.snapshot(call_id)

    # internals ---------------------------------------------------------------

    def _key(self, call_id: str) -> str:
        return f"{self._settings.key_prefix}{{{call_id}}}"

    def _touch(self, call_id: str) -> tuple[bool, SessionState]:
        _check_id(call_id)
        fresh = call_id not in self.memory
        self._tombstones.pop(call_id, None)
        return fresh, self.memory.touch(call_id)

    async def _push(
        self, call_id: str, state: SessionState, fresh: bool, op: str, arg: Any
    ) -> Any:
        """Send one change to Redis (plus a full read when this process had no copy yet,
        so the mirror is complete); on failure the change lives in memory only."""
        if not self.connected or self._redis is None:
            state.dirty = self.configured
            return None
        key = self._key(call_id)
        tail = key + ":tail"
        ttl = self._settings.session_timeout
        pipe = self._redis.pipeline(transaction=True)
        if op == "hset":
            pipe.hset(key, mapping=arg)
        elif op == "hdel":
            pipe.hdel(key, arg)
        elif op == "tail":
            pipe.rpush(tail, arg)
            pipe.ltrim(tail, -self.memory.tail_len, -1)
        elif op == "incr":
            pipe.hincrby(key, arg[0], arg[1])
        pipe.expire(key, ttl)
        pipe.expire(tail, ttl)
        seed = fresh or not state.complete
        if seed:
            pipe.hgetall(key)
            pipe.lrange(tail, 0, -1)
        try:
            results = await self._run_timed(pipe.execute())
        except _FAILURES as exc:
            state.dirty = True
            self._mark_down(exc)
            return None
        if seed:
            state.replace(_decode(call_id, results[-2], results[-1]))
        return results[0]

    async def _read(self, call_id: str) -> Session | None:
        assert self._redis is not None
        key = self._key(call_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.lrange(key + ":tail", 0, -1)
        hash_, tail = await self._run_timed(pipe.execute())
        if not hash_ and not tail:
            return None
        return _decode(call_id, hash_, tail)

    async def _run_timed(self, awaitable: Any) -> Any:
        async with asyncio.timeout(self._settings.op_timeout_s):
            return await awaitable

    async def _ping(self) -> None:
        assert self._redis is not None
        await self._run_timed(self._redis.ping())

    def _note_failure(self, exc: BaseException) -> None:
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _mark_down(self, exc: BaseException) -> None:
        self._note_failure(exc)
        if self.connected:
            self.connected = False
            log.warning("sessions: Redis down, serving calls from memory: %s", self.last_error)
        self._down.set()

    async def _resync(self) -> None:
        """Push what changed while Redis was away, restore what it lost; repeat until no
        session is dirty (writes keep landing in memory meanwhile), then go live. No
        await separates the last check from `connected = True`."""
        assert self._redis is not None
        while True:
            dirty = list(self.memory.dirty())
            tombstones = list(self._tombstones)
            if dirty or tombstones:
                await self._push_whole(dirty, tombstones)
                continue
            await self._restore_lost()
            if not any(True for _ in self.memory.dirty()):
                break
        self.connected = True
        self.consecutive_failures = 0
        self.resyncs += 1

    async def _push_whole(
        self, dirty: list[tuple[str, SessionState]], tombstones: list[str]
    ) -> None:
        assert self._redis is not None
        for _, state in dirty:
            state.dirty = False
        pipe = self._redis.pipeline(transaction=True)
        for call_id in tombstones:
            key = self._key(call_id)
            pipe.delete(key, key + ":tail")
        merged: list[tuple[str, SessionState, int]] = []
        for call_id, state in dirty:
            if state.complete:
                self._write_whole(pipe, call_id, state)
            else:
                merged.append((call_id, state, self._write_merge(pipe, call_id, state)))
        try:
            results = await self._run_timed(pipe.execute())
        except BaseException:
            for _, state in dirty:
                state.dirty = True
            raise
        for call_id in tombstones:
            self._tombstones.pop(call_id, None)
        for call_id, state, index in merged:
            # The merged result is the whole session: from now on this copy is complete.
            if not state.dirty:
                state.replace(_decode(call_id, results[index], results[index + 1]))

    async def _restore_lost(self) -> None:
        """Mirrored sessions missing from Redis (it restarted empty) are written back."""
        assert self._redis is not None
        ids = [cid for cid, state in self.memory.items() if state.complete and not state.dirty]
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for call_id in ids:
            key = self._key(call_id)
            pipe.exists(key, key + ":tail")
        found = await self._run_timed(pipe.execute())
        missing = [cid for cid, n in zip(ids, found, strict=True) if not n]
        if not missing:
            return
        pipe = self._redis.pipeline(transaction=True)
        for call_id in missing:
            state = self.memory.get(call_id)
            if state is not None:
                self._write_whole(pipe, call_id, state)
        await self._run_timed(pipe.execute())

    def _write_merge(self, pipe: Any, call_id: str, state: SessionState) -> int:
        """Add a partial copy's changes to what Redis has (another process owns the rest);
        queue a read of the result and return the index of its first reply."""
        key = self._key(call_id)
        tail = key + ":tail"
        ttl = max(1, int(self.memory.remaining_s(state)))
        mapping: dict[str, str] = {f"f:{k}": v for k, v in state.fields.items()}
        mapping.update({f"g:{flag}": "1" for flag in state.flags})
        if mapping:
            pipe.hset(key, mapping=mapping)
        if state.removed_flags:
            pipe.hdel(key, *(f"g:{flag}" for flag in state.removed_flags))
        for name, delta in state.counters.items():
            pipe.hincrby(key, f"c:{name}", delta)
        if state.tail:
            pipe.rpush(tail, *state.tail)
            pipe.ltrim(tail, -self.memory.tail_len, -1)
        pipe.expire(key, ttl)
        pipe.expire(tail, ttl)
        index = len(pipe)
        pipe.hgetall(key)
        pipe.lrange(tail, 0, -1)
        return index

    def _write_whole(self, pipe: Any, call_id: str, state: SessionState) -> None:
        key = self._key(call_id)
        tail = key + ":tail"
        ttl = max(1, int(self.memory.remaining_s(state)))
        mapping: dict[str, str] = {f"f:{k}": v for k, v in state.fields.items()}
        mapping.update({f"g:{flag}": "1" for flag in state.flags})
        mapping.update({f"c:{k}": str(v) for k, v in state.counters.items()})
        pipe.delete(key, tail)
        if mapping:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, ttl)
        if state.tail:
            pipe.rpush(tail, *state.tail)
            pipe.expire(tail, ttl)

    async def _run(self) -> None:
        """Health checks while up, reconnects with backoff while down, memory cleanup."""
        settings = self._settings
        cleanup_every = min(60.0, settings.session_timeout / 10)
        next_cleanup = time.monotonic() + cleanup_every
        backoff = MIN_BACKOFF_S
        while True:
            if not self.configured or self._redis is None:
                await asyncio.sleep(cleanup_every)
            elif self.connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._down.wait(), settings.health_interval_s)
                self._down.clear()
                if self.connected:
                    try:
                        await self._ping()
                    except _FAILURES as exc:
                        self._mark_down(exc)
                backoff = MIN_BACKOFF_S
            else:
                await asyncio.sleep(backoff)
                self._down.clear()
                self.reconnect_attempts += 1
                try:
                    with contextlib.suppress(*_FAILURES):
                        await self._redis.connection_pool.disconnect()
                    await self._ping()
                    await self._resync()
                except _FAILURES as exc:
                    self._note_failure(exc)
                    backoff = min(backoff * 2, settings.reconnect_max_backoff_s)
                else:
                    log.info("sessions: Redis back after %d failures, resynced",
                             self.consecutive_failures)
                    backoff = MIN_BACKOFF_S
            if time.monotonic() >= next_cleanup:
                self.memory.expire()
                next_cleanup = time.monotonic() + cleanup_every


def call_id_ok(call_id: str) -> bool:
    """Whether a call id can key a session; callers test it up front instead of
    catching the `ValueError` every session method raises for the others."""
    return (isinstance(call_id, str) and 0 < len(call_id) <= MAX_CALL_ID
            and "{" not in call_id and "}" not in call_id)


def _check_id(call_id: str) -> None:
    if not isinstance(call_id, str) or not 0 < len(call_id) <= MAX_CALL_ID:
        raise ValueError(f"call id must be 1..{MAX_CALL_ID} characters")
    if "{" in call_id or "}" in call_id:
        raise ValueError("call id must not contain braces (they form the Redis hash tag)")


def _decode(call_id: str, hash_: Mapping[str, str], tail: list[str]) -> Session:
    fields: dict[str, str] = {}
    flags: list[str] = []
    counters: dict[str, int] = {}
    for name, value in hash_.items():
        kind, _, rest = name.partition(":")
        if kind == "f":
            fields[rest] = value
        elif kind == "g":
            flags.append(rest)
        elif kind == "c":
            counters[rest] = int(value)
    flags.sort()
    return Session(call_id, fields, flags, list(tail), counters)
