"""Tunables of the store layer: the `[sessions]` and `[store]` sections."""

from __future__ import annotations

import msgspec


class SessionsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Empty: in-memory sessions only.
    redis_url: str = ""
    max_in_memory_sessions: int = 100
    # Seconds a session lives without activity.
    session_timeout: int = 1800
    # Transcript lines kept per session (LTRIM bound in Redis and in memory).
    transcript_tail: int = 50
    # Redis keys are <key_prefix>{<call id>} and …:tail (hash tag: one cluster slot per call).
    key_prefix: str = "leadline:session:"
    # A Redis command slower than this counts as a failure and falls back to memory.
    op_timeout_s: float = 0.5
    # PING interval while connected.
    health_interval_s: float = 5.0
    # Reconnect backoff doubles from 0.1 s up to this.
    reconnect_max_backoff_s: float = 30.0


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # sqlite:///path or postgresql://...
    database_url: str = "sqlite:///./data/leadline.db"
    # Purge turns and recordings older than this many days (0 = keep forever).
    retention_days: int = 0
    # Write-behind journal of turns; processes on one host may share it (store/journal.py).
    journal_dir: str = "./data/journal"
    turn_batch_size: int = 200
    turn_flush_interval_s: float = 0.25
