"""Tunables of the store layer: the `[sessions]` and `[store]` sections."""

from __future__ import annotations

import msgspec


class SessionsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Empty: in-memory sessions only.
    redis_url: str = ""
    max_in_memory_sessions: int = 100
    # Seconds a session lives without activity.
    session_timeout: int = 1800


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # sqlite:///path or postgresql://...
    database_url: str = "sqlite:///./data/leadline.db"
    # Purge turns and recordings older than this many days (0 = keep forever).
    retention_days: int = 0
