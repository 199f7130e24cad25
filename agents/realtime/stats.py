"""What the Realtime brain counts: plain ints and rings, exported by `ops.metrics` at scrape.

Every fault (unknown or malformed events, error events, deltas after cancel,
socket drops), connects and their latency, rate limits and token usage land
here. The session core and the brain shell only add to fields; nothing is
touched per audio frame, and no Prometheus object lives in `agents/`, so the
core stays sans-I/O and testable with a fresh `RealtimeStats` of its own.

Keys are closed sets (event kinds we name, error types as the service reports
them, limit names folded to requests/tokens/other), so cardinality stays
bounded whatever the peer sends.
"""

from __future__ import annotations

from media.clock import SampleRing

# Bucket bounds (seconds) of the connect and first-audio histograms.
LATENCY_BOUNDS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Recent samples kept beside each histogram.
_WINDOW = 1024


def bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


class RealtimeStats:
    """The Realtime figures of one process (`STATS`), or of one test."""

    __slots__ = (
        "bad_events", "brain_failures", "connect_seconds", "connects", "disconnects",
        "error_events", "first_audio_seconds", "rate_limit_limit", "rate_limit_remaining",
        "rate_limit_reset", "responses", "restores", "rotations", "tokens",
    )

    def __init__(self) -> None:
        # Server events or client requests refused or discarded, by kind.
        self.bad_events: dict[str, int] = {}
        # `error` events from the service, by error type.
        self.error_events: dict[str, int] = {}
        # Responses finished, by status.
        self.responses: dict[str, int] = {}
        # Tokens billed, by (direction, modality).
        self.tokens: dict[tuple[str, str], int] = {}
        # Last `rate_limits.updated` values, by limit name.
        self.rate_limit_remaining: dict[str, float] = {}
        self.rate_limit_limit: dict[str, float] = {}
        self.rate_limit_reset: dict[str, float] = {}
        # Connection attempts by outcome (ok, timeout, error); successful ones timed.
        self.connects: dict[str, int] = {}
        self.connect_seconds = SampleRing(_WINDOW, LATENCY_BOUNDS_S)
        # Sockets lost mid-call (not closed by us); restores by outcome (ok, failed).
        self.disconnects = 0
        self.restores: dict[str, int] = {}
        self.rotations = 0
        # Live calls handed to the keyless brain because this one could not go on.
        self.brain_failures = 0
        # Brain's share of turn latency: end of caller turn to the first audio delta.
        self.first_audio_seconds = SampleRing(_WINDOW, LATENCY_BOUNDS_S)

    def add_tokens(self, direction: str, modality: str, n: int) -> None:
        key = (direction, modality)
        self.tokens[key] = self.tokens.get(key, 0) + n


# The process's Realtime figures.
STATS = RealtimeStats()
