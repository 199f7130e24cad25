"""Records of the admin API's side of the store: bearer tokens and keyset pages.

Immutable msgspec structs like store/models.py. A token record never holds the token
itself: only its hash is stored, and the plain token exists once, in the answer to
`create_api_token`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import msgspec

# What a role may do: "viewer" reads, "admin" also writes. Checked by the API layer.
API_ROLES: tuple[str, ...] = ("admin", "viewer")

T = TypeVar("T")


class ApiToken(msgspec.Struct, frozen=True):
    id: int
    role: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One keyset page: `next_after` is the sort key of the last row when more may follow
    (None at the end), so the next page starts exactly after it however rows are added."""

    items: list[T]
    next_after: int | str | None
