"""The outbound dialer's SQL: dial attempts keyed by job and attempt, their call status.

A mixin of `SqlRepository`, written against its small driver (`fetch`, `fetchrow`,
`transaction`, `dialect`) so it runs unchanged on SQLite and PostgreSQL. The one rule
that matters: `reserve_dial` commits the idempotency key before the provider is asked to
dial, and answers "already there" for a key seen before, so a job the queue delivers
twice (stalled, lock lost, worker killed) never places a second call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from store.dialer_models import DIAL_STATUS_RANK, OUTCOMES, DialRecord
from store.phones import normalize_phone
from store.repo_mixin import RepoMixin

if TYPE_CHECKING:

    from store.repository import Row

DIAL_COLS = (
    "id, dial_key, queue, job_id, attempt, campaign_id, step, phone, caller_id, script,"
    " call_sid, status, answered_by, outcome, detail, error, duration_s, created_at,"
    " dialed_at, answered_at, media_ended_at, ended_at, updated_at"
)
MAX_DIAL_TEXT = 2000
MAX_DETAIL_BYTES = 64_000


def _text(value: str | None, limit: int = MAX_DIAL_TEXT) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")
    return value[:limit]


class DialerRepoMixin(RepoMixin):
    """Dial attempts; see the module docstring. Needs the `SqlRepository` driver."""

    def _dial(self, r: Row) -> DialRecord:
        d = self.dialect
        return DialRecord(
            id=r[0], dial_key=r[1], queue=r[2], job_id=r[3], attempt=r[4], campaign_id=r[5],
            step=r[6], phone=r[7], caller_id=r[8], script=r[9], call_sid=r[10], status=r[11],
            answered_by=r[12], outcome=r[13], detail=d.json_decode(r[14]), error=r[15],
            duration_s=r[16], created_at=d.dt(r[17]), dialed_at=d.dt_opt(r[18]),
            answered_at=d.dt_opt(r[19]), media_ended_at=d.dt_opt(r[20]),
            ended_at=d.dt_opt(r[21]), updated_at=d.dt(r[22]),
        )

    async def reserve_dial(
        self,
        *,
        dial_key: str,
        queue: str,
        job_id: str,
        attempt: int,
        phone: str,
        caller_id: str,
        campaign_id: str | None = None,
        step: int | None = None,
        script: str | None = None,
        at: datetime | None = None,
    ) -> tuple[DialRecord, bool]:
        """The attempt's row, and True if this call created it (go ahead and dial);
        False: the key was there already, the caller attaches to what it holds."""
        if not dial_key or len(dial_key) > 400:
            raise ValueError("dial_key must be 1..400 characters")
        d = self.dialect
        now = d.ts(at or self.clock())
        async with self.transaction("dial reservation") as tx:
            row = await tx.fetchrow(
                "INSERT INTO dialer_calls (dial_key, queue, job_id, attempt, campaign_id, step,"
                " phone, caller_id, script, status, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'reserved', $10, $10)"
                f" ON CONFLICT (dial_key) DO NOTHING RETURNING {DIAL_COLS}",
                dial_key, _text(queue, 200), _text(job_id, 200), attempt,
                _text(campaign_id, 200), step, normalize_phone(phone), _text(caller_id, 64),
                _text(script, 200), now,
            )
            if row is not None:
                return self._dial(row), True
            row = await tx.fetchrow(
                f"SELECT {DIAL_COLS} FROM dialer_calls WHERE dial_key = $1", dial_key
            )
        assert row is not None
        return self._dial(row), False

    async def dial_placed(self, dial_key: str, call_sid: str, *,
                          at: datetime | None = None) -> DialRecord | None:
        """The provider accepted the dial: its call SID, status `queued` (unless a
        callback already moved it on)."""
        d = self.dialect
        async with self.transaction("dial placed") as tx:
            row = await tx.fetchrow(
                "UPDATE dialer_calls SET call_sid = $2, dialed_at = coalesce(dialed_at, $3),"
                " status = CASE WHEN status = 'reserved' THEN 'queued' ELSE status END,"
                f" updated_at = $3 WHERE dial_key = $1 RETURNING {DIAL_COLS}",
                dial_key, _text(call_sid, 64), d.ts(at or self.clock()),
            )
        return None if row is None else self._dial(row)

    async def dial_refused(self, dial_key: str, outcome: str, error: str, *,
                           at: datetime | None = None) -> DialRecord | None:
        """No call was placed for this attempt (the provider refused it): closed with
        `outcome`. A row that already has a call keeps it."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
        d = self.dialect
        now = d.ts(at or self.clock())
        async with self.transaction("dial refused") as tx:
            row = await tx.fetchrow(
                "UPDATE dialer_calls SET status = 'refused', outcome = coalesce(outcome, $2),"
                " error = $3, ended_at = coalesce(ended_at, $4), updated_at = $4"
                f" WHERE dial_key = $1 AND call_sid IS NULL RETURNING {DIAL_COLS}",
                dial_key, outcome, _text(error), now,
            )
        return None if row is None else self._dial(row)

    async def update_dial_status(
        self,
        call_sid: str,
        status: str,
        *,
        at: datetime | None = None,
        duration_s: int | None = None,
        answered_by: str | None = None,
        outcome: str | None = None,
    ) -> DialRecord | None:
        """Apply a status callback. Statuses only move forward (a late `ringing` after
        `in-progress` is ignored) and the first terminal one wins; `answered_at` is the
        first `in-progress`. None: no dial has this call SID (a stranger's callback)."""
        rank = DIAL_STATUS_RANK.get(status)
        if rank is None:
            raise ValueError(f"unknown call status {status!r}")
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        d = self.dialect
        when = at or self.clock()
        async with self.transaction("dial status") as tx:
            row = await tx.fetchrow(
                f"SELECT {DIAL_COLS} FROM dialer_calls WHERE call_sid = $1{d.for_update}",
                call_sid,
            )
            if row is None:
                return None
            current = self._dial(row)
            forward = rank > DIAL_STATUS_RANK.get(current.status, 0)
            new_status = status if forward else current.status
            terminal_now = forward and rank == 9
            row = await tx.fetchrow(
                "UPDATE dialer_calls SET status = $2,"
                " answered_at = CASE WHEN $3 THEN coalesce(answered_at, $4) ELSE answered_at END,"
                " ended_at = CASE WHEN $5 THEN coalesce(ended_at, $4) ELSE ended_at END,"
                " duration_s = coalesce($6, duration_s),"
                " answered_by = coalesce(answered_by, $7),"
                " outcome = CASE WHEN $5 THEN coalesce(outcome, $8) ELSE outcome END,"
                f" updated_at = $9 WHERE call_sid = $1 RETURNING {DIAL_COLS}",
                call_sid, new_status, status == "in-progress", d.ts(when), terminal_now,
                duration_s, _text(answered_by, 64), outcome, d.ts(self.clock()),
            )
        assert row is not None
        return self._dial(row)

    async def set_dial_answered_by(self, call_sid: str, answered_by: str
                                   ) -> DialRecord | None:
        """The answering-machine verdict (AnsweredBy); the first one stands."""
        async with self.transaction("dial amd") as tx:
            row = await tx.fetchrow(
                "UPDATE dialer_calls SET answered_by = coalesce(answered_by, $2),"
                f" updated_at = $3 WHERE call_sid = $1 RETURNING {DIAL_COLS}",
                call_sid, _text(answered_by, 64), self.dialect.ts(self.clock()),
            )
        return None if row is None else self._dial(row)

    async def finish_dial_media(
        self,
        call_sid: str,
        *,
        outcome: str | None,
        detail: Mapping[str, Any],
        at: datetime | None = None,
    ) -> DialRecord | None:
        """The call's conversation ended: what it produced. The first outcome written wins
        (a status-derived `no_answer` can never replace a conversation's, nor the other
        way round); `detail` keys are merged in."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        d = self.dialect
        # None is left out: SQLite's json_patch reads a null as "delete this key".
        body = d.json_encode({k: v for k, v in detail.items() if v is not None})
        if len(body) > MAX_DETAIL_BYTES:
            raise ValueError(f"dial detail larger than {MAX_DETAIL_BYTES} bytes")
        async with self.transaction("dial media end") as tx:
            row = await tx.fetchrow(
                "UPDATE dialer_calls SET outcome = coalesce(outcome, $2),"
                f" detail = {d.json_merge('detail', '$3' + d.json_cast)},"
                " media_ended_at = coalesce(media_ended_at, $4), updated_at = $4"
                f" WHERE call_sid = $1 RETURNING {DIAL_COLS}",
                call_sid, outcome, body, d.ts(at or self.clock()),
            )
        return None if row is None else self._dial(row)

    async def get_dial(self, dial_key: str) -> DialRecord | None:
        row = await self.fetchrow(
            f"SELECT {DIAL_COLS} FROM dialer_calls WHERE dial_key = $1", dial_key
        )
        return None if row is None else self._dial(row)

    async def get_dial_by_call_sid(self, call_sid: str) -> DialRecord | None:
        row = await self.fetchrow(
            f"SELECT {DIAL_COLS} FROM dialer_calls WHERE call_sid = $1", call_sid
        )
        return None if row is None else self._dial(row)

    async def list_dials(self, job_id: str) -> list[DialRecord]:
        rows = await self.fetch(
            f"SELECT {DIAL_COLS} FROM dialer_calls WHERE job_id = $1 ORDER BY id", job_id
        )
        return [self._dial(r) for r in rows]

    async def dial_times(self, phone: str, since: datetime) -> list[datetime]:
        """When this phone was dialed since `since`: the calls count toward the same
        per-24 h caps as texts (the compliance gate's extra contacts)."""
        d = self.dialect
        rows = await self.fetch(
            "SELECT dialed_at FROM dialer_calls WHERE phone = $1 AND dialed_at IS NOT NULL"
            " AND dialed_at >= $2 ORDER BY dialed_at",
            normalize_phone(phone), d.ts(since),
        )
        return [d.dt(r[0]) for r in rows]
