"""SQLite backend: the embedded default, one file under ./data/, WAL mode.

Two aiosqlite connections (each is a thread): one writer, serialised by an
asyncio lock so transactions never interleave, and one read-only reader, so a
caller lookup on the greeting path never queues behind a batch of turns
(WAL lets readers run beside the writer).

Times are stored as fixed-width UTC text ('2025-01-31T12:00:00.000000Z'), so
text comparison is time comparison and the file stays readable in `sqlite3`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosqlite
import msgspec

from store import migrations
from store.database import (
    Database,
    check_limit,
    clean_name,
    dedupe_turns,
    first_started,
    storable_text,
)
from store.errors import SchemaTooNew, StoreError, StoreUnavailable, StoreWriteError
from store.models import (
    AuditEvent,
    Call,
    CallDetail,
    Caller,
    PurgeCounts,
    Turn,
    utc,
    utcnow,
)
from store.phones import normalize_phone

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_CALLER_COLS = "id, phone, name, first_seen, last_seen, call_count"
_CALL_COLS = (
    "id, call_sid, direction, from_number, to_number, status, started_at, answered_at,"
    " ended_at, outcome, recording_path, brain, input_tokens, output_tokens"
)

# Errors that are the data or our SQL, not the disk: let them surface as bugs.
_NOT_STORAGE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _ts(at: datetime) -> str:
    return utc(at).strftime(_TS_FORMAT)


def _ts_opt(at: datetime | None) -> str | None:
    return None if at is None else _ts(at)


def _dt(text: str) -> datetime:
    # fromisoformat reads the trailing "Z" as UTC; ~30x faster than strptime.
    return datetime.fromisoformat(text)


def _dt_opt(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


def _caller(row: Sequence[Any]) -> Caller:
    return Caller(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]), row[5])


def _call(row: Sequence[Any]) -> Call:
    return Call(
        row[0], row[1], row[2], row[3], row[4], row[5], _dt(row[6]), _dt_opt(row[7]),
        _dt_opt(row[8]), row[9], row[10], row[11], row[12], row[13],
    )


def path_from_url(url: str) -> Path:
    """`sqlite:///rel/file.db` → rel/file.db; `sqlite:////abs/file.db` → /abs/file.db."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise ValueError(f"not a sqlite:/// URL: {url!r} (use sqlite:///path/file.db)")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw or raw == ":memory:":
        raise ValueError(f"sqlite URL needs a file path: {url!r}")
    return Path(raw)


