"""The one SQL implementation of `Database`, over a small driver and a `Dialect`.

Every query is written here once, in PostgreSQL's spelling; `store/dialect.py`
supplies the phrases SQLite spells differently and the value encodings. A
backend provides only what really differs: the driver (how to read, how to run
a transaction, how to insert a batch), bulk load, the migration lock, backup,
error mapping, opening and closing. The conformance suite in tests/store runs
every method on both backends, so "written once" also means "behaves alike".

Transactions are short and never wait on anything but the database: no
provider call happens inside one (the outbox exists for that). Read-modify-write
steps (status merges) lock their rows with the dialect's `for_update` on
PostgreSQL; SQLite's single writer already serialises them. Lead imports lock
nothing: their merge is repeated in SQL at write time (see `_lead_batch_tail`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from store import migrations
from store.analysis_repo import AnalysisRepoMixin
from store.booking_repo import BookingRepoMixin
from store.campaign_repo import CampaignRepoMixin
from store.database import (
    Database,
    check_choice,
    check_limit,
    clean_lead_input,
    clean_name,
    dedupe_turns,
    first_started,
    storable_text,
)
from store.dialect import Dialect
from store.dialer_repo import DialerRepoMixin
from store.errors import SchemaTooNew, StoreError
from store.models import (
    CONSENT_CHANNELS,
    CONSENT_KINDS,
    LEAD_STATUSES,
    MESSAGE_CHANNELS,
    MESSAGE_PURPOSES,
    MESSAGE_STATUS_RANK,
    AuditEvent,
    Call,
    CallDetail,
    Caller,
    ConsentEvent,
    DncEntry,
    Lead,
    LeadInput,
    LeadUpsertResult,
    Message,
    OutboxItem,
    PurgeCounts,
    Turn,
    utc,
    utcnow,
)
from store.phones import normalize_phone
from store.token_repo import TokenRepoMixin

log = logging.getLogger(__name__)

Row = Sequence[Any]

# Message bodies and error texts are bounded: an SMS is at most 1600 characters, an email
# body we store is the text part; longer input is an attack or a bug, not a message.
MAX_BODY_LENGTH = 100_000
MAX_ERROR_LENGTH = 2000
MAX_KEY_LENGTH = 200

CALLER_COLS = "id, phone, name, first_seen, last_seen, call_count"
CALL_COLS = (
    "id, call_sid, direction, from_number, to_number, status, started_at, answered_at,"
    " ended_at, outcome, recording_path, brain, input_tokens, output_tokens"
)
# Derived columns: the latest opt_out/opt_in event wins; DNC is membership; the caller
# link falls back to a lookup so a caller who first called after the import is found.
LEAD_SELECT = (
    "SELECT l.id, l.phone, l.first_name, l.last_name, l.email, l.state, l.status, l.source,"
    " l.attributes, l.human_takeover,"
    " (SELECT c.kind FROM consent_events c WHERE c.phone = l.phone"
    "  ORDER BY c.at DESC, c.id DESC LIMIT 1),"
    " EXISTS (SELECT 1 FROM dnc d WHERE d.phone = l.phone),"
    " coalesce(l.caller_id, (SELECT k.id FROM callers k WHERE k.phone = l.phone)),"
    " l.created_at, l.updated_at, l.last_inbound_at, l.last_outbound_at"
    " FROM leads l"
)
MESSAGE_COLS = (
    "id, phone, direction, channel, purpose, body, from_addr, to_addr, provider_sid, status,"
    " status_history, error_code, segments, intent, confidence, idempotency_key,"
    " created_at, updated_at"
)
CONSENT_COLS = "id, phone, kind, channel, text, at, source"
OUTBOX_COLS = (
    "id, message_id, idempotency_key, channel, to_addr, from_addr, body, status, attempts,"
    " next_attempt_at, last_error, provider_sid"
)
# What upsert_leads compares and writes; status and created_at are never re-imported.
_LEAD_FIELDS = ("first_name", "last_name", "email", "state", "source")
_LEAD_BATCH_COLUMNS = (
    ("phone", "text"), ("first_name", "text"), ("last_name", "text"), ("email", "text"),
    ("state", "text"), ("source", "text"), ("attributes", "jsonb"), ("caller_id", "bigint"),
    ("status", "text"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
)


def _lead_batch_tail(d: Dialect) -> str:
    """The merge is in SQL as well as in Python: Python decides what changed (the counts)
    and what to send; SQL applies it to the row as it is at write time, so a concurrent
    import of the same phone is merged rather than overwritten, without locking rows."""
    return (
        "ON CONFLICT (phone) DO UPDATE SET"
        " first_name = coalesce(excluded.first_name, leads.first_name),"
        " last_name = coalesce(excluded.last_name, leads.last_name),"
        " email = coalesce(excluded.email, leads.email),"
        " state = coalesce(excluded.state, leads.state),"
        " source = coalesce(excluded.source, leads.source),"
        f" attributes = {d.json_merge('leads.attributes', 'excluded.attributes')},"
        " caller_id = coalesce(leads.caller_id, excluded.caller_id),"
        " updated_at = excluded.updated_at"
    )


_TURN_COLUMNS = (
    ("call_sid", "text"), ("seq", "int"), ("role", "text"), ("text", "text"),
    ("started_at", "timestamptz"), ("ended_at", "timestamptz"),
)
_PLACEHOLDER_CALL_COLUMNS = (
    ("call_sid", "text"), ("direction", "text"), ("from_number", "text"),
    ("to_number", "text"), ("status", "text"), ("started_at", "timestamptz"),
)
# Outbound messages that count against a frequency cap: everything queued or handed to
# the provider; a row withdrawn or refused before it left us reached nobody.
_NOT_SENT = "('cancelled', 'failed')"


class Tx(abc.ABC):
    """One open transaction (or, for reads, the read path) on one driver connection.
    Statements use `$n` parameters; the backend translates them for its driver."""

    __slots__ = ()

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""

    @abc.abstractmethod
    async def insert_rows(
        self, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> int:
        """`head` ("INSERT INTO t (a, b)") + the rows + `tail` as one batch: executemany
        on SQLite, one statement over arrays on PostgreSQL (`types` are its type names)."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def insert_many(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        tail: str = "",
    ) -> int:
        """Insert a batch; `columns` are (name, PostgreSQL type). Returns rows changed."""
        if not rows:
            return 0
        head = f"INSERT INTO {table} ({', '.join(name for name, _ in columns)})"
        return await self.insert_rows(head, [kind for _, kind in columns], rows, tail)


