"""The one repository API over SQL, and `open_database(url)` that picks its backend.

Callers see `Database` only; SQLite (embedded, the default) and PostgreSQL
(shared by several server processes) implement it with the same semantics,
which the conformance suite in tests/store checks on both. Methods taking a
phone number normalise it to E.164 first (`InvalidPhoneNumber` otherwise), so
one caller is one row however the number was written.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from store.models import AuditEvent, Call, CallDetail, Caller, PurgeCounts, StoreStats, Turn

# Longest caller name kept; longer input is a transcript accident, not a name.
MAX_NAME_LENGTH = 200


class Database(abc.ABC):
    """Async repository. Safe to share between all calls of a process."""

    backend: ClassVar[str]

    def __init__(self) -> None:
        self.stats = StoreStats()

    # lifecycle ---------------------------------------------------------------

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied now (empty: up to date)."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """Highest applied migration, 0 for an empty database."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # callers -----------------------------------------------------------------

    @abc.abstractmethod
    async def get_caller(self, phone: str) -> Caller | None:
        """One indexed lookup; the greeting path races it against its budget."""

    @abc.abstractmethod
    async def upsert_caller_seen(self, phone: str, *, at: datetime | None = None) -> Caller:
        """Count a call from/to `phone`: insert or bump `call_count` and `last_seen`.

        Returns the row after the bump, so `call_count == 1` means a first call.
        """

    @abc.abstractmethod
    async def set_caller_name(self, phone: str, name: str | None) -> Caller:
        """Remember (or with None forget) the caller's name; creates the caller if new.

        The name is stored exactly as given after stripping outer whitespace.
        """

    @abc.abstractmethod
    async def bulk_load_callers(
        self, rows: Iterable[tuple[str, str | None]], *, at: datetime | None = None
    ) -> int:
        """Insert many (E.164 phone, name) rows fast (COPY / one transaction); existing
        phones are left alone. Phones must already be normalised. Returns rows inserted."""

    # calls -------------------------------------------------------------------

    @abc.abstractmethod
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
        """Record a call's start. Idempotent on `call_sid` (webhook retries), and fills
        in a placeholder row created by turns that arrived first."""

    @abc.abstractmethod
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
        """Record the end; token counts are totals (set, not added), None keeps the stored
        value. Returns None when no such call exists."""

    @abc.abstractmethod
    async def list_calls(self, since: datetime | None = None, limit: int = 50) -> list[Call]:
        """Newest first, started at or after `since`."""

    @abc.abstractmethod
    async def get_call(self, call_sid: str) -> CallDetail | None:
        """The call and its turns in `seq` order."""

    # turns -------------------------------------------------------------------

    @abc.abstractmethod
    async def add_turns(self, turns: Sequence[Turn]) -> int:
        """Upsert a batch in one transaction; replaying a batch changes nothing.

        A call_sid without a calls row gets a placeholder ("unknown" direction) so no
        turn is refused; `start_call` fills it in later. Returns len(turns).
        """

    # audit -------------------------------------------------------------------

    @abc.abstractmethod
    async def audit(
        self,
        kind: str,
        *,
        call_sid: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        """Append an audit event; returns its id."""

    @abc.abstractmethod
    async def list_audit(
        self, *, call_sid: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """Newest first."""

    # maintenance -------------------------------------------------------------

    @abc.abstractmethod
    async def purge_older_than(self, days: int, *, now: datetime | None = None) -> PurgeCounts:
        """Retention: delete the turns and unlink the recordings of calls started more than
        `days` days ago. Call rows and audit events stay (they hold no conversation)."""

    @abc.abstractmethod
    async def backup(self, path: str) -> None:
        """Consistent copy while live (SQLite online backup). PostgreSQL: raises StoreError
        pointing at pg_dump."""


def clean_name(name: str | None) -> str | None:
    """The form a caller name is stored in: outer whitespace stripped, bounded."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be text, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise ValueError("name is empty; pass None to forget a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in name:
        raise ValueError("name contains a NUL character")
    return name


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000, got {limit}")
    return limit


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


async def open_database(
    url: str,
    *,
    migrate: bool = True,
    connect_timeout_s: float = 5.0,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
) -> Database:
    """Open the database named by `url` and (by default) bring its schema up to date.

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (parent directory
    created if missing), or `postgresql://user:pass@host:port/db` (query
    parameters such as `?search_path=tenant` become server settings). Raises
    `StoreUnavailable` naming the host or file when it cannot be opened; never
    falls back to another backend on its own.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from store.sqlite import SqliteDatabase

        db: Database = await SqliteDatabase.open(url, timeout_s=connect_timeout_s)
    elif scheme in ("postgresql", "postgres"):
        from store.postgres import PostgresDatabase

        db = await PostgresDatabase.open(
            url,
            timeout_s=connect_timeout_s,
            min_size=pool_min_size,
            max_size=pool_max_size,
        )
    else:
        raise ValueError(
            f"unsupported database URL {redact_url(url)!r}: "
            "use sqlite:///path/file.db or postgresql://user@host:port/db"
        )
    if migrate:
        try:
            await db.migrate()
        except BaseException:
            await db.close()
            raise
    return db


def dedupe_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Last write per (call_sid, seq) wins, as if applied one by one.

    PostgreSQL refuses to update one row twice in a statement, and a replayed
    journal can repeat a turn; collapsing here keeps both backends identical.
    """
    if len(turns) < 2:
        return list(turns)
    last: dict[tuple[str, int], Turn] = {}
    for turn in turns:
        last[(turn.call_sid, turn.seq)] = turn
    return list(last.values()) if len(last) != len(turns) else list(turns)


def storable_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL; replace it (on both backends alike) rather than
    lose a turn whose transcript carried one."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def first_started(turns: Sequence[Turn]) -> dict[str, datetime]:
    """Earliest turn start per call, for placeholder call rows; sorted by call_sid so
    concurrent batches lock rows in the same order."""
    out: dict[str, datetime] = {}
    for turn in turns:
        seen = out.get(turn.call_sid)
        if seen is None or turn.started_at < seen:
            out[turn.call_sid] = turn.started_at
    return dict(sorted(out.items()))
