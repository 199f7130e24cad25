"""`[api]`: the /v1 admin API's limits."""

from __future__ import annotations

import msgspec


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Per token: a steady rate and the burst a client may spend at once before 429s.
    rate_per_s: float = 20.0
    burst: int = 40
    # JSON bodies are small records; a bigger body is a mistake or an attack (413).
    max_body_bytes: int = 256 * 1024
    # A CSV upload to /v1/leads/import.
    max_import_bytes: int = 20 * 1024 * 1024
    # Tokens tracked by the rate limiter at once (least recently seen dropped first).
    max_tracked_tokens: int = 10_000

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("api.rate_per_s must be > 0 and api.burst at least 1")
        if self.max_body_bytes < 1024 or self.max_import_bytes < 1024:
            raise ValueError("api body limits must be at least 1024 bytes")
        if self.max_tracked_tokens < 1:
            raise ValueError("api.max_tracked_tokens must be at least 1")
