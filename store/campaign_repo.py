"""Campaign storage: campaigns, enrollments and their claim, touches, the email outbox.

A mixin of `SqlRepository`, written once for both backends over `self.fetch/fetchrow`,
`self.transaction()` and `self.dialect` (see store/repository.py for the idiom).

The enrollment row is the scheduler's source of truth: `next_touch` and `due_at` say what
is due and when. A pass claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several processes share the work and no row goes to two claimers at
once; SQLite's single writer serialises claims). The lease lapses if the claimer dies,
and the row is claimed again; the touch it was sending is then deduplicated by its
idempotency key (`touch_key`), so a crash neither loses nor repeats a touch. Advancing an
enrollment is guarded by `next_touch`, so a late second claimer cannot move it twice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from store.campaign_models import (
    ENROLLMENT_STATES,
    TOUCH_KEY_PREFIX,
    CampaignRecord,
    EmailOutboxItem,
    EnrollCounts,
    Enrollment,
    TouchSend,
)
from store.database import check_limit, storable_text
from store.errors import StoreError
from store.models import MESSAGE_PURPOSES, Message, utc
from store.phones import normalize_phone
from store.repo_mixin import RepoMixin

if TYPE_CHECKING:

    pass

log = logging.getLogger(__name__)

Row = Sequence[Any]

_CAMPAIGN_COLS = "id, name, business, definition, paused, created_at, updated_at"
_ENROLLMENT_COLS = (
    "id, campaign_id, phone, state, stop_reason, next_touch, next_channel, due_at,"
    " enrolled_at, last_touch_at, stopped_at"
)
_EMAIL_COLS = (
    "id, message_id, idempotency_key, phone, to_addr, subject, body, purpose, status,"
    " attempts, next_attempt_at, last_error, provider_id"
)
_MESSAGE_COLS = (
    "id, phone, direction, channel, purpose, body, from_addr, to_addr, provider_sid, status,"
    " status_history, error_code, segments, intent, confidence, idempotency_key,"
    " created_at, updated_at"
)
MAX_NAME = 100
MAX_SUBJECT = 998
MAX_EMAIL_BODY = 100_000
MAX_ERROR = 2000


class CampaignRepoMixin(RepoMixin):
    """Campaign methods of the SQL repository (see module docstring)."""

    # decoding ------------------------------------------------------------------

    def _campaign_rec(self, r: Row) -> CampaignRecord:
        d = self.dialect
        return CampaignRecord(r[0], r[1], r[2], d.json_decode(r[3]), bool(r[4]), d.dt(r[5]),
                              d.dt(r[6]))

    def _enrollment(self, r: Row) -> Enrollment:
        d = self.dialect
        return Enrollment(r[0], r[1], r[2], r[3], r[4], r[5], r[6], d.dt_opt(r[7]), d.dt(r[8]),
                          d.dt_opt(r[9]), d.dt_opt(r[10]))

    def _email_item(self, r: Row) -> EmailOutboxItem:
        return EmailOutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                               self.dialect.dt(r[10]), r[11], r[12])

    def _campaign_message(self, r: Row) -> Message:
        d = self.dialect
        return Message(
            id=r[0], phone=r[1], direction=r[2], channel=r[3], purpose=r[4], body=r[5],
            from_addr=r[6], to_addr=r[7], provider_sid=r[8], status=r[9],
            status_history=d.json_decode(r[10]), error_code=r[11], segments=r[12],
            intent=r[13], confidence=r[14], idempotency_key=r[15], created_at=d.dt(r[16]),
            updated_at=d.dt(r[17]),
        )

    def _ts_now(self, at: datetime | None = None) -> Any:
        return self.dialect.ts(at or self.clock())

    # campaigns -----------------------------------------------------------------

    async def save_campaign(self, name: str, business: str,
                            definition: dict[str, Any]) -> tuple[CampaignRecord, bool]:
        """Insert or replace a campaign's definition by name; (record, created). Loading a
        campaign again keeps its enrollments and its paused flag: a fixed typo in a
        template must not restart or resume anyone."""
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"campaign name must be 1..{MAX_NAME} characters")
        d = self.dialect
        now = self._ts_now()
        async with self.transaction("save campaign") as tx:
            old = await tx.fetchrow("SELECT id FROM campaigns WHERE name = $1", name)
            if old is None:
                row = await tx.fetchrow(
                    "INSERT INTO campaigns (name, business, definition, paused, created_at,"
                    f" updated_at) VALUES ($1, $2, $3{d.json_cast}, {d.false}, $4, $4)"
                    " ON CONFLICT (name) DO UPDATE SET business = excluded.business,"
                    " definition = excluded.definition, updated_at = excluded.updated_at"
                    f" RETURNING {_CAMPAIGN_COLS}",
                    name, business, d.json_encode(definition), now)
            else:
                row = await tx.fetchrow(
                    f"UPDATE campaigns SET business = $2, definition = $3{d.json_cast},"
                    f" updated_at = $4 WHERE id = $1 RETURNING {_CAMPAIGN_COLS}",
                    old[0], business, d.json_encode(definition), now)
        assert row is not None
        return self._campaign_rec(row), old is None

    async def get_campaign(self, name: str) -> CampaignRecord | None:
        row = await self.fetchrow(f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE name = $1",
                                  name)
        return None if row is None else self._campaign_rec(row)

    async def get_campaign_by_id(self, campaign_id: int) -> CampaignRecord | None:
        row = await self.fetchrow(f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE id = $1",
                                  campaign_id)
        return None if row is None else self._campaign_rec(row)

    async def list_campaigns(self) -> list[CampaignRecord]:
        rows = await self.fetch(f"SELECT {_CAMPAIGN_COLS} FROM campaigns ORDER BY name")
        return [self._campaign_rec(r) for r in rows]

    async def set_campaign_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume; False when no such campaign. A paused campaign's due touches
        stay due and go out (inside their windows) after resume."""
        d = self.dialect
        async with self.transaction("pause campaign") as tx:
            changed = await tx.execute(
                f"UPDATE campaigns SET paused = {d.true if paused else d.false},"
                " updated_at = $2 WHERE name = $1", name, self._ts_now())
        return changed > 0

    # enrollments ---------------------------------------------------------------

    async def enroll(self, campaign_id: int, phones: Sequence[str], *, due_at: datetime,
                     channel: str, at: datetime | None = None) -> EnrollCounts:
        """Enroll E.164 phones (normalised here) with touch 1 due at `due_at`. A phone
        already enrolled in this campaign, in any state, is left alone and counted as
        `already`: re-enrolling never restarts or duplicates a lead's campaign."""
        d = self.dialect
        clean = list(dict.fromkeys(normalize_phone(p) for p in phones))
        if not clean:
            return EnrollCounts(0, 0)
        now = self._ts_now(at)
        async with self.transaction("enroll") as tx:
            existing = {r[0] for r in await tx.fetch(
                f"SELECT phone FROM enrollments WHERE campaign_id = $1 AND phone"
                f" {d.any_of(2, 'text')}", campaign_id, d.list_param(clean))}
            new = [p for p in clean if p not in existing]
            rows = [(campaign_id, p, "active", 1, channel, d.ts(due_at), now, now) for p in new]
            await tx.insert_many(
                "enrollments",
                (("campaign_id", "bigint"), ("phone", "text"), ("state", "text"),
                 ("next_touch", "int"), ("next_channel", "text"), ("due_at", "timestamptz"),
                 ("enrolled_at", "timestamptz"), ("updated_at", "timestamptz")),
                rows, "ON CONFLICT (campaign_id, phone) DO NOTHING")
        return EnrollCounts(len(new), len(clean) - len(new))

    async def get_enrollment(self, campaign_id: int, phone: str) -> Enrollment | None:
        row = await self.fetchrow(
            f"SELECT {_ENROLLMENT_COLS} FROM enrollments WHERE campaign_id = $1 AND phone = $2",
            campaign_id, normalize_phone(phone))
        return None if row is None else self._enrollment(row)

    async def list_enrollments(self, campaign_id: int, *, limit: int = 1000,
                               after_id: int = 0) -> list[Enrollment]:
        check_limit(limit)
        rows = await self.fetch(
            f"SELECT {_ENROLLMENT_COLS} FROM enrollments WHERE campaign_id = $1 AND id > $2"
            " ORDER BY id LIMIT $3", campaign_id, after_id, limit)
        return [self._enrollment(r) for r in rows]

    async def claim_enrollments(self, *, now: datetime, limit: int, lease_s: float,
                                channels: Sequence[str]) -> list[Enrollment]:
        """Take up to `limit` active enrollments of unpaused campaigns whose next touch is
        due (and on one of `channels`), leasing them for `lease_s`."""
        check_limit(limit)
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        if not channels:
            return []
        d = self.dialect
        async with self.transaction("enrollment claim") as tx:
            rows = await tx.fetch(
                "UPDATE enrollments SET lease_until = $2, updated_at = $1 WHERE id IN ("
                "SELECT id FROM enrollments WHERE state = 'active' AND due_at <= $1"
                " AND (lease_until IS NULL OR lease_until <= $1)"
                f" AND next_channel {d.any_of(4, 'text')}"
                f" AND campaign_id IN (SELECT id FROM campaigns WHERE paused = {d.false})"
                f" ORDER BY due_at, id LIMIT $3{d.skip_locked})"
                f" RETURNING {_ENROLLMENT_COLS}",
                d.ts(now), d.ts(utc(now) + timedelta(seconds=lease_s)), limit,
                d.list_param(list(channels)))
        out = [self._enrollment(r) for r in rows]
        out.sort(key=lambda e: (e.due_at or now, e.id))
        return out

    async def claim_changed_enrollments(self, *, now: datetime, limit: int,
                                        lease_s: float) -> list[Enrollment]:
        """Take up to `limit` active enrollments (of any campaign, due or not) whose lead
        changed since the stop rules last looked — a reply, a status, a takeover, an
        opt-out — or whose phone was put on the DNC list since; lease them and stamp
        `checked_at`, so each change is looked at once."""
        check_limit(limit)
        d = self.dialect
        async with self.transaction("enrollment check claim") as tx:
            rows = await tx.fetch(
                # Stamped with the lead's own change time when that is later than `now`
                # (a pass run for an earlier --now): a change is looked at once, never
                # again and again within one pass.
                "UPDATE enrollments SET lease_until = $2, checked_at = "
                f"{d.greatest}($1, coalesce((SELECT l.updated_at FROM leads l"
                " WHERE l.phone = enrollments.phone), $1)) WHERE id IN ("
                "SELECT e.id FROM enrollments e WHERE e.state = 'active'"
                " AND (e.lease_until IS NULL OR e.lease_until <= $1) AND (EXISTS ("
                "SELECT 1 FROM leads l WHERE l.phone = e.phone"
                " AND l.updated_at > coalesce(e.checked_at, e.enrolled_at))"
                " OR EXISTS (SELECT 1 FROM dnc x WHERE x.phone = e.phone"
                " AND x.added_at > coalesce(e.checked_at, e.enrolled_at)))"
                f" ORDER BY e.id LIMIT $3{d.skip_locked}) RETURNING {_ENROLLMENT_COLS}",
                d.ts(now), d.ts(utc(now) + timedelta(seconds=lease_s)), limit)
        return [self._enrollment(r) for r in rows]

    async def release_enrollment(self, enrollment_id: int) -> None:
        """Give a claim back unchanged (the check found nothing to stop)."""
        async with self.transaction("enrollment release") as tx:
            await tx.execute("UPDATE enrollments SET lease_until = NULL WHERE id = $1",
                             enrollment_id)

    async def due_enrollments(self, *, now: datetime, channel: str,
                              limit: int) -> list[Enrollment]:
        """Due active enrollments on `channel`, without claiming them (what a pass that
        cannot send on that channel reports as skipped; they stay due)."""
        check_limit(limit)
        d = self.dialect
        rows = await self.fetch(
            f"SELECT {_ENROLLMENT_COLS} FROM enrollments WHERE state = 'active'"
            " AND due_at <= $1 AND next_channel = $2"
            f" AND campaign_id IN (SELECT id FROM campaigns WHERE paused = {d.false})"
            " ORDER BY due_at, id LIMIT $3", d.ts(now), channel, limit)
        return [self._enrollment(r) for r in rows]

    async def reschedule_enrollment(self, enrollment_id: int, due_at: datetime) -> None:
        """Release a claim with the same touch due at `due_at` (a deferral, a wait for
        the previous touch to leave, or a skip that keeps it due)."""
        d = self.dialect
        async with self.transaction("enrollment reschedule") as tx:
            await tx.execute(
                "UPDATE enrollments SET due_at = $2, lease_until = NULL, updated_at = $3"
                " WHERE id = $1 AND state = 'active'",
                enrollment_id, d.ts(due_at), self._ts_now())

    async def advance_enrollment(self, e: Enrollment, *, touch: int, channel: str,
                                 variant: int, message_id: int | None, outcome: str,
                                 at: datetime, next_channel: str | None,
                                 next_due_at: datetime | None) -> bool:
        """Record touch `touch` and move the enrollment to the next one (or complete it
        when `next_channel` is None), in one transaction. Guarded by `next_touch`: False
        when another claimer moved it already (nothing is recorded twice)."""
        d = self.dialect
        async with self.transaction("enrollment advance") as tx:
            changed = await tx.execute(
                "UPDATE enrollments SET next_touch = $3, next_channel = $4, due_at = $5,"
                " state = $6, lease_until = NULL, last_touch_at = $7, updated_at = $7"
                " WHERE id = $1 AND next_touch = $2 AND state = 'active'",
                e.id, touch, touch + 1, next_channel or channel, d.ts_opt(next_due_at),
                "active" if next_channel is not None else "completed", d.ts(at))
            if not changed:
                return False
            await tx.execute(
                "INSERT INTO campaign_touches (enrollment_id, campaign_id, phone, touch,"
                " channel, variant, message_id, outcome, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (enrollment_id, touch) DO NOTHING",
                e.id, e.campaign_id, e.phone, touch, channel, variant, message_id, outcome,
                d.ts(at))
        return True

    async def stop_enrollment(self, enrollment_id: int, reason: str,
                              at: datetime | None = None) -> bool:
        """End one enrollment and withdraw its touches still waiting in either outbox."""
        d = self.dialect
        when = d.ts(at or self.clock())
        async with self.transaction("enrollment stop") as tx:
            changed = await tx.execute(
                "UPDATE enrollments SET state = 'stopped', stop_reason = $2, due_at = NULL,"
                " lease_until = NULL, stopped_at = $3, updated_at = $3"
                " WHERE id = $1 AND state = 'active'", enrollment_id, reason, when)
            like = f"{TOUCH_KEY_PREFIX}{enrollment_id}:%"
            await self._cancel_pending(tx, like, None, reason, when)
        return changed > 0

    async def _cancel_pending(self, tx: Any, like: str, phone: str | None, reason: str,
                              when: Any) -> None:
        """Withdraw unsent campaign touches whose key matches `like` (and phone, if given)
        from both outboxes; their messages become "cancelled"."""
        d = self.dialect
        extra, args = ("", [like]) if phone is None else (" AND to_addr = $2", [like, phone])
        ids = [r[0] for r in await tx.fetch(
            "SELECT message_id FROM outbox WHERE status = 'pending' AND idempotency_key"
            f" LIKE $1{extra}", *args)]
        extra = extra.replace("to_addr", "phone")
        ids += [r[0] for r in await tx.fetch(
            "SELECT message_id FROM email_outbox WHERE status = 'pending' AND idempotency_key"
            f" LIKE $1{extra}", *args)]
        if not ids:
            return
        why = f"campaign stopped: {reason}"
        for table in ("outbox", "email_outbox"):
            await tx.execute(
                f"UPDATE {table} SET status = 'cancelled', last_error = $2, updated_at = $3"
                f" WHERE status = 'pending' AND message_id {d.any_of(1, 'bigint')}",
                d.list_param(ids), why, when)
        await tx.execute(
            "UPDATE messages SET status = 'cancelled', updated_at = $2"
            f" WHERE status = 'pending' AND id {d.any_of(1, 'bigint')}",
            d.list_param(ids), when)

    async def stop_campaigns_for(self, phone: str, reason: str,
                                 at: datetime | None = None) -> int:
        """End every active enrollment of `phone` and withdraw its campaign touches still
        waiting in either outbox (an opt-out must stop what is already queued, too).
        Returns the enrollments stopped."""
        d = self.dialect
        e164 = normalize_phone(phone)
        when = d.ts(at or self.clock())
        async with self.transaction("stop campaigns") as tx:
            stopped = await tx.execute(
                "UPDATE enrollments SET state = 'stopped', stop_reason = $2, due_at = NULL,"
                " lease_until = NULL, stopped_at = $3, updated_at = $3"
                " WHERE phone = $1 AND state = 'active'", e164, reason, when)
            await self._cancel_pending(tx, TOUCH_KEY_PREFIX + "%", e164, reason, when)
        return stopped

    async def touch_send(self, message_id: int) -> TouchSend | None:
        """The outbox fate of a touch's message (SMS or email outbox)."""
        d = self.dialect
        row = await self.fetchrow(
            "SELECT status, CASE WHEN status = 'sent' THEN updated_at END FROM outbox"
            " WHERE message_id = $1 UNION ALL"
            " SELECT status, sent_at FROM email_outbox WHERE message_id = $1", message_id)
        if row is None:
            return None
        return TouchSend(row[0], d.dt_opt(row[1]))

    async def last_touch_message(self, enrollment_id: int, touch: int) -> int | None:
        row = await self.fetchrow(
            "SELECT message_id FROM campaign_touches WHERE enrollment_id = $1 AND touch = $2",
            enrollment_id, touch)
        return None if row is None else row[0]

    async def first_inbound_since(self, phone: str, since: datetime) -> datetime | None:
        """When `phone` first wrote to us (any channel) at or after `since`."""
        d = self.dialect
        row = await self.fetchrow(
            "SELECT min(created_at) FROM messages WHERE phone = $1 AND direction = 'inbound'"
            " AND created_at >= $2", normalize_phone(phone), d.ts(since))
        return None if row is None else d.dt_opt(row[0])

    async def enrollment_counts(self) -> dict[str, int]:
        rows = await self.fetch("SELECT state, count(*) FROM enrollments GROUP BY state")
        out = dict.fromkeys(ENROLLMENT_STATES, 0)
        out.update({r[0]: int(r[1]) for r in rows})
        return out

    # email outbox --------------------------------------------------------------

    async def queue_email(self, *, phone: str, to_addr: str, from_addr: str, subject: str,
                          body: str, purpose: str, idempotency_key: str,
                          at: datetime | None = None, not_before: datetime | None = None
                          ) -> tuple[Message, EmailOutboxItem, bool]:
        """Commit the email's message row (channel "email") and its email outbox row in one
        transaction, before any SMTP call. Idempotent on `idempotency_key` like
        `queue_outbound_message`: a repeat returns the stored pair and False."""
        if purpose not in MESSAGE_PURPOSES:
            raise ValueError(f"unknown message purpose {purpose!r}")
        if not idempotency_key or len(idempotency_key) > 200:
            raise ValueError("idempotency key must be 1..200 characters")
        if len(subject) > MAX_SUBJECT or len(body) > MAX_EMAIL_BODY:
            raise ValueError("email subject or body too long")
        d = self.dialect
        e164 = normalize_phone(phone)
        when = at or self.clock()
        history = d.json_encode([{"status": "pending", "at": utc(when).isoformat(),
                                  "error_code": None}])
        text = storable_text(body)
        async with self.transaction("outbound email") as tx:
            row = await tx.fetchrow(
                "INSERT INTO messages (phone, direction, channel, purpose, body, from_addr,"
                " to_addr, status, status_history, segments, idempotency_key, created_at,"
                " updated_at) VALUES ($1, 'outbound', 'email', $2, $3, $4, $5, 'pending',"
                f" $6{d.json_cast}, 1, $7, $8, $8)"
                " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
                f" RETURNING {_MESSAGE_COLS}",
                e164, purpose, text, from_addr, to_addr, history, idempotency_key, d.ts(when))
            if row is None:
                msg = await tx.fetchrow(
                    f"SELECT {_MESSAGE_COLS} FROM messages WHERE idempotency_key = $1",
                    idempotency_key)
                item = await tx.fetchrow(
                    f"SELECT {_EMAIL_COLS} FROM email_outbox WHERE idempotency_key = $1",
                    idempotency_key)
                if msg is None or item is None:
                    raise StoreError(f"idempotency key {idempotency_key!r} is not an email")
                return self._campaign_message(msg), self._email_item(item), False
            item = await tx.fetchrow(
                "INSERT INTO email_outbox (message_id, idempotency_key, phone, to_addr, subject,"
                " body, purpose, status, attempts, next_attempt_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9)"
                f" RETURNING {_EMAIL_COLS}",
                row[0], idempotency_key, e164, to_addr, storable_text(subject), text, purpose,
                d.ts(not_before or when), d.ts(when))
        assert item is not None
        return self._campaign_message(row), self._email_item(item), True

    async def claim_email_outbox(self, *, now: datetime, limit: int,
                                 lease_s: float) -> list[EmailOutboxItem]:
        """Like `claim_outbox`, for email rows."""
        check_limit(limit)
        d = self.dialect
        async with self.transaction("email claim") as tx:
            rows = await tx.fetch(
                "UPDATE email_outbox SET status = 'sending', attempts = attempts + 1,"
                " lease_until = $2, updated_at = $1 WHERE id IN (SELECT id FROM email_outbox"
                " WHERE (status = 'pending' OR (status = 'sending' AND lease_until <= $1))"
                f" AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3"
                f"{d.skip_locked}) RETURNING {_EMAIL_COLS}",
                d.ts(now), d.ts(utc(now) + timedelta(seconds=lease_s)), limit)
        items = [self._email_item(r) for r in rows]
        items.sort(key=lambda i: (i.next_attempt_at, i.id))
        return items

    async def _email_message_status(self, tx: Any, message_id: int, status: str, at: Any,
                                    *, provider_id: str | None = None,
                                    error_code: int | None = None) -> None:
        d = self.dialect
        row = await tx.fetchrow(
            f"SELECT status_history FROM messages WHERE id = $1{d.for_update}", message_id)
        if row is None:
            return
        history = d.json_decode(row[0])
        history.append({"status": status, "at": utc(d.dt(at)).isoformat(),
                        "error_code": error_code})
        await tx.execute(
            f"UPDATE messages SET status = $2, status_history = $3{d.json_cast},"
            " provider_sid = coalesce($4, provider_sid), error_code = coalesce($5, error_code),"
            " updated_at = $6 WHERE id = $1",
            message_id, status, d.json_encode(history), provider_id, error_code, at)

    async def email_sent(self, item_id: int, provider_id: str,
                         at: datetime | None = None) -> None:
        """The SMTP server accepted the mail: row sent, message "sent" with the
        Message-ID as its provider id, the lead's `last_outbound_at` stamped."""
        d = self.dialect
        when = d.ts(at or self.clock())
        async with self.transaction("email sent") as tx:
            row = await tx.fetchrow(
                "UPDATE email_outbox SET status = 'sent', provider_id = $2, sent_at = $3,"
                " lease_until = NULL, updated_at = $3"
                " WHERE id = $1 AND status IN ('pending', 'sending') RETURNING message_id, phone",
                item_id, provider_id, when)
            if row is None:
                log.warning("email outbox row %s unknown or closed; sent ignored", item_id)
                return
            await self._email_message_status(tx, row[0], "sent", when, provider_id=provider_id)
            await tx.execute(
                "UPDATE leads SET"
                f" last_outbound_at = {d.greatest}(coalesce(last_outbound_at, $2), $2),"
                " status = CASE WHEN status = 'new' THEN 'contacted' ELSE status END,"
                " updated_at = $2 WHERE phone = $1", row[1], when)

    async def email_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        d = self.dialect
        async with self.transaction("email retry") as tx:
            await tx.execute(
                "UPDATE email_outbox SET status = 'pending', last_error = $2,"
                " next_attempt_at = $3, lease_until = NULL, updated_at = $4"
                " WHERE id = $1 AND status IN ('pending', 'sending')",
                item_id, error[:MAX_ERROR], d.ts(next_attempt_at), self._ts_now())

    async def email_failed(self, item_id: int, error: str, error_code: int | None = None,
                           *, status: str = "failed") -> None:
        """A permanent refusal (status "failed") or a withdrawal before sending
        ("cancelled"); the message takes the same status."""
        now = self._ts_now()
        async with self.transaction("email failed") as tx:
            row = await tx.fetchrow(
                "UPDATE email_outbox SET status = $4, last_error = $2, lease_until = NULL,"
                " updated_at = $3 WHERE id = $1 AND status IN ('pending', 'sending')"
                " RETURNING message_id", item_id, error[:MAX_ERROR], now, status)
            if row is not None:
                await self._email_message_status(tx, row[0], status, now,
                                                 error_code=error_code)

    async def email_pending_count(self) -> int:
        row = await self.fetchrow(
            "SELECT count(*) FROM email_outbox WHERE status IN ('pending', 'sending')")
        return int(row[0]) if row else 0

    async def record_bounce(self, address: str, *, phone: str | None, code: int | None,
                            reason: str, at: datetime | None = None) -> bool:
        """Remember that mail to `address` bounced for good; False when already known."""
        d = self.dialect
        async with self.transaction("email bounce") as tx:
            row = await tx.fetchrow(
                "INSERT INTO email_bounces (address, phone, code, reason, at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address) DO NOTHING"
                " RETURNING address",
                address.strip().lower(), phone, code, reason[:MAX_ERROR],
                d.ts(at or self.clock()))
        return row is not None

    async def is_bounced(self, address: str) -> bool:
        row = await self.fetchrow("SELECT 1 FROM email_bounces WHERE address = $1",
                                  address.strip().lower())
        return row is not None

    async def lead_phone_by_email(self, address: str) -> str | None:
        """The lead with this email address (case-insensitive); the oldest when several
        leads share one."""
        row = await self.fetchrow(
            "SELECT phone FROM leads WHERE lower(email) = $1 ORDER BY id LIMIT 1",
            address.strip().lower())
        return None if row is None else row[0]

    # secrets -------------------------------------------------------------------

    async def shared_secret(self, name: str, *, nbytes: int = 32) -> str:
        """The process-wide secret `name`, generated and stored on first use; every process
        reads the same value (the first writer wins a race)."""
        row = await self.fetchrow("SELECT value FROM app_secrets WHERE name = $1", name)
        if row is not None:
            return str(row[0])
        async with self.transaction("secret") as tx:
            await tx.execute(
                "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO NOTHING",
                name, secrets.token_urlsafe(nbytes), self._ts_now())
        row = await self.fetchrow("SELECT value FROM app_secrets WHERE name = $1", name)
        assert row is not None
        return str(row[0])

    # reporting -----------------------------------------------------------------

    async def campaign_touch_rows(self, campaign_ids: Sequence[int],
                                  since: datetime | None) -> list[tuple[Any, ...]]:
        """Per (campaign, touch, variant, channel): touches queued, sent (handed to the
        provider), delivered, failed, and segments sent."""
        d = self.dialect
        rows = await self.fetch(
            "SELECT t.campaign_id, t.touch, t.variant, t.channel, count(*),"
            " sum(CASE WHEN m.provider_sid IS NOT NULL THEN 1 ELSE 0 END),"
            " sum(CASE WHEN m.status IN ('delivered', 'read') THEN 1 ELSE 0 END),"
            " sum(CASE WHEN m.status IN ('failed', 'undelivered') THEN 1 ELSE 0 END),"
            " sum(CASE WHEN m.provider_sid IS NOT NULL THEN m.segments ELSE 0 END)"
            " FROM campaign_touches t JOIN messages m ON m.id = t.message_id"
            f" WHERE t.campaign_id {d.any_of(1, 'bigint')} AND t.at >= $2"
            " GROUP BY t.campaign_id, t.touch, t.variant, t.channel",
            d.list_param(list(campaign_ids)), d.ts(since or _EPOCH))
        return [tuple(r) for r in rows]

    async def campaign_lead_rows(self, campaign_ids: Sequence[int],
                                 since: datetime | None) -> list[tuple[Any, ...]]:
        """One row per enrollment: campaign id, phone, state, stop reason, lead status,
        first sent touch time, first reply after it, the touch that reply answered (the
        latest sent before it) and its variant, whether an opt-out came after
        enrolling, and whether an inbound message after the first touch showed interest."""
        d = self.dialect
        sent = "SELECT 1 FROM messages sm WHERE sm.id = t.message_id AND sm.provider_sid IS" \
               " NOT NULL"
        rows = await self.fetch(
            "SELECT f.campaign_id, f.phone, f.state, f.stop_reason, f.status, f.first_at,"
            " f.reply_at,"
            " (SELECT t.touch FROM campaign_touches t WHERE t.enrollment_id = f.id"
            f"  AND t.at <= f.reply_at AND EXISTS ({sent}) ORDER BY t.touch DESC LIMIT 1),"
            " (SELECT t.variant FROM campaign_touches t WHERE t.enrollment_id = f.id"
            f"  AND t.at <= f.reply_at AND EXISTS ({sent}) ORDER BY t.touch DESC LIMIT 1),"
            " f.opted, f.interested_msg"
            " FROM (SELECT e.id, e.campaign_id, e.phone, e.state, e.stop_reason, l.status,"
            "  ft.first_at,"
            "  (SELECT min(i.created_at) FROM messages i WHERE i.phone = e.phone"
            "   AND i.direction = 'inbound' AND i.created_at >= ft.first_at) AS reply_at,"
            "  EXISTS (SELECT 1 FROM consent_events c WHERE c.phone = e.phone"
            "   AND c.kind = 'opt_out' AND c.at >= e.enrolled_at) AS opted,"
            "  EXISTS (SELECT 1 FROM messages i WHERE i.phone = e.phone"
            "   AND i.direction = 'inbound' AND i.intent IN ('interested', 'booking')"
            "   AND i.created_at >= ft.first_at) AS interested_msg"
            "  FROM enrollments e LEFT JOIN leads l ON l.phone = e.phone"
            "  LEFT JOIN (SELECT t.enrollment_id, min(t.at) AS first_at FROM campaign_touches t"
            f"   WHERE t.campaign_id {d.any_of(1, 'bigint')} AND EXISTS ({sent})"
            "   GROUP BY t.enrollment_id) ft ON ft.enrollment_id = e.id"
            f"  WHERE e.campaign_id {d.any_of(1, 'bigint')} AND e.enrolled_at >= $2) f",
            d.list_param(list(campaign_ids)), d.ts(since or _EPOCH))
        return [(r[0], r[1], r[2], r[3], r[4], d.dt_opt(r[5]), d.dt_opt(r[6]), r[7], r[8],
                 bool(r[9]), bool(r[10])) for r in rows]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
