"""PostgreSQL backend: asyncpg with a pool, shared by every server process.

Batches go in as one statement over arrays (`unnest`), so a flush of turns or a
batch of imported leads is one round trip however large; the caller bulk load
uses COPY into a temporary table. Concurrent writers are other processes, so
read-modify-write steps lock their rows (`FOR UPDATE`), outbox claims skip
rows another process holds (`SKIP LOCKED`), and migrations take an advisory
lock. Connection loss is `StoreUnavailable`; a write refused by the server
(disk full, read-only replica) is `StoreWriteError`. All queries live in
`store/repository.py`; this module is the driver and those few differences.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import asyncpg

from store.dialect import POSTGRES, Dialect
from store.errors import StoreError, StoreUnavailable, StoreWriteError
from store.repository import Row, SqlRepository, Tx

# The server or the network is gone (as opposed to the server refusing a statement).
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # A connection the server dropped mid-protocol (a fast restart terminates every
    # backend) can go back to the pool before its socket is seen closed; the next
    # statement on it fails with this. The pool replaces it: retry, never drop the write.
    asyncpg.exceptions.InternalClientError,
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


def _changed(status: str) -> int:
    """Rows changed, from a command tag ("INSERT 0 5", "UPDATE 3", "CREATE TABLE": 0)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTx(Tx):
    """One pooled connection inside a transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self.conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        return _changed(await self.conn.execute(sql, *args))

    async def insert_rows(
        self, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> int:
        arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, 1))
        columns = (list(column) for column in zip(*rows, strict=True))
        return _changed(
            await self.conn.execute(f"{head} SELECT * FROM unnest({arrays}) {tail}", *columns)
        )


class PostgresDatabase(SqlRepository):
    backend = "postgresql"
    dialect: ClassVar[Dialect] = POSTGRES
    driver_errors = (asyncpg.PostgresError,)

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

    def describe(self) -> str:
        return f"PostgreSQL at {self.target}"

    # driver ------------------------------------------------------------------

    def _failed(self, exc: BaseException, what: str) -> StoreError:
        self.stats.write_errors += 1
        self.stats.last_write_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _CONNECTION_ERRORS):
            return StoreUnavailable(f"PostgreSQL at {self.target} lost during {what}: {exc}")
        return StoreWriteError(f"PostgreSQL {what} to {self.target} failed: {exc}")

    @contextlib.asynccontextmanager
    async def transaction(self, what: str = "write") -> AsyncIterator[PgTx]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield PgTx(conn)
        except (*_CONNECTION_ERRORS, *_STORAGE_ERRORS) as exc:
            raise self._failed(exc, what) from exc

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        try:
            return await self._pool.fetch(sql, *args)
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.target} unreachable: {exc}") from exc

    async def lock_migrations(self, tx: Tx) -> None:
        # Several processes may start at once: one migrates, the others wait.
        await tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('leadline.schema_migrations.'"
            " || coalesce(current_schema(), '')))"
        )

    # what only PostgreSQL does -----------------------------------------------

    async def bulk_load_callers(
        self, rows: Iterable[tuple[str, str | None]], *, at: datetime | None = None
    ) -> int:
        async with self.transaction("bulk load") as tx:
            await tx.conn.execute(
                "CREATE TEMP TABLE callers_load (phone TEXT, name TEXT) ON COMMIT DROP"
            )
            await tx.conn.copy_records_to_table(
                "callers_load", records=rows, columns=["phone", "name"]
            )
            return await tx.execute(
                "INSERT INTO callers (phone, name, first_seen, last_seen, call_count)"
                " SELECT DISTINCT ON (phone) phone, name, $1, $1, 0 FROM callers_load"
                " ON CONFLICT (phone) DO NOTHING",
                self._now(at),
            )

    async def backup(self, path: str) -> None:
        raise StoreError(
            f"leadline does not back up PostgreSQL ({self.target}) itself: use "
            f"`pg_dump --format=custom --file {path} <database url>` (or your provider's "
            "snapshots); `db backup` is for the embedded SQLite store"
        )
