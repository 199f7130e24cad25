"""The admin API's SQL: hashed bearer tokens, and keyset pages over leads, calls,
messages, campaigns and the DNC list with the filters the API offers.

Mixins of `SqlRepository`, written against its small driver (`fetch`, `fetchrow`,
`transaction`, `dialect`) so they run unchanged on SQLite and PostgreSQL.

Tokens: only `sha256(token)` is stored. Tokens are 32 random bytes, so a fast hash is
safe (there is nothing to guess), and the database never holds a usable credential.
The lookup goes through the unique index on the hash; the stored hash is then compared
with `hmac.compare_digest` so the final check takes the same time whatever matched.

Pages: every list is ordered by a unique key (the row id, or the phone for DNC) and
continues "after" the last key seen, so a page stays stable while rows are added and a
cursor never skips or repeats a row. One extra row is read to know whether more follow.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from store.database import check_choice
from store.models import LEAD_STATUSES, Call, DncEntry, Lead, Message
from store.repo_mixin import RepoMixin
from store.token_models import API_ROLES, ApiToken, Page

if TYPE_CHECKING:
    from collections.abc import Callable

    from store.campaign_models import CampaignRecord
    from store.repository import Row

TOKEN_COLS = "id, role, label, created_at, expires_at, revoked_at, last_used_at"
TOKEN_BYTES = 32
TOKEN_PREFIX = "ll_"
MAX_LABEL = 200
MAX_PAGE = 1000
# A token's last use is written at most this often: a read-heavy client must not turn
# every GET into a write.
LAST_USED_EVERY_S = 60.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    return limit


class _Where:
    """WHERE clauses with numbered parameters, built in order."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, value: Any) -> None:
        """`clause` holds `{}` where the parameter goes; a None value adds nothing."""
        if value is None:
            return
        self.args.append(value)
        self.clauses.append(clause.format(f"${len(self.args)}"))

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""

    def next_param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


