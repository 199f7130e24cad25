"""SQLite backend: the embedded default, one file under ./data/, WAL mode.

Two aiosqlite connections (each is a thread): one writer, serialised by an
asyncio lock so transactions never interleave, and one read-only reader, so a
caller lookup on the greeting path never queues behind a batch of turns
(WAL lets readers run beside the writer). The single writer is also why no
statement here needs row locks: every transaction runs alone.

Times are stored as fixed-width UTC text ('2025-01-31T12:00:00.000000Z'), so
text comparison is time comparison and the file stays readable in `sqlite3`.
All queries live in `store/repository.py`; this module is the driver, the
bulk load (INSERT OR IGNORE in one transaction) and the online backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiosqlite

from store.dialect import SQLITE, Dialect
from store.errors import StoreError, StoreUnavailable, StoreWriteError
from store.repository import Row, SqlRepository, Tx

# Errors that are the data or our SQL, not the disk: let them surface as bugs.
_NOT_STORAGE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def path_from_url(url: str) -> Path:
    """`sqlite:///rel/file.db` → rel/file.db; `sqlite:////abs/file.db` → /abs/file.db."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise ValueError(f"not a sqlite:/// URL: {url!r} (use sqlite:///path/file.db)")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw or raw == ":memory:":
        raise ValueError(f"sqlite URL needs a file path: {url!r}")
    return Path(raw)


class SqliteTx(Tx):
    """The writer connection inside one transaction (or the reader, for reads)."""

    __slots__ = ("conn",)

    def __init__(self, conn: aiosqlite.Connection):
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return list(await self.conn.execute_fetchall(SQLITE.sql(sql), args))

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self.conn.execute(SQLITE.sql(sql), args)
        changed = cur.rowcount
        await cur.close()
        return max(changed, 0)

    async def insert_rows(
        self, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> int:
        before = self.conn.total_changes
        await self.conn.executemany(f"{head} VALUES ({', '.join('?' * len(types))}) {tail}", rows)
        return self.conn.total_changes - before


class SqliteDatabase(SqlRepository):
    backend = "sqlite"
    dialect: ClassVar[Dialect] = SQLITE
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        super().__init__()
        self.path = path
        self._writer = writer
        self._reader = reader
        self._read = SqliteTx(reader)
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

    def describe(self) -> str:
        return f"SQLite database {self.path}"

    # driver ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self, what: str = "write") -> AsyncIterator[SqliteTx]:
        """One write transaction; storage failures become StoreWriteError and are counted."""
        async with self._lock:
            conn = self._writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield SqliteTx(conn)
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
                    raise StoreWriteError(
                        f"SQLite {what} to {self.path} failed: {exc}"
                    ) from exc
                raise

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        try:
            return await self._read.fetch(sql, *args)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite read from {self.path} failed: {exc}") from exc

    # what only SQLite does ---------------------------------------------------

    async def bulk_load_callers(
        self, rows: Iterable[tuple[str, str | None]], *, at: datetime | None = None
    ) -> int:
        when = self._now(at)
        async with self.transaction("bulk load") as tx:
            before = tx.conn.total_changes
            await tx.conn.executemany(
                "INSERT OR IGNORE INTO callers (phone, name, first_seen, last_seen, call_count)"
                " VALUES (?, ?, ?, ?, 0)",
                ((phone, name, when, when) for phone, name in rows),
            )
            return tx.conn.total_changes - before

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