class SqlRepository(AnalysisRepoMixin, BookingRepoMixin, TokenRepoMixin, CampaignRepoMixin,
                    DialerRepoMixin, Database):
    """All of `Database` in SQL. Subclasses give the driver; see the module docstring."""

    dialect: ClassVar[Dialect]
    # Errors of the driver that a failed migration is reported as (a StoreError).
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        # Injected clock: "now" of every write without an explicit time.
        self.clock: Callable[[], datetime] = utcnow

    # the driver ----------------------------------------------------------------

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        """A read outside any transaction (SQLite: the reader connection)."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    @abc.abstractmethod
    def transaction(self, what: str = "write") -> contextlib.AbstractAsyncContextManager[Tx]:
        """A write transaction; storage failures come out as StoreWriteError (counted),
        a lost server as StoreUnavailable. `what` names it in those messages."""

    @abc.abstractmethod
    def describe(self) -> str:
        """"SQLite database <path>" / "PostgreSQL at <host:port/db>", for messages."""

    async def lock_migrations(self, tx: Tx) -> None:
        """Keep two processes from migrating at once (SQLite: BEGIN IMMEDIATE does)."""

    # decoding ------------------------------------------------------------------

    def _caller(self, r: Row) -> Caller:
        dt = self.dialect.dt
        return Caller(r[0], r[1], r[2], dt(r[3]), dt(r[4]), r[5])

    def _call(self, r: Row) -> Call:
        d = self.dialect
        return Call(
            r[0], r[1], r[2], r[3], r[4], r[5], d.dt(r[6]), d.dt_opt(r[7]), d.dt_opt(r[8]),
            r[9], r[10], r[11], r[12], r[13],
        )

    def _turn(self, r: Row) -> Turn:
        d = self.dialect
        return Turn(r[0], r[1], r[2], r[3], d.dt(r[4]), d.dt_opt(r[5]))

    def _lead(self, r: Row) -> Lead:
        d = self.dialect
        return Lead(
            id=r[0], phone=r[1], first_name=r[2], last_name=r[3], email=r[4], state=r[5],
            status=r[6], source=r[7], attributes=d.json_decode(r[8]),
            human_takeover=bool(r[9]), opted_out=r[10] == "opt_out", dnc=bool(r[11]),
            caller_id=r[12], created_at=d.dt(r[13]), updated_at=d.dt(r[14]),
            last_inbound_at=d.dt_opt(r[15]), last_outbound_at=d.dt_opt(r[16]),
        )

    def _message(self, r: Row) -> Message:
        d = self.dialect
        return Message(
            id=r[0], phone=r[1], direction=r[2], channel=r[3], purpose=r[4], body=r[5],
            from_addr=r[6], to_addr=r[7], provider_sid=r[8], status=r[9],
            status_history=d.json_decode(r[10]), error_code=r[11], segments=r[12],
            intent=r[13], confidence=r[14], idempotency_key=r[15], created_at=d.dt(r[16]),
            updated_at=d.dt(r[17]),
        )

    def _consent(self, r: Row) -> ConsentEvent:
        return ConsentEvent(r[0], r[1], r[2], r[3], r[4], self.dialect.dt(r[5]), r[6])

    def _outbox(self, r: Row) -> OutboxItem:
        return OutboxItem(
            id=r[0], message_id=r[1], idempotency_key=r[2], channel=r[3], to_addr=r[4],
            from_addr=r[5], body=r[6], status=r[7], attempts=r[8],
            next_attempt_at=self.dialect.dt(r[9]), last_error=r[10], provider_sid=r[11],
        )

    def _now(self, at: datetime | None = None) -> Any:
        return self.dialect.ts(at or self.clock())

    # lifecycle -----------------------------------------------------------------

    async def migrate(self) -> list[int]:
        d = self.dialect
        known = migrations.load(d.name)
        done: list[int] = []
        try:
            async with self.transaction("migration") as tx:
                await self.lock_migrations(tx)
                await tx.execute(d.migrations_table)
                applied = {r[0] for r in await tx.fetch("SELECT version FROM schema_migrations")}
                if applied and max(applied) > len(known):
                    raise SchemaTooNew(
                        f"{self.describe()} is at schema version {max(applied)}, this build "
                        f"knows {len(known)}: run the newer leadline or restore a backup"
                    )
                for mig in known:
                    if mig.version in applied:
                        continue
                    statements = (
                        [mig.sql] if d.whole_scripts else migrations.split_sqlite(mig.sql)
                    )
                    for statement in statements:
                        await tx.execute(statement)
                    await tx.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        mig.version, mig.name, self._now(),
                    )
                    done.append(mig.version)
        except StoreError:
            raise
        except self.driver_errors as exc:
            raise StoreError(f"migrating {self.describe()} failed: {exc}") from exc
        return done

    async def schema_version(self) -> int:
        row = await self.fetchrow(self.dialect.table_probe, "schema_migrations")
        if row is None or not row[0]:
            return 0
        row = await self.fetchrow("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    # callers -------------------------------------------------------------------

    async def get_caller(self, phone: str) -> Caller | None:
        row = await self.fetchrow(
            f"SELECT {CALLER_COLS} FROM callers WHERE phone = $1", normalize_phone(phone)
        )
        return None if row is None else self._caller(row)

    async def upsert_caller_seen(self, phone: str, *, at: datetime | None = None) -> Caller:
        e164 = normalize_phone(phone)
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "INSERT INTO callers (phone, first_seen, last_seen, call_count)"
                " VALUES ($1, $2, $2, 1)"
                " ON CONFLICT (phone) DO UPDATE SET"
                f"  last_seen = {self.dialect.greatest}(callers.last_seen, excluded.last_seen),"
                "  call_count = callers.call_count + 1"
                f" RETURNING {CALLER_COLS}",
                e164, self._now(at),
            )
        assert row is not None
        return self._caller(row)

    async def set_caller_name(self, phone: str, name: str | None) -> Caller:
        e164 = normalize_phone(phone)
        stored = clean_name(name)
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "INSERT INTO callers (phone, name, first_seen, last_seen, call_count)"
                " VALUES ($1, $2, $3, $3, 0)"
                " ON CONFLICT (phone) DO UPDATE SET name = excluded.name"
                f" RETURNING {CALLER_COLS}",
                e164, stored, self._now(),
            )
        assert row is not None
        return self._caller(row)

    # calls ---------------------------------------------------------------------

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
        d = self.dialect
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, status,"
                " started_at, answered_at, brain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (call_sid) DO UPDATE SET"
                "  direction = excluded.direction,"
                "  from_number = excluded.from_number,"
                "  to_number = excluded.to_number,"
                f"  started_at = {d.least}(calls.started_at, excluded.started_at),"
                "  status = CASE WHEN calls.ended_at IS NULL"
                "   THEN excluded.status ELSE calls.status END,"
                "  answered_at = coalesce(calls.answered_at, excluded.answered_at),"
                "  brain = coalesce(excluded.brain, calls.brain)"
                f" RETURNING {CALL_COLS}",
                call_sid, direction, from_number, to_number, status,
                self._now(started_at), d.ts_opt(answered_at), brain,
            )
        assert row is not None
        return self._call(row)

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
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "UPDATE calls SET status = $1, outcome = coalesce($2, outcome), ended_at = $3,"
                " input_tokens = coalesce($4, input_tokens),"
                " output_tokens = coalesce($5, output_tokens),"
                " recording_path = coalesce($6, recording_path)"
                f" WHERE call_sid = $7 RETURNING {CALL_COLS}",
                status, outcome, self._now(ended_at), input_tokens, output_tokens,
                recording_path, call_sid,
            )
        return None if row is None else self._call(row)

    async def list_calls(self, since: datetime | None = None, limit: int = 50) -> list[Call]:
        check_limit(limit)
        if since is None:
            rows = await self.fetch(
                f"SELECT {CALL_COLS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1",
                limit,
            )
        else:
            rows = await self.fetch(
                f"SELECT {CALL_COLS} FROM calls WHERE started_at >= $1"
                " ORDER BY started_at DESC, id DESC LIMIT $2",
                self.dialect.ts(since), limit,
            )
        return [self._call(r) for r in rows]

    async def get_call(self, call_sid: str) -> CallDetail | None:
        row = await self.fetchrow(f"SELECT {CALL_COLS} FROM calls WHERE call_sid = $1", call_sid)
        if row is None:
            return None
        turns = await self.fetch(
            "SELECT call_sid, seq, role, text, started_at, ended_at FROM turns"
            " WHERE call_sid = $1 ORDER BY seq",
            call_sid,
        )
        return CallDetail(self._call(row), [self._turn(r) for r in turns])

    # turns ---------------------------------------------------------------------

    async def add_turns(self, turns: Sequence[Turn]) -> int:
        if not turns:
            return 0
        d = self.dialect
        batch = dedupe_turns(turns)
        placeholders = [
            (sid, "unknown", "", "", "unknown", d.ts(at))
            for sid, at in first_started(batch).items()
        ]
        rows = [
            (t.call_sid, t.seq, t.role, storable_text(t.text), d.ts(t.started_at),
             d.ts_opt(t.ended_at))
            for t in batch
        ]
        async with self.transaction("turn batch") as tx:
            await tx.insert_many(
                "calls", _PLACEHOLDER_CALL_COLUMNS, placeholders,
                "ON CONFLICT (call_sid) DO NOTHING",
            )
            await tx.insert_many(
                "turns", _TURN_COLUMNS, rows,
                "ON CONFLICT (call_sid, seq) DO UPDATE SET role = excluded.role,"
                " text = excluded.text, started_at = excluded.started_at,"
                " ended_at = excluded.ended_at",
            )
        return len(turns)

    # audit ---------------------------------------------------------------------

    async def audit(
        self,
        kind: str,
        *,
        call_sid: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        d = self.dialect
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "INSERT INTO audit_events (at, kind, call_sid, detail)"
                f" VALUES ($1, $2, $3, $4{d.json_cast}) RETURNING id",
                self._now(at), kind, call_sid, d.json_encode(detail or {}),
            )
        assert row is not None
        return int(row[0])

    async def list_audit(
        self, *, call_sid: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        check_limit(limit)
        where, args = _filters(("call_sid", call_sid), ("kind", kind))
        rows = await self.fetch(
            f"SELECT id, at, kind, call_sid, detail FROM audit_events{where}"
            f" ORDER BY at DESC, id DESC LIMIT ${len(args) + 1}",
            *args, limit,
        )
        d = self.dialect
        return [AuditEvent(r[0], d.dt(r[1]), r[2], r[3], d.json_decode(r[4])) for r in rows]

    # maintenance ---------------------------------------------------------------

    async def purge_older_than(self, days: int, *, now: datetime | None = None) -> PurgeCounts:
        if days < 1:
            raise ValueError(f"retention must be at least 1 day, got {days}")
        cutoff = self.dialect.ts(utc(now or self.clock()) - timedelta(days=days))
        async with self.transaction("purge") as tx:
            turns = await tx.execute(
                "DELETE FROM turns WHERE call_sid IN"
                " (SELECT call_sid FROM calls WHERE started_at < $1)",
                cutoff,
            )
            # RETURNING would show the new NULL: read the paths first, rows locked.
            rows = await tx.fetch(
                "SELECT recording_path FROM calls"
                f" WHERE started_at < $1 AND recording_path IS NOT NULL{self.dialect.for_update}",
                cutoff,
            )
            await tx.execute(
                "UPDATE calls SET recording_path = NULL"
                " WHERE started_at < $1 AND recording_path IS NOT NULL",
                cutoff,
            )
            # The analysis quotes the caller (names, addresses, the problem): it goes
            # with the turns it was made from.
            analyses = await tx.execute("DELETE FROM call_analyses WHERE created_at < $1",
                                        cutoff)
        return PurgeCounts(turns=turns, recordings=sorted(r[0] for r in rows),
                           analyses=analyses)

    # leads ---------------------------------------------------------------------

    async def upsert_leads(self, rows: Sequence[LeadInput]) -> LeadUpsertResult:
        if not rows:
            return LeadUpsertResult(0, 0, 0)
        d = self.dialect
        cleaned = [clean_lead_input(r, row=i) for i, r in enumerate(rows)]
        phones = list(dict.fromkeys(r.phone for r in cleaned))
        now = self._now()
        created = updated = unchanged = 0
        async with self.transaction("lead import") as tx:
            stored = {
                r[0]: {
                    "first_name": r[1], "last_name": r[2], "email": r[3], "state": r[4],
                    "source": r[5], "attributes": d.json_decode(r[6]), "caller_id": r[7],
                }
                for r in await tx.fetch(
                    "SELECT phone, first_name, last_name, email, state, source, attributes,"
                    f" caller_id FROM leads WHERE phone {d.any_of(1, 'text')}",
                    d.list_param(phones),
                )
            }
            callers = {
                r[0]: r[1]
                for r in await tx.fetch(
                    f"SELECT phone, id FROM callers WHERE phone {d.any_of(1, 'text')}",
                    d.list_param(phones),
                )
            }
            # Applied one by one in memory, so a phone twice in a batch behaves as two calls.
            # `state` is the lead as it will be (for the counts); `sent` is only what this
            # batch brings, which the SQL merge applies over the row as it is then.
            state: dict[str, dict[str, Any]] = {}
            sent: dict[str, dict[str, Any]] = {}
            for lead in cleaned:
                current = state.get(lead.phone) or stored.get(lead.phone)
                sent[lead.phone] = _merge_lead(sent.get(lead.phone) or _NO_FIELDS, lead)
                if current is None:
                    created += 1
                    state[lead.phone] = _merge_lead(_NO_FIELDS, lead)
                    continue
                merged = _merge_lead(current, lead)
                if merged == current:
                    unchanged += 1
                else:
                    updated += 1
                state[lead.phone] = merged
            batch = [
                (
                    phone, s["first_name"], s["last_name"], s["email"], s["state"],
                    s["source"], d.json_encode(s["attributes"]), callers.get(phone), "new",
                    now, now,
                )
                for phone, s in sorted(sent.items())
                if state[phone] != stored.get(phone)
                or (stored[phone]["caller_id"] is None and phone in callers)
            ]
            await tx.insert_many("leads", _LEAD_BATCH_COLUMNS, batch, _lead_batch_tail(d))
        return LeadUpsertResult(created, updated, unchanged)

    async def get_lead(self, phone: str) -> Lead | None:
        row = await self.fetchrow(f"{LEAD_SELECT} WHERE l.phone = $1", normalize_phone(phone))
        return None if row is None else self._lead(row)

    async def list_leads(
        self,
        *,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[Lead]:
        check_limit(limit)
        if status is not None:
            check_choice("status", status, LEAD_STATUSES)
        where, args = _filters(
            ("l.status", status),
            ("l.updated_at >=", None if since is None else self.dialect.ts(since)),
            ("l.id >", after_id),
        )
        rows = await self.fetch(
            f"{LEAD_SELECT}{where} ORDER BY l.id LIMIT ${len(args) + 1}", *args, limit
        )
        return [self._lead(r) for r in rows]

    async def iter_leads(self, batch: int = 1000) -> AsyncIterator[Lead]:
        check_limit(batch)
        after = 0
        while True:
            page = await self.list_leads(limit=batch, after_id=after)
            for lead in page:
                yield lead
            if len(page) < batch:
                return
            after = page[-1].id

    async def _update_lead(self, phone: str, assignments: str, *args: Any) -> Lead | None:
        """`UPDATE leads SET <assignments>` ($1 = phone, $2 = now, then `args`), then the
        lead as read back in the same transaction."""
        e164 = normalize_phone(phone)
        async with self.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE leads SET {assignments}, updated_at = $2 WHERE phone = $1",
                e164, self._now(), *args,
            )
            if not changed:
                return None
            row = await tx.fetchrow(f"{LEAD_SELECT} WHERE l.phone = $1", e164)
        return None if row is None else self._lead(row)

    async def set_lead_status(self, phone: str, status: str) -> Lead | None:
        check_choice("status", status, LEAD_STATUSES)
        return await self._update_lead(phone, "status = $3", status)

    async def set_human_takeover(self, phone: str, on: bool) -> Lead | None:
        return await self._update_lead(phone, "human_takeover = $3", bool(on))

    async def delete_lead(self, phone: str) -> bool:
        e164 = normalize_phone(phone)
        async with self.transaction("lead erasure") as tx:
            await tx.execute(
                "DELETE FROM outbox WHERE message_id IN"
                " (SELECT id FROM messages WHERE phone = $1)",
                e164,
            )
            await tx.execute("DELETE FROM messages WHERE phone = $1", e164)
            return await tx.execute("DELETE FROM leads WHERE phone = $1", e164) > 0

    # consent -------------------------------------------------------------------

    async def add_consent_event(
        self,
        phone: str,
        kind: str,
        channel: str,
        text: str,
        *,
        at: datetime | None = None,
        source: str | None = None,
    ) -> ConsentEvent:
        check_choice("kind", kind, CONSENT_KINDS)
        check_choice("channel", channel, CONSENT_CHANNELS)
        e164 = normalize_phone(phone)
        when = self._now(at)
        async with self.transaction("consent event") as tx:
            row = await tx.fetchrow(
                "INSERT INTO consent_events (phone, kind, channel, text, at, source)"
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CONSENT_COLS}",
                e164, kind, channel, _bounded(text, MAX_BODY_LENGTH), when, source,
            )
            # The status mirrors the trail for filters; an opt-in after an opt-out is a
            # reply (they wrote START), not a return to whatever came before.
            if kind == "opt_out":
                await tx.execute(
                    "UPDATE leads SET status = 'opted_out', updated_at = $2 WHERE phone = $1",
                    e164, self._now(),
                )
            else:
                await tx.execute(
                    "UPDATE leads SET status = 'replied', updated_at = $2"
                    " WHERE phone = $1 AND status = 'opted_out'",
                    e164, self._now(),
                )
        assert row is not None
        return self._consent(row)

    async def is_opted_out(self, phone: str) -> bool:
        row = await self.fetchrow(
            "SELECT kind FROM consent_events WHERE phone = $1 ORDER BY at DESC, id DESC LIMIT 1",
            normalize_phone(phone),
        )
        return row is not None and row[0] == "opt_out"

    async def list_consent_events(self, phone: str) -> list[ConsentEvent]:
        rows = await self.fetch(
            f"SELECT {CONSENT_COLS} FROM consent_events WHERE phone = $1 ORDER BY at, id",
            normalize_phone(phone),
        )
        return [self._consent(r) for r in rows]

    # do-not-contact list -------------------------------------------------------

    async def dnc_add(self, phones: Sequence[str], reason: str | None = None) -> int:
        if isinstance(phones, str):
            raise TypeError("dnc_add takes a sequence of phones, not one string")
        unique = sorted({normalize_phone(p) for p in phones})
        if not unique:
            return 0
        now = self._now()
        reason = None if reason is None else _bounded(reason, MAX_ERROR_LENGTH)
        async with self.transaction("dnc add") as tx:
            return await tx.insert_many(
                "dnc",
                (("phone", "text"), ("reason", "text"), ("added_at", "timestamptz")),
                [(p, reason, now) for p in unique],
                "ON CONFLICT (phone) DO NOTHING",
            )

    async def dnc_remove(self, phone: str) -> bool:
        async with self.transaction() as tx:
            return await tx.execute(
                "DELETE FROM dnc WHERE phone = $1", normalize_phone(phone)
            ) > 0

    async def is_dnc(self, phone: str) -> bool:
        return await self.fetchrow(
            "SELECT 1 FROM dnc WHERE phone = $1", normalize_phone(phone)
        ) is not None

    async def list_dnc(self, limit: int = 1000, after: str = "") -> list[DncEntry]:
        check_limit(limit)
        rows = await self.fetch(
            "SELECT phone, reason, added_at FROM dnc WHERE phone > $1 ORDER BY phone LIMIT $2",
            after, limit,
        )
        return [DncEntry(r[0], r[1], self.dialect.dt(r[2])) for r in rows]

    # messages ------------------------------------------------------------------

    async def record_inbound_message(
        self,
        *,
        phone: str,
        channel: str,
        body: str,
        from_addr: str,
        to_addr: str,
        provider_sid: str | None,
        segments: int,
        at: datetime | None = None,
    ) -> tuple[Message, bool]:
        d = self.dialect
        check_choice("channel", channel, MESSAGE_CHANNELS)
        e164 = normalize_phone(phone)
        when = at or self.clock()
        history = d.json_encode([_history_entry("received", when, None)])
        async with self.transaction("inbound message") as tx:
            row = await tx.fetchrow(
                "INSERT INTO messages (phone, direction, channel, purpose, body, from_addr,"
                " to_addr, provider_sid, status, status_history, segments, created_at,"
                " updated_at) VALUES ($1, 'inbound', $2, 'conversation', $3, $4, $5, $6,"
                f" 'received', $7{d.json_cast}, $8, $9, $9)"
                " ON CONFLICT (provider_sid) WHERE provider_sid IS NOT NULL DO NOTHING"
                f" RETURNING {MESSAGE_COLS}",
                e164, channel, _bounded(body, MAX_BODY_LENGTH), from_addr, to_addr,
                _sid(provider_sid), history, _segments(segments), d.ts(when),
            )
            if row is None:
                existing = await tx.fetchrow(
                    f"SELECT {MESSAGE_COLS} FROM messages WHERE provider_sid = $1", provider_sid
                )
                assert existing is not None
                return self._message(existing), False
            await tx.execute(
                "UPDATE leads SET"
                f" last_inbound_at = {d.greatest}(coalesce(last_inbound_at, $2), $2),"
                " status = CASE WHEN status IN ('new', 'contacted') THEN 'replied'"
                " ELSE status END, updated_at = $3 WHERE phone = $1",
                e164, d.ts(when), self._now(),
            )
        return self._message(row), True

    async def queue_outbound_message(
        self,
        *,
        phone: str,
        channel: str,
        purpose: str,
        body: str,
        from_addr: str,
        to_addr: str,
        segments: int,
        idempotency_key: str,
        at: datetime | None = None,
        not_before: datetime | None = None,
    ) -> tuple[Message, OutboxItem, bool]:
        d = self.dialect
        check_choice("channel", channel, MESSAGE_CHANNELS)
        check_choice("purpose", purpose, MESSAGE_PURPOSES)
        key = _key(idempotency_key)
        e164 = normalize_phone(phone)
        when = at or self.clock()
        text = _bounded(body, MAX_BODY_LENGTH)
        history = d.json_encode([_history_entry("pending", when, None)])
        async with self.transaction("outbound message") as tx:
            row = await tx.fetchrow(
                "INSERT INTO messages (phone, direction, channel, purpose, body, from_addr,"
                " to_addr, status, status_history, segments, idempotency_key, created_at,"
                " updated_at) VALUES ($1, 'outbound', $2, $3, $4, $5, $6, 'pending',"
                f" $7{d.json_cast}, $8, $9, $10, $10)"
                " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
                f" RETURNING {MESSAGE_COLS}",
                e164, channel, purpose, text, from_addr, to_addr, history,
                _segments(segments), key, d.ts(when),
            )
            if row is None:
                message = await tx.fetchrow(
                    f"SELECT {MESSAGE_COLS} FROM messages WHERE idempotency_key = $1", key
                )
                item = await tx.fetchrow(
                    f"SELECT {OUTBOX_COLS} FROM outbox WHERE idempotency_key = $1", key
                )
                if message is None or item is None:
                    raise StoreError(f"idempotency key {key!r} has a message but no outbox row")
                return self._message(message), self._outbox(item), False
            item = await tx.fetchrow(
                "INSERT INTO outbox (message_id, idempotency_key, channel, to_addr, from_addr,"
                " body, status, attempts, next_attempt_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8)"
                f" RETURNING {OUTBOX_COLS}",
                row[0], key, channel, to_addr, from_addr, text,
                d.ts(not_before or when), d.ts(when),
            )
        assert item is not None
        return self._message(row), self._outbox(item), True

    async def set_message_intent(
        self, message_id: int, intent: str | None, confidence: float | None
    ) -> None:
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {confidence}")
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE messages SET intent = $2, confidence = $3, updated_at = $4"
                " WHERE id = $1",
                message_id, intent, confidence, self._now(),
            )

    async def unprocessed_inbound(
        self, *, since: datetime, limit: int, channel: str | None = None
    ) -> list[Message]:
        check_limit(limit)
        args: list[Any] = [self.dialect.ts(since), limit]
        narrow = ""
        if channel is not None:
            args.append(check_choice("channel", channel, MESSAGE_CHANNELS))
            narrow = " AND channel = $3"
        rows = await self.fetch(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE direction = 'inbound'"
            f" AND intent IS NULL AND created_at >= $1{narrow}"
            " ORDER BY created_at, id LIMIT $2",
            *args,
        )
        return [self._message(r) for r in rows]

    async def _apply_status(
        self,
        tx: Tx,
        where: str,
        key: Any,
        status: str,
        *,
        at: datetime | None,
        error_code: int | None = None,
        provider_sid: str | None = None,
        force: bool = False,
    ) -> Row | None:
        """Append a status to a message's history and move `status` forward by rank (or
        to `status` at once with `force`, for our own verdicts: failed, cancelled). The
        message is chosen by `where` ("id" or "provider_sid") = `key`."""
        d = self.dialect
        row = await tx.fetchrow(
            f"SELECT status, status_history, error_code FROM messages WHERE {where} = $1"
            f"{d.for_update}",
            key,
        )
        if row is None:
            return None
        current, history, stored_code = row[0], d.json_decode(row[1]), row[2]
        history.append(_history_entry(status, at or self.clock(), error_code))
        rank = MESSAGE_STATUS_RANK.get(status)
        if force or (rank is not None and rank > MESSAGE_STATUS_RANK.get(current, -1)):
            current = status
            if error_code is not None:
                stored_code = error_code
        return await tx.fetchrow(
            f"UPDATE messages SET status = $2, status_history = $3{d.json_cast},"
            " error_code = $4, provider_sid = coalesce($5, provider_sid), updated_at = $6"
            f" WHERE {where} = $1 RETURNING {MESSAGE_COLS}",
            key, current, d.json_encode(history), stored_code, provider_sid, self._now(),
        )

    async def update_message_status(
        self,
        provider_sid: str,
        status: str,
        *,
        error_code: int | None = None,
        at: datetime | None = None,
    ) -> Message | None:
        status = _status(status)
        async with self.transaction("status callback") as tx:
            row = await self._apply_status(
                tx, "provider_sid", provider_sid, status, at=at, error_code=error_code
            )
        if row is not None and status not in MESSAGE_STATUS_RANK:
            log.warning("message %s: unknown status %r kept in history only", row[0], status)
        return None if row is None else self._message(row)

    async def list_messages(self, phone: str, *, limit: int = 200) -> list[Message]:
        check_limit(limit)
        rows = await self.fetch(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE phone = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            normalize_phone(phone), limit,
        )
        return [self._message(r) for r in reversed(rows)]

    async def count_outbound(
        self, phone: str, *, since: datetime, purposes: Sequence[str]
    ) -> int:
        if isinstance(purposes, str):
            raise TypeError("purposes is a sequence of purposes, not one string")
        if not purposes:
            return 0
        d = self.dialect
        row = await self.fetchrow(
            "SELECT count(*) FROM messages WHERE phone = $1 AND direction = 'outbound'"
            f" AND created_at >= $2 AND purpose {d.any_of(3, 'text')}"
            f" AND (provider_sid IS NOT NULL OR status NOT IN {_NOT_SENT})",
            normalize_phone(phone), d.ts(since), d.list_param(list(purposes)),
        )
        return int(row[0]) if row else 0

    async def last_inbound_at(self, phone: str) -> datetime | None:
        row = await self.fetchrow(
            "SELECT max(created_at) FROM messages WHERE phone = $1 AND direction = 'inbound'",
            normalize_phone(phone),
        )
        return None if row is None else self.dialect.dt_opt(row[0])

    # outbox --------------------------------------------------------------------

    async def claim_outbox(
        self, *, now: datetime, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        check_limit(limit)
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        d = self.dialect
        async with self.transaction("outbox claim") as tx:
            rows = await tx.fetch(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " lease_until = $2, updated_at = $1 WHERE id IN (SELECT id FROM outbox"
                " WHERE (status = 'pending' OR (status = 'sending' AND lease_until <= $1))"
                f" AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3"
                f"{d.skip_locked}) RETURNING {OUTBOX_COLS}",
                d.ts(now), d.ts(utc(now) + timedelta(seconds=lease_s)), limit,
            )
        items = [self._outbox(r) for r in rows]
        items.sort(key=lambda i: (i.next_attempt_at, i.id))
        return items

    async def _finish_outbox(
        self, tx: Tx, item_id: int, status: str, error: str | None, provider_sid: str | None
    ) -> int | None:
        """Close an outbox row that is still open (pending/sending); its message id, or
        None (unknown row, or already sent/failed/cancelled: the verdict stands)."""
        row = await tx.fetchrow(
            "UPDATE outbox SET status = $2, last_error = coalesce($3, last_error),"
            " provider_sid = coalesce($4, provider_sid), lease_until = NULL, updated_at = $5"
            " WHERE id = $1 AND status IN ('pending', 'sending') RETURNING message_id",
            item_id, status, error, provider_sid, self._now(),
        )
        if row is None:
            log.warning("outbox row %s is unknown or already closed; %s ignored", item_id, status)
            return None
        return int(row[0])

    async def outbox_sent(
        self, item_id: int, provider_sid: str, *, status: str = "sent", at: datetime | None = None
    ) -> None:
        d = self.dialect
        status = _status(status)
        sid = _sid(provider_sid)
        when = at or self.clock()
        async with self.transaction("outbox sent") as tx:
            message_id = await self._finish_outbox(tx, item_id, "sent", None, sid)
            if message_id is None:
                return
            await self._apply_status(
                tx, "id", message_id, status, at=when, provider_sid=sid
            )
            await tx.execute(
                "UPDATE leads SET"
                f" last_outbound_at = {d.greatest}(coalesce(last_outbound_at, $2), $2),"
                " status = CASE WHEN status = 'new' THEN 'contacted' ELSE status END,"
                " updated_at = $3 WHERE phone = (SELECT phone FROM messages WHERE id = $1)",
                message_id, d.ts(when), self._now(),
            )

    async def outbox_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        async with self.transaction("outbox retry") as tx:
            changed = await tx.execute(
                "UPDATE outbox SET status = 'pending', last_error = $2, next_attempt_at = $3,"
                " lease_until = NULL, updated_at = $4"
                " WHERE id = $1 AND status IN ('pending', 'sending')",
                item_id, _bounded(error, MAX_ERROR_LENGTH), self.dialect.ts(next_attempt_at),
                self._now(),
            )
        if not changed:
            log.warning("outbox row %s is unknown or already closed; retry ignored", item_id)

    async def outbox_failed(
        self, item_id: int, error: str, error_code: int | None = None
    ) -> None:
        async with self.transaction("outbox failed") as tx:
            message_id = await self._finish_outbox(
                tx, item_id, "failed", _bounded(error, MAX_ERROR_LENGTH), None
            )
            if message_id is not None:
                await self._apply_status(
                    tx, "id", message_id, "failed", at=None, error_code=error_code, force=True
                )

    async def outbox_cancel(self, item_id: int, reason: str) -> None:
        async with self.transaction("outbox cancel") as tx:
            message_id = await self._finish_outbox(
                tx, item_id, "cancelled", _bounded(reason, MAX_ERROR_LENGTH), None
            )
            if message_id is not None:
                await self._apply_status(tx, "id", message_id, "cancelled", at=None, force=True)

    async def outbox_pending_count(self) -> int:
        row = await self.fetchrow(
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        )
        return int(row[0]) if row else 0


_NO_FIELDS: dict[str, Any] = {**dict.fromkeys(_LEAD_FIELDS), "attributes": {}}


def _merge_lead(fields: dict[str, Any], lead: LeadInput) -> dict[str, Any]:
    """`fields` with the lead's given values over them (None never erases; attributes
    merge key by key). The caller link is not an imported field: it is kept as is."""
    merged = dict(fields)
    for field in _LEAD_FIELDS:
        value = getattr(lead, field)
        if value is not None:
            merged[field] = value
    merged["attributes"] = {**fields["attributes"], **lead.attributes}
    return merged


def _filters(*pairs: tuple[str, Any]) -> tuple[str, list[Any]]:
    """" WHERE a = $1 AND b >= $2" from (column [operator], value) pairs, skipping None
    values: each query has a plain shape the planner can use an index for."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in pairs:
        if value is None:
            continue
        args.append(value)
        op = "" if column.endswith(("=", ">", "<")) else " ="
        clauses.append(f"{column}{op} ${len(args)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _history_entry(status: str, at: datetime, error_code: int | None) -> dict[str, Any]:
    return {"status": status, "at": utc(at).isoformat(), "error_code": error_code}


def _bounded(text: str, limit: int) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    if len(text) > limit:
        raise ValueError(f"text longer than {limit} characters")
    return storable_text(text)


def _key(key: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency key must be 1..{MAX_KEY_LENGTH} characters of text")
    return key


def _sid(sid: str | None) -> str | None:
    if sid is None:
        return None
    if not isinstance(sid, str) or not sid or len(sid) > MAX_KEY_LENGTH:
        raise ValueError(f"provider sid must be 1..{MAX_KEY_LENGTH} characters of text")
    return sid


def _status(status: str) -> str:
    if not isinstance(status, str) or not status.strip() or len(status) > 40:
        raise ValueError(f"message status must be a short word, got {status!r}")
    return status.strip().lower()


def _segments(segments: int) -> int:
    if not isinstance(segments, int) or isinstance(segments, bool) or not 0 <= segments <= 100:
        raise ValueError(f"segments must be an integer within 0..100, got {segments!r}")
    return segments
