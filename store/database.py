"""The one repository API over SQL, and `open_database(url)` that picks its backend.

Callers see `Database` only; SQLite (embedded, the default) and PostgreSQL
(shared by several server processes) implement it with the same semantics,
which the conformance suite in tests/store checks on both. Methods taking a
phone number normalise it to E.164 first (`InvalidPhoneNumber` otherwise), so
one caller is one row however the number was written.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from store.models import (
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
    StoreStats,
    Turn,
)
from store.phones import InvalidPhoneNumber, normalize_phone

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

    # leads -------------------------------------------------------------------

    @abc.abstractmethod
    async def upsert_leads(self, rows: Sequence[LeadInput]) -> LeadUpsertResult:
        """Insert or update a batch of leads in one transaction (imports call this per ~1000
        rows). A lead whose stored fields already equal the incoming ones counts as
        unchanged; incoming None never erases a stored value; attributes merge key by key;
        a re-import never touches `status`; a new lead starts "new" and is linked to the
        caller with the same phone, if any. Phones are normalised; a bad one raises
        `InvalidPhoneNumber` and nothing of the batch is written."""

    @abc.abstractmethod
    async def get_lead(self, phone: str) -> Lead | None:
        """The lead with this phone, with `opted_out` and `dnc` derived as of now."""

    @abc.abstractmethod
    async def list_leads(
        self,
        *,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[Lead]:
        """A page of leads ordered by id; pass the last id seen as `after_id` for the next
        page (a cursor, so pages stay stable while rows are added). `since` filters on
        `updated_at`."""

    @abc.abstractmethod
    def iter_leads(self, batch: int = 1000) -> AsyncIterator[Lead]:
        """Every lead by id, fetched `batch` rows at a time (exports of any size in
        bounded memory)."""

    @abc.abstractmethod
    async def set_lead_status(self, phone: str, status: str) -> Lead | None:
        """Move a lead to one of LEAD_STATUSES (ValueError otherwise); None if no lead."""

    @abc.abstractmethod
    async def set_human_takeover(self, phone: str, on: bool) -> Lead | None:
        """A human took (or gave back) the conversation: automated replies must stop while
        it is on. None if no lead."""

    @abc.abstractmethod
    async def delete_lead(self, phone: str) -> bool:
        """Erase the lead with its messages and outbox rows. Consent events and DNC entries
        stay: they are the legal trail, kept even when the person asks to be forgotten."""

    # consent -----------------------------------------------------------------

    @abc.abstractmethod
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
        """Append a consent fact for any phone (a lead or not). An opt_out also moves an
        existing lead's status to "opted_out", in the same transaction; an opt_in moves an
        "opted_out" lead to "replied" (they wrote back), leaving other statuses alone."""

    @abc.abstractmethod
    async def is_opted_out(self, phone: str) -> bool:
        """True when the latest opt_out/opt_in event of this phone is an opt_out."""

    @abc.abstractmethod
    async def list_consent_events(self, phone: str) -> list[ConsentEvent]:
        """The phone's consent trail, oldest first."""

    # do-not-contact list -------------------------------------------------------

    @abc.abstractmethod
    async def dnc_add(self, phones: Sequence[str], reason: str | None = None) -> int:
        """Block these phones on every channel; returns how many were newly added
        (phones already listed, or repeated in `phones`, are ignored)."""

    @abc.abstractmethod
    async def dnc_remove(self, phone: str) -> bool:
        """Unblock; False if the phone was not listed."""

    @abc.abstractmethod
    async def is_dnc(self, phone: str) -> bool:
        """Whether the phone is on the do-not-contact list (every channel)."""

    @abc.abstractmethod
    async def list_dnc(self, limit: int = 1000, after: str = "") -> list[DncEntry]:
        """A page ordered by phone; pass the last phone seen as `after` for the next."""

    # messages ----------------------------------------------------------------

    @abc.abstractmethod
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
        """Store an inbound message. Idempotent on `provider_sid`: a webhook retry with a
        MessageSid already stored returns (that message, False). Also stamps the lead's
        `last_inbound_at` and moves a "new"/"contacted" lead to "replied"."""

    @abc.abstractmethod
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
        """Commit the message row and its outbox row in ONE transaction, before any
        provider call. Idempotent on `idempotency_key`: a repeat returns the existing pair
        and False, so a retried decision never sends twice. `not_before` delays the first
        attempt (quiet hours). The lead's `last_outbound_at` is stamped when the provider
        accepts the send (`outbox_sent`), not here."""

    @abc.abstractmethod
    async def set_message_intent(
        self, message_id: int, intent: str | None, confidence: float | None
    ) -> None:
        """Record what the NLU made of a message."""

    @abc.abstractmethod
    async def unprocessed_inbound(
        self, *, since: datetime, limit: int, channel: str | None = None
    ) -> list[Message]:
        """Inbound messages created at or after `since` with no intent recorded, oldest
        first: stored but never processed (a crash between the commit and the reply work).
        Every processing path records an intent or a marker, so this is the restart's
        to-do list. `channel` narrows it to one channel."""

    @abc.abstractmethod
    async def update_message_status(
        self,
        provider_sid: str,
        status: str,
        *,
        error_code: int | None = None,
        at: datetime | None = None,
    ) -> Message | None:
        """Apply a provider status callback. Every report is appended to
        `status_history`; `status` only moves forward by MESSAGE_STATUS_RANK, so callbacks
        arriving out of order leave the furthest state. None for an unknown sid."""

    @abc.abstractmethod
    async def list_messages(self, phone: str, *, limit: int = 200) -> list[Message]:
        """The phone's latest `limit` messages, oldest first (a thread, as shown)."""

    @abc.abstractmethod
    async def count_outbound(
        self, phone: str, *, since: datetime, purposes: Sequence[str]
    ) -> int:
        """Outbound messages of these purposes queued or sent to `phone` since `since`
        (frequency caps: e.g. 3 marketing texts per 24 h in FL/OK/MD)."""

    @abc.abstractmethod
    async def last_inbound_at(self, phone: str) -> datetime | None:
        """When the phone last wrote to us (the conversation window)."""

    # outbox ------------------------------------------------------------------

    @abc.abstractmethod
    async def claim_outbox(
        self, *, now: datetime, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        """Take up to `limit` due rows (pending, or sending with a lapsed lease, and
        next_attempt_at <= now) and mark them sending with a lease of `lease_s`, counting
        the attempt. On PostgreSQL rows are locked with FOR UPDATE SKIP LOCKED, so several
        processes share the work and no row is handed to two claimers."""

    @abc.abstractmethod
    async def outbox_sent(
        self, item_id: int, provider_sid: str, *, status: str = "sent", at: datetime | None = None
    ) -> None:
        """The provider accepted the send: outbox row sent, the message gets its
        provider_sid and the status the provider answered ("sent", or "queued" for
        Twilio's usual first answer); the lead's `last_outbound_at` is stamped and a "new"
        lead becomes "contacted". A row already closed (sent, failed, cancelled) or
        unknown is left alone and logged."""

    @abc.abstractmethod
    async def outbox_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        """A transient failure: back to pending, due again at `next_attempt_at`."""

    @abc.abstractmethod
    async def outbox_failed(
        self, item_id: int, error: str, error_code: int | None = None
    ) -> None:
        """A permanent failure: outbox row failed, the message status failed."""

    @abc.abstractmethod
    async def outbox_cancel(self, item_id: int, reason: str) -> None:
        """Withdraw an unsent row (opt-out or DNC arrived after it was queued); the message
        status becomes "cancelled". A row already sent stays sent."""

    @abc.abstractmethod
    async def outbox_pending_count(self) -> int:
        """Rows still to send (pending or sending), for /metrics and health."""

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


# Bounds of a lead's fields: longer input is a broken CSV column, not a person's data.
MAX_FIELD_LENGTH = 320  # RFC 5321 caps an address at 254; names and states are far shorter
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY = 100
MAX_ATTRIBUTE_VALUE = 2000


def _lead_field(row: int | None, field: str, value: str | None) -> str | None:
    if value is None:
        return None
    where = f"row {row}: " if row is not None else ""
    if not isinstance(value, str):
        raise ValueError(f"{where}{field} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_FIELD_LENGTH:
        raise ValueError(f"{where}{field} longer than {MAX_FIELD_LENGTH} characters")
    return storable_text(value)


def clean_lead_input(lead: LeadInput, *, row: int | None = None) -> LeadInput:
    """The form a lead is stored in, or ValueError/InvalidPhoneNumber naming the field
    (and `row`, when given). Phone as E.164; blank text counts as not given (a CSV with an
    empty cell must not erase what we know); the state code upper-cased, since quiet-hour
    rules look it up. Importers call this per row to count bad rows before batching."""
    try:
        phone = normalize_phone(lead.phone)
    except InvalidPhoneNumber as exc:
        raise InvalidPhoneNumber(f"row {row}: {exc}" if row is not None else str(exc)) from None
    state = _lead_field(row, "state", lead.state)
    attributes: dict[str, str] = {}
    if len(lead.attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"row {row}: more than {MAX_ATTRIBUTES} attributes")
    for key, value in lead.attributes.items():
        name = _lead_field(row, "attribute name", key)
        if name is None or len(name) > MAX_ATTRIBUTE_KEY:
            raise ValueError(f"row {row}: attribute name {key!r} is empty or too long")
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_VALUE:
            raise ValueError(f"row {row}: attribute {name!r} must be text of at most "
                             f"{MAX_ATTRIBUTE_VALUE} characters")
        if value.strip():
            attributes[name] = storable_text(value.strip())
    return LeadInput(
        phone=phone,
        first_name=_lead_field(row, "first_name", lead.first_name),
        last_name=_lead_field(row, "last_name", lead.last_name),
        email=_lead_field(row, "email", lead.email),
        state=None if state is None else state.upper(),
        attributes=attributes,
        source=_lead_field(row, "source", lead.source),
    )


def check_choice(field: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


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
