"""The store wired into live calls: call records, every turn, caller memory, live sessions.

`Persistence` is the `CallObserver` the composition root hands to the call
manager. A call never waits on it: the only await on the call's path is the
caller lookup before the greeting, which the call races against its 100 ms
budget. Everything else returns at once:

- turns go to the `TurnWriter` (one journal `write` per turn, SQL behind it,
  replayed at the next start after a SIGKILL);
- call records, caller bookkeeping and names go through ordered write-behind
  lanes (`store.lanes`: a call's sid picks its lane, so its start is written
  before its end; bounded, so a stalled database costs memory only up to a
  limit and then counted drops, never the call);
- session updates (Redis, memory when Redis is away) go through lanes of their
  own, so a slow SQL write never delays what other processes see in Redis.

The rules live below this module: caller memory (`agents.memory`) decides what
a lookup means and how names are heard, `store.retention` what is purged when.
What is left here is the mapping from call events to store jobs, and the
/health view of it all.

Sessions are deleted when the call ends (the record lives on in SQL); their
TTL (`session_timeout`) only cleans up after a process that died mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from agents.memory import Known, NameListener, from_lookup, remember, session_flag
from ops.config import Config
from store.database import Database, clean_name, open_database, redact_url
from store.errors import StoreError
from store.lanes import Job, Lanes, drain
from store.models import Turn as TurnRecord
from store.models import utcnow
from store.phones import InvalidPhoneNumber, normalize_phone
from store.retention import Retention, RetentionStats
from store.sessions import SessionStore, call_id_ok
from store.turn_writer import TurnWriter
from telephony.calls import CallObserver

if TYPE_CHECKING:
    from telephony.call import Call

log = logging.getLogger("leadline.persistence")

# Ordered worker lanes per kind of work, and the jobs each may hold before drops.
LANES = 4
LANE_DEPTH = 5_000
# How long stop() lets queued record/session writes finish.
DRAIN_S = 5.0
# A failing database is logged at most this often (every failure is counted).
ERROR_LOG_EVERY_S = 60.0
# How often turn flushing is checked on.
WATCH_EVERY_S = 1.0
# Distinct bad caller numbers remembered so each is logged once.
MAX_LOGGED_NUMBERS = 1_000

class _CallState:
    """What persistence keeps per live call (dropped when it ends)."""

    __slots__ = ("brains", "fell_back", "names", "phone", "seq", "sessions", "started_wall")

    def __init__(self, phone: str | None, started_wall: datetime, seq: int) -> None:
        self.phone = phone
        self.started_wall = started_wall
        self.seq = seq
        # The name stored for this caller (lookup or capture) and the ear for it.
        self.names = NameListener()
        self.fell_back = False
        # Every brain that served the call (token usage is summed over them).
        self.brains: list[Any] = []
        # False when the call id cannot key a session (empty, braces, too long).
        self.sessions = True


class PersistenceStats(msgspec.Struct):
    """Counters for /health and /metrics; mutable, owned by one Persistence."""

    dropped_jobs: int = 0
    failed_jobs: int = 0
    invalid_numbers: int = 0
    lookup_hits: int = 0
    lookup_new: int = 0
    lookup_timeouts: int = 0
    lookup_errors: int = 0
    names_captured: int = 0
    last_error: str = ""


class Persistence(CallObserver):
    """Store, sessions and caller memory for every call of the process.

    `config` is the config or a callable returning the current one (hot reload):
    the database URL, journal, write-behind and Redis settings are read once at
    `start` (changing them takes a restart); the retention is read live.
    Hooks arriving outside `start` … `stop` are ignored.
    """

    def __init__(self, config: Config | Callable[[], Config]) -> None:
        self._config: Callable[[], Config] = config if callable(config) else (lambda: config)
        cfg = self._config()
        self.database_url = cfg.store.database_url
        self.db: Database | None = None
        self.writer: TurnWriter | None = None
        self.sessions = SessionStore(cfg.sessions)
        self.stats = PersistenceStats()
        self._sql = Lanes("store-sql", LANES, LANE_DEPTH, self._job_failed)
        self._live = Lanes("store-sessions", LANES, LANE_DEPTH, self._job_failed)
        self.retention: Retention | None = None
        self._calls: dict[Call, _CallState] = {}
        self._logged_numbers: set[str] = set()
        self._failing_until = 0.0
        self._retention: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._started = False
        self._server_id = f"{socket.gethostname()}:{os.getpid()}"

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database (migrating it), replay the journal, connect sessions.

        A database that cannot be opened raises `StoreError` naming it: the
        server must not start without its store (and never falls back to
        another backend by itself). Redis down is not an error: memory serves.
        """
        cfg = self._config()
        shown = redact_url(self.database_url)
        try:
            self.db = await open_database(self.database_url)
        except (StoreError, ValueError) as exc:
            log.error("cannot open the store %s: %s; the server will not start", shown, exc)
            raise
        store = cfg.store
        self.writer = TurnWriter(self.db, store.journal_dir, store.turn_batch_size,
                                 store.turn_flush_interval_s)
        try:
            replayed = await self.writer.start()
            await self.sessions.start()
        except BaseException:
            await self._close_store()
            raise
        self._sql.start()
        self._live.start()
        self.retention = Retention(self.db, lambda: self._config().store.retention_days,
                                   self._note_error)
        self._retention = asyncio.create_task(self.retention.run(), name="store-retention")
        self._watch = asyncio.create_task(self._watch_loop(), name="store-watch")
        self._started = True
        log.info("store open", extra={
            "backend": self.db.backend, "database": shown, "replayed_turns": replayed,
            "journal_dir": store.journal_dir, "redis": self.sessions.connected,
        })

    async def stop(self) -> None:
        """Let queued writes finish (bounded), flush turns, close everything."""
        if not self._started:
            return
        self._started = False
        for task in (self._retention, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        abandoned = await drain((self._sql, self._live), DRAIN_S)
        if abandoned:
            self.stats.dropped_jobs += abandoned
            log.warning("store: %d queued writes abandoned at shutdown", abandoned)
        await self.sessions.close()
        await self._close_store()

    async def _close_store(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        if self.db is not None:
            await self.db.close()

    # -- CallObserver ------------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        if not self._started:
            return
        ctx = call.context
        sid = ctx.call_sid
        raw = ctx.from_number if ctx.direction == "inbound" else ctx.to_number
        phone = self._phone(raw, sid)
        # A replayed stream start replaces a live call of the same sid: continue its seq.
        seq = max((s.seq for c, s in self._calls.items() if c.call_sid == sid), default=0)
        state = _CallState(phone, utcnow(), seq)
        state.brains.append(call.brain)
        state.sessions = call_id_ok(sid)
        self._calls[call] = state
        if not sid:
            return
        db = self.db
        assert db is not None
        self._sql_job(sid, functools.partial(
            db.start_call, sid, direction=ctx.direction, from_number=ctx.from_number,
            to_number=ctx.to_number, started_at=state.started_wall, brain=call.brain.kind))
        if phone is not None:
            self._sql_job(sid, functools.partial(db.upsert_caller_seen, phone,
                                                 at=state.started_wall))
        fields = {"from": ctx.from_number, "to": ctx.to_number, "direction": ctx.direction,
                  "brain": call.brain.kind, "started": state.started_wall.isoformat(),
                  "server": self._server_id}
        self._session_job(state, sid, functools.partial(self.sessions.set_fields, sid, fields))

    async def before_greeting(self, call: Call) -> None:
        """Look the caller up (the call bounds this by its greeting budget)."""
        state = self._calls.get(call)
        db = self.db
        if state is None or state.phone is None or db is None or call.context.caller_name:
            return
        try:
            caller = await db.get_caller(state.phone)
        except asyncio.CancelledError:
            self.stats.lookup_timeouts += 1  # the greeting went ahead without the name
            raise
        except Exception as exc:
            self.stats.lookup_errors += 1
            self._note_error(exc, "caller lookup failed")
            return
        memory = from_lookup(caller.name if caller is not None else None)
        call.context.caller_name = remember(memory)
        if isinstance(memory, Known):
            self.stats.lookup_hits += 1
            state.names.named(memory.name)
        else:
            self.stats.lookup_new += 1
        sid = call.call_sid
        if sid:
            self._session_job(state, sid, functools.partial(
                self.sessions.set_flag, sid, session_flag(memory)))

    def transcript(self, call: Call, role: str, text: str) -> None:
        state = self._calls.get(call)
        writer = self.writer
        if state is None or writer is None or not self._started:
            return
        sid = call.call_sid
        if not sid:
            return
        self._note_brain(call, state)
        writer.record(TurnRecord(sid, state.seq, role, text, utcnow()))
        state.seq += 1
        self._session_job(state, sid, functools.partial(
            self.sessions.append_transcript, sid, f"{role}: {text}"))
        if role == "agent":
            state.names.agent_said(text)
        elif role == "caller" and state.phone is not None:
            name = state.names.caller_said(text)
            if name:
                call.caller_named(name)  # sets the context; comes back as caller_named

    def caller_named(self, call: Call, name: str) -> None:
        state = self._calls.get(call)
        if state is None or not self._started:
            return
        try:
            cleaned = clean_name(name)
        except (TypeError, ValueError) as exc:
            log.info("caller name refused: %s", exc, extra={"call_sid": call.call_sid})
            return
        if cleaned is None or cleaned == state.names.name:
            return
        state.names.named(cleaned)
        self.stats.names_captured += 1
        sid = call.call_sid
        if state.phone is not None and self.db is not None:
            self._sql_job(sid, functools.partial(self.db.set_caller_name, state.phone, cleaned))
        if sid:
            self._session_job(state, sid, functools.partial(
                self.sessions.set_fields, sid, {"caller_name": cleaned}))

    def call_ended(self, call: Call) -> None:
        state = self._calls.pop(call, None)
        if state is None or not self._started:
            return
        sid = call.call_sid
        if not sid:
            return
        self._note_brain(call, state)
        db = self.db
        assert db is not None and self.writer is not None
        if call.ended_at is not None:
            ended = utcnow() - timedelta(seconds=max(0.0, time.monotonic() - call.ended_at))
        else:
            ended = utcnow()
        tokens_in = tokens_out = 0
        for brain in state.brains:
            usage = getattr(brain, "usage", None)
            tokens_in += int(getattr(usage, "input_tokens", 0) or 0)
            tokens_out += int(getattr(usage, "output_tokens", 0) or 0)
        has_usage = any(getattr(b, "usage", None) is not None for b in state.brains)
        recording = call.recorder.path if call.recorder is not None else None
        if state.fell_back:
            kinds = "+".join(dict.fromkeys(b.kind for b in state.brains))
            self._sql_job(sid, functools.partial(
                db.start_call, sid, direction=call.context.direction,
                from_number=call.context.from_number, to_number=call.context.to_number,
                started_at=state.started_wall, brain=kinds))
            self._sql_job(sid, functools.partial(
                db.audit, "brain_fallback", call_sid=sid, detail={"brains": kinds}))
        self._sql_job(sid, functools.partial(
            db.end_call, sid, outcome=call.end_reason or None, ended_at=ended,
            input_tokens=tokens_in if has_usage else None,
            output_tokens=tokens_out if has_usage else None,
            recording_path=recording))
        self.writer.flush_soon()
        self._session_job(state, sid, functools.partial(self.sessions.delete, sid))

    # -- views -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """/health's "redis" and "store" blocks."""
        s = self.stats
        db = self.db
        store: dict[str, Any] = {
            "backend": db.backend if db is not None else None,
            "database": redact_url(self.database_url),
            "open": self._started,
            "activeCalls": len(self._calls),
            "queuedWrites": self._sql.queued,
            "queuedSessionWrites": self._live.queued,
            "failedWrites": s.failed_jobs,
            "droppedWrites": s.dropped_jobs,
            "writeErrors": db.stats.write_errors if db is not None else 0,
            "lastError": s.last_error,
            "lookups": {"returning": s.lookup_hits, "new": s.lookup_new,
                        "timeouts": s.lookup_timeouts, "errors": s.lookup_errors,
                        "invalidNumbers": s.invalid_numbers},
            "namesCaptured": s.names_captured,
        }
        r = self.retention.stats if self.retention is not None else RetentionStats()
        store["retention"] = {"days": self._config().store.retention_days,
                              "lastPurgeAt": r.last_purge_at or None,
                              "purgedTurns": r.purged_turns,
                              "removedRecordings": r.purged_recordings,
                              "purgedAnalyses": r.purged_analyses,
                              "failures": r.failures}
        w = self.writer
        if w is not None:
            ws = w.stats
            store["turns"] = {"recorded": ws.recorded, "flushed": ws.flushed,
                              "pending": w.pending, "replayed": ws.replayed,
                              "flushFailures": ws.flush_failures,
                              "journalErrors": ws.journal_errors, "dropped": ws.dropped,
                              "lastError": ws.last_error}
        redis = self.sessions.status()
        redis["sessions"]["active"] = sum(1 for st in self._calls.values() if st.sessions)
        return {"redis": redis, "store": store}

    # -- retention -------------------------------------------------------------------------

    async def purge_now(self) -> int:
        """Apply the retention now (no-op when it is 0 or the store is closed)."""
        return await self.retention.purge_now() if self.retention is not None else 0

    async def _watch_loop(self) -> None:
        """Say so when turns stop reaching SQL (the writer only counts), and when they
        flow again; the turns themselves wait in the journal meanwhile."""
        seen = 0
        failing = False
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            writer = self.writer
            if writer is None:
                continue
            failures = writer.stats.flush_failures
            if failures > seen:
                failing = True
                self._note_error(StoreError(writer.stats.last_error),
                                 "turns are not reaching SQL (they wait in the journal)")
            elif failing and writer.pending == 0:
                failing = False
                log.warning("turns reach SQL again", extra={"failures": failures})
            seen = failures

    # -- internals ---------------------------------------------------------------------------

    def _phone(self, raw: str, sid: str) -> str | None:
        if not raw:
            return None
        try:
            return normalize_phone(raw)
        except InvalidPhoneNumber as exc:
            self.stats.invalid_numbers += 1
            if raw not in self._logged_numbers and len(self._logged_numbers) < MAX_LOGGED_NUMBERS:
                self._logged_numbers.add(raw)
                log.info("no caller memory for this number: %s", exc, extra={"call_sid": sid})
            return None

    def _note_brain(self, call: Call, state: _CallState) -> None:
        brain = call.brain
        if not any(b is brain for b in state.brains):
            state.brains.append(brain)
        if call.fell_back and not state.fell_back:
            state.fell_back = True
            sid = call.call_sid
            self._session_job(state, sid, functools.partial(
                self.sessions.set_flag, sid, "fell_back"))

    def _sql_job(self, sid: str, job: Job) -> None:
        if not self._sql.put(sid, job):
            self._dropped("SQL")

    def _session_job(self, state: _CallState, sid: str, job: Job) -> None:
        if not state.sessions:
            return
        if not self._live.put(sid, job):
            self._dropped("session")

    def _dropped(self, what: str) -> None:
        self.stats.dropped_jobs += 1
        if self.stats.dropped_jobs == 1 or self.stats.dropped_jobs % 1000 == 0:
            log.error("store: %s write queue full, %d writes dropped so far",
                      what, self.stats.dropped_jobs)

    def _job_failed(self, exc: BaseException) -> None:
        self.stats.failed_jobs += 1
        self._note_error(exc, "store write failed; the call goes on")

    def _note_error(self, exc: BaseException, what: str) -> None:
        """Log store failures at most once a minute (unexpected ones always), count all."""
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if not isinstance(exc, StoreError):
            log.error("%s", what, exc_info=exc)
            return
        now = time.monotonic()
        if now >= self._failing_until:
            self._failing_until = now + ERROR_LOG_EVERY_S
            log.error("%s: %s", what, exc)
