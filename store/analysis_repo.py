"""Call analyses in SQL: one row per finished call, on SQLite and PostgreSQL.

A mixin of `SqlRepository`, written against its small driver (`fetch`, `fetchrow`,
`transaction`, `dialect`). The record itself is built in `agents/analysis` and arrives
here as a JSON-able dict; the store only keeps it, with the few fields lists filter on
as columns. `save_call_analysis` is insert-once: a replayed call end (a duplicate stream
stop, a retried job) keeps the first record and tells the caller it was not new, which
is what keeps the owner's new-lead notice to one per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from store.database import check_limit
from store.repo_mixin import RepoMixin

if TYPE_CHECKING:

    from store.repository import Row

ANALYSIS_COLS = ("call_sid, created_at, direction, outcome, success, priority, new_lead,"
                 " summary, record, notified")
MAX_RECORD_BYTES = 256_000


class StoredAnalysis(msgspec.Struct, frozen=True):
    call_sid: str
    created_at: datetime
    direction: str
    outcome: str
    success: bool
    priority: str
    new_lead: bool
    summary: str
    record: dict[str, Any]
    notified: dict[str, Any]


def _clean(value: Any) -> Any:
    """NUL is no character PostgreSQL text or jsonb can hold: it becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _sid(call_sid: str) -> str:
    if not isinstance(call_sid, str) or not 1 <= len(call_sid) <= 200:
        raise ValueError("call_sid must be 1..200 characters")
    return call_sid


class AnalysisRepoMixin(RepoMixin):
    """Call analyses; see the module docstring. Needs the `SqlRepository` driver."""

    def _analysis(self, r: Row) -> StoredAnalysis:
        d = self.dialect
        return StoredAnalysis(
            call_sid=r[0], created_at=d.dt(r[1]), direction=r[2], outcome=r[3],
            success=bool(r[4]), priority=r[5], new_lead=bool(r[6]), summary=r[7],
            record=d.json_decode(r[8]) if isinstance(r[8], str | bytes) else dict(r[8]),
            notified=d.json_decode(r[9]) if isinstance(r[9], str | bytes) else dict(r[9]))

    async def save_call_analysis(self, record: Mapping[str, Any], *,
                                 at: datetime | None = None) -> bool:
        """Store a call's analysis once; False when the call already has one (kept)."""
        d = self.dialect
        sid = _sid(str(record.get("call_sid", "")))
        record = _clean(record)
        encoded = d.json_encode(record)
        if len(encoded) > MAX_RECORD_BYTES:
            raise ValueError(f"analysis record is {len(encoded)} bytes (max {MAX_RECORD_BYTES})")
        when = at or self.clock()
        async with self.transaction("call analysis") as tx:
            row = await tx.fetchrow(
                f"INSERT INTO call_analyses ({ANALYSIS_COLS}) VALUES ($1, $2, $3, $4, $5, $6,"
                f" $7, $8, $9{d.json_cast}, $10{d.json_cast})"
                " ON CONFLICT (call_sid) DO NOTHING RETURNING call_sid",
                sid, d.ts(when), str(record.get("direction", ""))[:20],
                str(record.get("outcome", ""))[:40], bool(record.get("success")),
                str(record.get("priority", ""))[:10], bool(record.get("new_lead")),
                str(record.get("summary", ""))[:2000],
                encoded, "{}")
        return row is not None

    async def mark_analysis_notified(self, call_sid: str, notified: Mapping[str, Any]) -> None:
        """Merge what the new-lead notice did per channel into the call's row."""
        d = self.dialect
        async with self.transaction("analysis notice") as tx:
            merged = d.json_merge("notified", f"$2{d.json_cast}")
            await tx.execute(f"UPDATE call_analyses SET notified = {merged} WHERE call_sid = $1",
                             _sid(call_sid), d.json_encode(_clean(notified)))

    async def get_call_analysis(self, call_sid: str) -> StoredAnalysis | None:
        row = await self.fetchrow(
            f"SELECT {ANALYSIS_COLS} FROM call_analyses WHERE call_sid = $1", _sid(call_sid))
        return None if row is None else self._analysis(row)

    async def list_call_analyses(self, *, outcome: str | None = None,
                                 success: bool | None = None, limit: int = 50
                                 ) -> list[StoredAnalysis]:
        """Newest first, optionally one outcome and/or one success value."""
        check_limit(limit)
        where, args = [], []
        if outcome is not None:
            args.append(outcome)
            where.append(f"outcome = ${len(args)}")
        if success is not None:
            args.append(success)
            where.append(f"success = ${len(args)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self.fetch(
            f"SELECT {ANALYSIS_COLS} FROM call_analyses{clause}"
            f" ORDER BY created_at DESC, call_sid LIMIT ${len(args) + 1}", *args, limit)
        return [self._analysis(r) for r in rows]
