"""PostgreSQL backend: asyncpg with a pool, shared by every server process.

Batches go in as one statement over arrays (`unnest`), so a flush of turns is
one round trip however large. Connection loss is `StoreUnavailable`; a write
refused by the server (disk full, read-only replica) is `StoreWriteError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
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
from store.models import AuditEvent, Call, CallDetail, Caller, PurgeCounts, Turn, utc, utcnow
from store.phones import normalize_phone

_CALLER_COLS = "id, phone, name, first_seen, last_seen, call_count"
_CALL_COLS = (
    "id, call_sid, direction, from_number, to_number, status, started_at, answered_at,"
    " ended_at, outcome, recording_path, brain, input_tokens, output_tokens"
)

# The server or the network is gone (as opposed to the server refusing a statement).
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)
# Statement refused for reasons of storage, not of our SQL or data.
_STORAGE_ERRORS = (
    asyncpg.InsufficientResourcesError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.OperatorInterventionError,
)


def describe_target(url: str) -> str:
    """"host:port/database" for messages, never the password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    database = parts.path.lstrip("/") or parts.username or "postgres"
    return f"{host}:{port}/{database}"


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: one round trip per lookup (it doubled the
    caller-lookup latency). Safe because the store sets no session state: no SET, no
    LISTEN, only transaction-scoped advisory locks; asyncpg still rolls back any open
    transaction itself."""


def _caller(row: asyncpg.Record) -> Caller:
    return Caller(row[0], row[1], row[2], row[3], row[4], row[5])


def _call(row: asyncpg.Record) -> Call:
    return Call(*row)


class PostgresDatabase(Database):
    backend = "postgresql"

    def __init__(self, target: str, pool: asyncpg.Pool):
        super().__init__()
        self.target = target
        self._pool = pool

    @classmethod
    async def open(
        cls, url: str, *, timeout_s: float = 5.0, min_size: int = 1, max_size: int = 10
    ) -> PostgresDatabase:
        target = describe_target(url)
        dsn = "postgresql" + url[url.index(":"):]
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, timeout=timeout_s, reset=_no_reset
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {target} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(target, pool)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=5.0)
        except (TimeoutError, *_CONNECTION_ERRORS):
            self._pool.terminate()

    # plumbing ----------------------------------------------------------------

    def _failed(self, exc: BaseException, what: str) -> StoreError:
        self.stats.write_errors += 1
        self.stats.last_write_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _CONNECTION_ERRORS):
            return StoreUnavailable(f"PostgreSQL at {self.target} lost during {what}: {exc}")
        return StoreWriteError(f"PostgreSQL write to {self.target} failed: {exc}")

    @contextlib.asynccontextmanager
    async def _tx(self, what: str = "write") -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn
        except (*_CONNECTION_ERRORS, *_STORAGE_ERRORS) as exc:
            raise self._failed(exc, what) from exc

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(sql, *args)
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.target} unreachable: {exc}") from exc

    # lifecycle ---------------------------------------------------------------

    async def migrate(self) -> list[int]:
        known = migrations.load("postgres")
        done: list[int] = []
        try:
            async with self._tx("migration") as conn:
                # Several processes may start at once: one migrates, the others wait.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('leadline.schema_migrations.'"
                    " || coalesce(current_schema(), '')))"
                )
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                if applied and max(applied) > len(known):
                    raise SchemaTooNew(
                        f"PostgreSQL at {self.target} is at schema version {max(applied)}, "
                        f"this build knows {len(known)}: run the newer leadline"
                    )
                for mig in known:
                    if mig.version in applied:
                        continue
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        mig.version, mig.name,
                    )
                    done.append(mig.version)
        except asyncpg.PostgresError as exc:
            raise StoreError(f"migrating PostgreSQL at {self.target} failed: {exc}") from exc
        return done

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not rows[0][0]:
            return 0
        rows = await self._fetch("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    # callers -----------------------------------------------------------------

    async def get_caller(self, phone: str) -> Caller | None:
        rows = await self._fetch(
            f"SELECT {_CALLER_COLS} FROM callers WHERE phone = $1", normalize_phone(phone)
        )
        return _caller(rows[0]) if rows else None

    async def upsert_caller_seen(self, phone: str, *, at: datetime | None = None) -> Caller:
        e164 = normalize_phone(phone)
        when = utc(at or utcnow())
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "INSERT INTO callers (phone, first_seen, last_seen, call_count)"
                " VALUES ($1, $2, $2, 1)"
                " ON CONFLICT (phone) DO UPDATE SET"
                "  last_seen = greatest(callers.last_seen, excluded.last_seen),"
                "  call_count = callers.call_count + 1"
                f" RETURNING {_CALLER_COLS}",
                e164, when,
            )
        return _caller(row)

    async def set_caller_name(self, phone: str, name: str | None) -> Caller:
        e164 = normalize_phone(phone)
        stored = clean_name(name)
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "INSERT INTO callers (phone, name, first_seen, last_seen, call_count)"
                " VALUES ($1, $2, $3, $3, 0)"
                " ON CONFLICT (phone) DO UPDATE SET name = excluded.name"
                f" RETURNING {_CALLER_COLS}",
                e164, stored, utcnow(),
            )
        return _caller(row)

    async def bulk_load_callers(
        self, rows: Iterable[tuple[str, str | None]], *, at: datetime | None = None
    ) -> int:
        when = utc(at or utcnow())
        async with self._tx("bulk load") as conn:
            await conn.execute(
                "CREATE TEMP TABLE callers_load (phone TEXT, name TEXT) ON COMMIT DROP"
            )
            await conn.copy_records_to_table(
                "callers_load", records=rows, columns=["phone", "name"]
            )
            status = await conn.execute(
                "INSERT INTO callers (phone, name, first_seen, last_seen, call_count)"
                " SELECT DISTINCT ON (phone) phone, name, $1, $1, 0 FROM callers_load"
                " ON CONFLICT (phone) DO NOTHING",
                when,
            )
        return int(status.rsplit(" ", 1)[1])

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
            row = await conn.fetchrow(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, status,"
                " started_at, answered_at, brain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (call_sid) DO UPDATE SET"
                "  direction = excluded.direction,"
                "  from_number = excluded.from_number,"
                "  to_number = excluded.to_number,"
                "  started_at = least(calls.started_at, excluded.started_at),"
                "  status = CASE WHEN calls.ended_at IS NULL"
                "   THEN excluded.status ELSE calls.status END,"
                "  answered_at = coalesce(calls.answered_at, excluded.answered_at),"
                "  brain = coalesce(excluded.brain, calls.brain)"
                f" RETURNING {_CALL_COLS}",
                call_sid, direction, from_number, to_number, status,
                utc(started_at or utcnow()), None if answered_at is None else utc(answered_at),
                brain,
            )
        return _call(row)

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
            row = await conn.fetchrow(
                "UPDATE calls SET status = $1, outcome = coalesce($2, outcome), ended_at = $3,"
                " input_tokens = coalesce($4, input_tokens),"
                " output_tokens = coalesce($5, output_tokens),"
                " recording_path = coalesce($6, recording_path)"
                f" WHERE call_sid = $7 RETURNING {_CALL_COLS}",
                status, outcome, utc(ended_at or utcnow()), input_tokens, output_tokens,
                recording_path, call_sid,
            )
        return None if row is None else _call(row)

    async def list_calls(self, since: datetime | None = None, limit: int = 50) -> list[Call]:
        check_limit(limit)
        if since is None:
            rows = await self._fetch(
                f"SELECT {_CALL_COLS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1",
                limit,
            )
        else:
            rows = await self._fetch(
                f"SELECT {_CALL_COLS} FROM calls WHERE started_at >= $1"
                " ORDER BY started_at DESC, id DESC LIMIT $2",
                utc(since), limit,
            )
        return [_call(r) for r in rows]

    async def get_call(self, call_sid: str) -> CallDetail | None:
        rows = await self._fetch(f"SELECT {_CALL_COLS} FROM calls WHERE call_sid = $1", call_sid)
        if not rows:
            return None
        turns = await self._fetch(
            "SELECT call_sid, seq, role, text, started_at, ended_at FROM turns"
            " WHERE call_sid = $1 ORDER BY seq",
            call_sid,
        )
        return CallDetail(_call(rows[0]), [Turn(*r) for r in turns])

    # turns -------------------------------------------------------------------

    async def add_turns(self, turns: Sequence[Turn]) -> int:
        if not turns:
            return 0
        batch = dedupe_turns(turns)
        first = first_started(batch)
        async with self._tx("turn batch") as conn:
            await conn.execute(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, status,"
                " started_at)"
                " SELECT sid, 'unknown', '', '', 'unknown', at"
                " FROM unnest($1::text[], $2::timestamptz[]) AS u(sid, at)"
                " ON CONFLICT (call_sid) DO NOTHING",
                list(first), [utc(at) for at in first.values()],
            )
            await conn.execute(
                "INSERT INTO turns (call_sid, seq, role, text, started_at, ended_at)"
                " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[],"
                "  $5::timestamptz[], $6::timestamptz[])"
                " ON CONFLICT (call_sid, seq) DO UPDATE SET role = excluded.role,"
                "  text = excluded.text, started_at = excluded.started_at,"
                "  ended_at = excluded.ended_at",
                [t.call_sid for t in batch],
                [t.seq for t in batch],
                [t.role for t in batch],
                [storable_text(t.text) for t in batch],
                [utc(t.started_at) for t in batch],
                [None if t.ended_at is None else utc(t.ended_at) for t in batch],
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
            return int(await conn.fetchval(
                "INSERT INTO audit_events (at, kind, call_sid, detail)"
                " VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
                utc(at or utcnow()), kind, call_sid, encoded,
            ))

    async def list_audit(
        self, *, call_sid: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        check_limit(limit)
        rows = await self._fetch(
            "SELECT id, at, kind, call_sid, detail::text FROM audit_events"
            " WHERE ($1::text IS NULL OR call_sid = $1) AND ($2::text IS NULL OR kind = $2)"
            " ORDER BY at DESC, id DESC LIMIT $3",
            call_sid, kind, limit,
        )
        return [
            AuditEvent(r[0], r[1], r[2], r[3], msgspec.json.decode(r[4])) for r in rows
        ]

    # maintenance -------------------------------------------------------------

    async def purge_older_than(self, days: int, *, now: datetime | None = None) -> PurgeCounts:
        if days < 1:
            raise ValueError(f"retention must be at least 1 day, got {days}")
        cutoff = utc(now or utcnow()) - timedelta(days=days)
        async with self._tx("purge") as conn:
            status = await conn.execute(
                "DELETE FROM turns WHERE call_sid IN"
                " (SELECT call_sid FROM calls WHERE started_at < $1)",
                cutoff,
            )
            # RETURNING shows new values; join the old row to hand back the file paths.
            rows = await conn.fetch(
                "UPDATE calls AS c SET recording_path = NULL"
                " FROM (SELECT id, recording_path FROM calls"
                "  WHERE started_at < $1 AND recording_path IS NOT NULL FOR UPDATE) AS old"
                " WHERE c.id = old.id RETURNING old.recording_path",
                cutoff,
            )
        return PurgeCounts(
            turns=int(status.rsplit(" ", 1)[1]), recordings=sorted(r[0] for r in rows)
        )

    async def backup(self, path: str) -> None:
        raise StoreError(
            f"leadline does not back up PostgreSQL ({self.target}) itself: use "
            f"`pg_dump --format=custom --file {path} <database url>` (or your provider's "
            "snapshots); `db backup` is for the embedded SQLite store"
        )