class TokenRepoMixin(RepoMixin):
    """API tokens and the API's pages; see the module docstring."""

    if TYPE_CHECKING:
        def _lead(self, r: Row) -> Lead: ...
        def _call(self, r: Row) -> Call: ...
        def _message(self, r: Row) -> Message: ...
        def _campaign_rec(self, r: Row) -> CampaignRecord: ...

    def _token(self, r: Row) -> ApiToken:
        d = self.dialect
        return ApiToken(id=r[0], role=r[1], label=r[2], created_at=d.dt(r[3]),
                        expires_at=d.dt_opt(r[4]), revoked_at=d.dt_opt(r[5]),
                        last_used_at=d.dt_opt(r[6]))

    # tokens ----------------------------------------------------------------------

    async def create_api_token(self, role: str, *, label: str | None = None,
                               expires_at: datetime | None = None,
                               at: datetime | None = None) -> tuple[ApiToken, str]:
        """A new token of `role`: its record and the plain token, which is not kept
        anywhere and cannot be shown again."""
        check_choice("role", role, API_ROLES)
        if label is not None and (len(label) > MAX_LABEL or "\x00" in label):
            raise ValueError(f"label must be at most {MAX_LABEL} characters without NUL")
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        d = self.dialect
        async with self.transaction("token creation") as tx:
            row = await tx.fetchrow(
                "INSERT INTO api_tokens (token_hash, role, label, created_at, expires_at)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLS}",
                hash_token(token), role, label, d.ts(at or self.clock()),
                d.ts_opt(expires_at),
            )
        assert row is not None
        return self._token(row), token

    async def authenticate_token(self, token: str, *, at: datetime | None = None
                                 ) -> ApiToken | None:
        """The usable token record for a presented token, or None (unknown, revoked,
        expired). Stamps `last_used_at` at most once a minute."""
        if not token or len(token) > 512:
            return None
        digest = hash_token(token)
        row = await self.fetchrow(
            f"SELECT {TOKEN_COLS}, token_hash FROM api_tokens WHERE token_hash = $1", digest
        )
        if row is None or not hmac.compare_digest(str(row[7]), digest):
            return None
        rec = self._token(row)
        now = at or self.clock()
        if not rec.usable(now):
            return None
        last = rec.last_used_at
        if last is None or (now - last).total_seconds() >= LAST_USED_EVERY_S:
            async with self.transaction("token use") as tx:
                await tx.execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
                                 rec.id, self.dialect.ts(now))
            rec = msgspec.structs.replace(rec, last_used_at=now)
        return rec

    async def revoke_api_token(self, token_id: int, *, at: datetime | None = None) -> bool:
        """Refuse the token from now on; False if there is no such token or it was
        revoked already."""
        async with self.transaction("token revocation") as tx:
            return await tx.execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                token_id, self.dialect.ts(at or self.clock()),
            ) > 0

    async def get_api_token(self, token_id: int) -> ApiToken | None:
        row = await self.fetchrow(f"SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1",
                                  token_id)
        return None if row is None else self._token(row)

    async def list_api_tokens(self, *, limit: int = 100, after_id: int = 0
                              ) -> Page[ApiToken]:
        w = _Where()
        w.add("id > {}", after_id)
        return await self._page(f"SELECT {TOKEN_COLS} FROM api_tokens", w, "id", limit,
                                self._token, key=lambda t: t.id)

    # pages -----------------------------------------------------------------------

    async def _page(self, select: str, where: _Where, order: str, limit: int,
                    decode: Callable[[Row], Any], *, key: Callable[[Any], int | str]
                    ) -> Page[Any]:
        _check_page(limit)
        lim = where.next_param(limit + 1)
        rows = await self.fetch(f"{select}{where.sql()} ORDER BY {order} LIMIT {lim}",
                                *where.args)
        items = [decode(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items=items, next_after=key(items[-1]) if more and items else None)

    def _range(self, w: _Where, column: str, gte: datetime | None,
               lte: datetime | None) -> None:
        d = self.dialect
        w.add(f"{column} >= {{}}", d.ts_opt(gte))
        w.add(f"{column} <= {{}}", d.ts_opt(lte))

    async def page_leads(self, *, limit: int = 100, after_id: int = 0,
                         status: str | None = None, state: str | None = None,
                         campaign: str | None = None, since: datetime | None = None,
                         created_gte: datetime | None = None,
                         created_lte: datetime | None = None) -> Page[Lead]:
        """Leads by id. `since` filters on `updated_at` (changed since), the created
        range on `created_at`; `campaign` keeps leads enrolled in the campaign of
        that name."""
        from store.repository import LEAD_SELECT

        if status is not None:
            check_choice("status", status, LEAD_STATUSES)
        w = _Where()
        w.add("l.id > {}", after_id)
        w.add("l.status = {}", status)
        w.add("l.state = {}", None if state is None else state.upper())
        w.add("l.phone IN (SELECT e.phone FROM enrollments e JOIN campaigns c"
              " ON c.id = e.campaign_id WHERE c.name = {})", campaign)
        w.add("l.updated_at >= {}", self.dialect.ts_opt(since))
        self._range(w, "l.created_at", created_gte, created_lte)
        return await self._page(LEAD_SELECT, w, "l.id", limit, self._lead,
                                key=lambda r: r.id)

    async def page_calls(self, *, limit: int = 100, before_id: int | None = None,
                         direction: str | None = None, status: str | None = None,
                         outcome: str | None = None, phone: str | None = None,
                         created_gte: datetime | None = None,
                         created_lte: datetime | None = None) -> Page[Call]:
        """Calls newest first (by id, which follows the start order); `phone` matches
        either end; the created range is on `started_at`."""
        from store.repository import CALL_COLS

        w = _Where()
        w.add("id < {}", before_id)
        w.add("direction = {}", direction)
        w.add("status = {}", status)
        w.add("outcome = {}", outcome)
        if phone is not None:
            p = w.next_param(phone)
            w.clauses.append(f"(from_number = {p} OR to_number = {p})")
        self._range(w, "started_at", created_gte, created_lte)
        return await self._page(f"SELECT {CALL_COLS} FROM calls", w, "id DESC", limit,
                                self._call, key=lambda c: c.id)

    async def page_messages(self, *, limit: int = 100, after_id: int = 0,
                            phone: str | None = None, campaign: str | None = None,
                            direction: str | None = None, channel: str | None = None,
                            created_gte: datetime | None = None,
                            created_lte: datetime | None = None) -> Page[Message]:
        """Messages oldest first (a thread reads top down); `campaign` keeps the
        messages sent as that campaign's touches."""
        from store.repository import MESSAGE_COLS

        w = _Where()
        w.add("id > {}", after_id)
        w.add("phone = {}", phone)
        w.add("direction = {}", direction)
        w.add("channel = {}", channel)
        w.add("id IN (SELECT t.message_id FROM campaign_touches t JOIN campaigns c"
              " ON c.id = t.campaign_id WHERE c.name = {})", campaign)
        self._range(w, "created_at", created_gte, created_lte)
        return await self._page(f"SELECT {MESSAGE_COLS} FROM messages", w, "id", limit,
                                self._message, key=lambda m: m.id)

    async def page_campaigns(self, *, limit: int = 100, after_id: int = 0,
                             created_gte: datetime | None = None,
                             created_lte: datetime | None = None) -> Page[CampaignRecord]:
        from store.campaign_repo import _CAMPAIGN_COLS as CAMPAIGN_COLS

        w = _Where()
        w.add("id > {}", after_id)
        self._range(w, "created_at", created_gte, created_lte)
        return await self._page(f"SELECT {CAMPAIGN_COLS} FROM campaigns", w, "id", limit,
                                self._campaign_rec, key=lambda c: c.id)

    async def page_dnc(self, *, limit: int = 100, after: str = "",
                       created_gte: datetime | None = None,
                       created_lte: datetime | None = None) -> Page[DncEntry]:
        w = _Where()
        w.add("phone > {}", after)
        self._range(w, "added_at", created_gte, created_lte)
        d = self.dialect
        return await self._page(
            "SELECT phone, reason, added_at FROM dnc", w, "phone", limit,
            lambda r: DncEntry(r[0], r[1], d.dt(r[2])), key=lambda e: e.phone)