class SqliteDatabase(Database):
    backend = "sqlite"

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        super().__init__()
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        # What SQLite granted for "PRAGMA journal_mode=WAL" ("wal" unless the FS refuses).
        self.journal_mode = "unknown"

    @classmethod
    async def open(cls, url: str, *, timeout_s: float = 5.0) -> SqliteDatabase:
        path = path_from_url(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"SQLite database {path}: cannot create its directory: {exc}"
            ) from exc
        writer = reader = None
        try:
            writer = await aiosqlite.connect(path, timeout=timeout_s, isolation_level=None)
            mode = await writer.execute_fetchall("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=NORMAL")
            await writer.execute("PRAGMA foreign_keys=ON")
            reader = await aiosqlite.connect(path, timeout=timeout_s, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")
        except (sqlite3.Error, OSError) as exc:
            for conn in (reader, writer):
                if conn is not None:
                    await conn.close()
            raise StoreUnavailable(f"SQLite database {path}: cannot open: {exc}") from exc
        db = cls(path, writer, reader)
        db.journal_mode = str(next(iter(mode))[0]) if mode else "unknown"
        return db

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            with contextlib.suppress(Exception):
                await conn.close()

    # plumbing ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; storage failures become StoreWriteError and are counted."""
        async with self._lock:
            conn = self._writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                # Unconditionally: a task cancelled while BEGIN was queued on the
                # connection's thread sees in_transaction False, yet BEGIN runs after;
                # the ROLLBACK queued behind it keeps the next BEGIN from failing.
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, _NOT_STORAGE):
                    self.stats.write_errors += 1
                    self.stats.last_write_error = f"{type(exc).__name__}: {exc}"
                    raise StoreWriteError(f"SQLite write to {self.path} failed: {exc}") from exc
                raise

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Any]:
        try:
            return await self._reader.execute_fetchall(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite read from {self.path} failed: {exc}") from exc

    # lifecycle ---------------------------------------------------------------

    async def migrate(self) -> list[int]:
        known = migrations.load("sqlite")
        done: list[int] = []
        async with self._tx() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {r[0] for r in await conn.execute_fetchall(
                "SELECT version FROM schema_migrations")}
            if applied and max(applied) > len(known):
                raise SchemaTooNew(
                    f"{self.path} is at schema version {max(applied)}, this build knows "
                    f"{len(known)}: run the newer leadline or restore a backup"
                )
            for mig in known:
                if mig.version in applied:
                    continue
                for statement in migrations.split_sqlite(mig.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (mig.version, mig.name, _ts(utcnow())),
                )
                done.append(mig.version)
        return done

    async def schema_version(self) -> int:
        rows = list(await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ))
        if not rows:
            return 0
        rows = list(await self._read("SELECT coalesce(max(version), 0) FROM schema_migrations"))
        return int(rows[0][0])

    # callers -----------------------------------------------------------------

    async def get_caller(self, phone: str) -> Caller | None:
        rows = await self._read(
            f"SELECT {_CALLER_COLS} FROM callers WHERE phone = ?", (normalize_phone(phone),)
        )
        for row in rows:
            return _caller(row)
        return None

    async def upsert_caller_seen(self, phone: str, *, at: datetime | None = None) -> Caller:
        e164 = normalize_phone(phone)
        when = _ts(at or utcnow())
        async with self._tx() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO callers (phone, first_seen, last_seen, call_count)"
                " VALUES (?, ?, ?, 1)"
                " ON CONFLICT (phone) DO UPDATE SET"
                "  last_seen = max(callers.last_seen, excluded.last_seen),"
                "  call_count = callers.call_count + 1"
                f" RETURNING {_CALLER_COLS}",
                (e164, when, when),
            )
        return _caller(next(iter(rows)))

    async def set_caller_name(self, phone: str, name: str | None) -> Caller:
        e164 = normalize_phone(phone)
        stored = clean_name(name)
        when = _ts(utcnow())
        async with self._tx() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO callers (phone, name, first_seen, last_seen, call_count)"
                " VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (phone) DO UPDATE SET name = excluded.name"
                f" RETURNING {_CALLER_COLS}",
                (e164, stored, when, when),
            )
        return _caller(next(iter(rows)))

    async def bulk_load_callers(
        self, rows: Iterable[tuple[str, str | None]], *, at: datetime | None = None
    ) -> int:
        when = _ts(at or utcnow())
        async with self._tx() as conn:
            before = conn.total_changes
            await conn.executemany(
                "INSERT OR IGNORE INTO callers (phone, name, first_seen, last_seen, call_count)"
                " VALUES (?, ?, ?, ?, 0)",
                ((phone, name, when, when) for phone, name in rows),
            )
            return conn.total_changes - before

    # calls -------------------------------------------------------------------

    async def start_call(
        self,
        call_sid: str,
        *,
        direction: str,
        from_number: str,
        to_number: str,
        status: str = "in-progress",
        started_at: datetime | None = None,
        answered_at: datetime | None = None,
        brain: str | None = None,
    ) -> Call:
        async with self._tx() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, status,"
                " started_at, answered_at, brain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (call_sid) DO UPDATE SET"
                "  direction = excluded.direction,"
                "  from_number = excluded.from_number,"
                "  to_number = excluded.to_number,"
                "  started_at = min(calls.started_at, excluded.started_at),"
                "  status = CASE WHEN calls.ended_at IS NULL"
                "   THEN excluded.status ELSE calls.status END,"
                "  answered_at = coalesce(calls.answered_at, excluded.answered_at),"
                "  brain = coalesce(excluded.brain, calls.brain)"
                f" RETURNING {_CALL_COLS}",
                (
                    call_sid, direction, from_number, to_number, status,
                    _ts(started_at or utcnow()), _ts_opt(answered_at), brain,
                ),
            )
        return _call(next(iter(rows)))

    async def end_call(
        self,
        call_sid: str,
        *,
        outcome: str | None = None,
        status: str = "completed",
        ended_at: datetime | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        recording_path: str | None = None,
    ) -> Call | None:
        async with self._tx() as conn:
            rows = await conn.execute_fetchall(
                "UPDATE calls SET status = ?, outcome = coalesce(?, outcome), ended_at = ?,"
                " input_tokens = coalesce(?, input_tokens),"
                " output_tokens = coalesce(?, output_tokens),"
                " recording_path = coalesce(?, recording_path)"
                f" WHERE call_sid = ? RETURNING {_CALL_COLS}",
                (
                    status, outcome, _ts(ended_at or utcnow()), input_tokens, output_tokens,
                    recording_path, call_sid,
                ),
            )
        for row in rows:
            return _call(row)
        return None

    async def list_calls(self, since: datetime | None = None, limit: int = 50) -> list[Call]:
        check_limit(limit)
        if since is None:
            rows = await self._read(
                f"SELECT {_CALL_COLS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = await self._read(
                f"SELECT {_CALL_COLS} FROM calls WHERE started_at >= ?"
                " ORDER BY started_at DESC, id DESC LIMIT ?",
                (_ts(since), limit),
            )
        return [_call(r) for r in rows]

    async def get_call(self, call_sid: str) -> CallDetail | None:
        rows = list(await self._read(
            f"SELECT {_CALL_COLS} FROM calls WHERE call_sid = ?", (call_sid,)
        ))
        if not rows:
            return None
        turns = await self._read(
            "SELECT call_sid, seq, role, text, started_at, ended_at FROM turns"
            " WHERE call_sid = ? ORDER BY seq",
            (call_sid,),
        )
        return CallDetail(
            _call(rows[0]),
            [Turn(r[0], r[1], r[2], r[3], _dt(r[4]), _dt_opt(r[5])) for r in turns],
        )

    # turns -------------------------------------------------------------------

    async def add_turns(self, turns: Sequence[Turn]) -> int:
        if not turns:
            return 0
        batch = dedupe_turns(turns)
        placeholders = [(sid, _ts(at)) for sid, at in first_started(batch).items()]
        params = [
            (t.call_sid, t.seq, t.role, storable_text(t.text), _ts(t.started_at),
             _ts_opt(t.ended_at))
            for t in batch
        ]
        async with self._tx() as conn:
            await conn.executemany(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, status,"
                " started_at) VALUES (?, 'unknown', '', '', 'unknown', ?)"
                " ON CONFLICT (call_sid) DO NOTHING",
                placeholders,
            )
            await conn.executemany(
                "INSERT INTO turns (call_sid, seq, role, text, started_at, ended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (call_sid, seq) DO UPDATE SET role = excluded.role,"
                "  text = excluded.text, started_at = excluded.started_at,"
                "  ended_at = excluded.ended_at",
                params,
            )
        return len(turns)

    # audit -------------------------------------------------------------------

    async def audit(
        self,
        kind: str,
        *,
        call_sid: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        encoded = msgspec.json.encode(detail or {}).decode()
        async with self._tx() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO audit_events (at, kind, call_sid, detail) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (_ts(at or utcnow()), kind, call_sid, encoded),
            )
        return int(next(iter(rows))[0])

    async def list_audit(
        self, *, call_sid: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        check_limit(limit)
        rows = await self._read(
            "SELECT id, at, kind, call_sid, detail FROM audit_events"
            " WHERE (?1 IS NULL OR call_sid = ?1) AND (?2 IS NULL OR kind = ?2)"
            " ORDER BY at DESC, id DESC LIMIT ?3",
            (call_sid, kind, limit),
        )
        return [
            AuditEvent(r[0], _dt(r[1]), r[2], r[3], msgspec.json.decode(r[4])) for r in rows
        ]

    # maintenance -------------------------------------------------------------

    async def purge_older_than(self, days: int, *, now: datetime | None = None) -> PurgeCounts:
        if days < 1:
            raise ValueError(f"retention must be at least 1 day, got {days}")
        cutoff = _ts((now or utcnow()) - timedelta(days=days))
        async with self._tx() as conn:
            cur = await conn.execute(
                "DELETE FROM turns WHERE call_sid IN"
                " (SELECT call_sid FROM calls WHERE started_at < ?)",
                (cutoff,),
            )
            turns = cur.rowcount
            await cur.close()
            # RETURNING would show the new NULL: read the paths first (same transaction).
            rows = await conn.execute_fetchall(
                "SELECT recording_path FROM calls"
                " WHERE started_at < ? AND recording_path IS NOT NULL",
                (cutoff,),
            )
            await conn.execute(
                "UPDATE calls SET recording_path = NULL"
                " WHERE started_at < ? AND recording_path IS NOT NULL",
                (cutoff,),
            )
        return PurgeCounts(turns=turns, recordings=sorted(r[0] for r in rows))

    async def backup(self, path: str) -> None:
        """Online backup into `path` (replaced atomically: a reader never sees half a file)."""
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            dest = await asyncio.to_thread(_open_backup_target, target, partial, self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot write backup {target}: {exc}") from exc
        try:
            await self._reader.backup(dest)
        except sqlite3.Error as exc:
            await asyncio.to_thread(_discard, dest, partial)
            raise StoreError(f"backup of {self.path} to {target} failed: {exc}") from exc
        await asyncio.to_thread(_finish_backup, dest, partial, target)


def _open_backup_target(target: Path, partial: Path, live: Path) -> sqlite3.Connection:
    if target.resolve() == live.resolve():
        raise ValueError(f"backup target {target} is the live database itself")
    partial.unlink(missing_ok=True)
    return sqlite3.connect(partial, check_same_thread=False)


def _discard(dest: sqlite3.Connection, partial: Path) -> None:
    dest.close()
    partial.unlink(missing_ok=True)


def _finish_backup(dest: sqlite3.Connection, partial: Path, target: Path) -> None:
    dest.close()
    os.replace(partial, target)
