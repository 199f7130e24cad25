"""Prometheus metrics of the Realtime brain, on the default registry.

Counted here: every fault the issue lists (unknown/malformed events, error
events, deltas after cancel, bad tool arguments, tool timeouts, socket drops),
connects and their latency, the circuit breaker, rate limits and token usage.
Nothing is observed per audio frame: the hot path only counts into plain ints
on the session and these are touched per event of a turn.

Label values are closed sets (event kinds, tool names from the registry,
error types as the service reports them), so cardinality stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

bad_events = Counter(
    "leadline_realtime_bad_events_total",
    "Server events or client requests the Realtime brain refused or discarded, by kind.",
    ["kind"],
)
error_events = Counter(
    "leadline_realtime_error_events_total",
    "`error` events received from the Realtime service, by error type.",
    ["type"],
)
responses = Counter(
    "leadline_realtime_responses_total",
    "Realtime responses finished, by status.",
    ["status"],
)
tokens = Counter(
    "leadline_realtime_tokens_total",
    "Tokens billed by the Realtime service (from response.done usage).",
    ["direction", "modality"],
)
rate_limit_remaining = Gauge(
    "leadline_realtime_rate_limit_remaining",
    "Last `rate_limits.updated` remaining value, by limit name.",
    ["name"],
)
rate_limit_limit = Gauge(
    "leadline_realtime_rate_limit_limit",
    "Last `rate_limits.updated` limit value, by limit name.",
    ["name"],
)
rate_limit_reset = Gauge(
    "leadline_realtime_rate_limit_reset_seconds",
    "Last `rate_limits.updated` reset time, by limit name.",
    ["name"],
)
connects = Counter(
    "leadline_realtime_connects_total",
    "Connection attempts to the Realtime service, by outcome (ok, timeout, error).",
    ["outcome"],
)
connect_seconds = Histogram(
    "leadline_realtime_connect_seconds",
    "Time to open a Realtime WebSocket (successful attempts).",
    buckets=_LATENCY_BUCKETS,
)
disconnects = Counter(
    "leadline_realtime_disconnects_total",
    "Realtime sockets lost mid-call (not closed by us).",
)
restores = Counter(
    "leadline_realtime_restores_total",
    "Mid-call reconnects with context restored, by outcome (ok, failed).",
    ["outcome"],
)
rotations = Counter(
    "leadline_realtime_rotations_total",
    "Sessions replaced before the service's session time limit.",
)
brain_failures = Counter(
    "leadline_realtime_brain_failed_total",
    "Live calls handed to the keyless brain because the Realtime brain could not go on.",
)
first_audio_seconds = Histogram(
    "leadline_realtime_first_audio_seconds",
    "Brain's share of turn latency: end of caller turn (or response request) "
    "to the first audio delta from the service.",
    buckets=_LATENCY_BUCKETS,
)
tool_calls = Counter(
    "leadline_realtime_tool_calls_total",
    "Tool calls by tool and outcome (ok, error, invalid_arguments, timeout, "
    "cancelled, unknown_tool, rejected).",
    ["tool", "outcome"],
)
tool_seconds = Histogram(
    "leadline_realtime_tool_seconds",
    "Tool run time (completed calls).",
    ["tool"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
breaker_state = Gauge(
    "leadline_realtime_breaker_state",
    "Circuit breaker of the Realtime brain: 0 closed, 1 half-open, 2 open.",
)
breaker_trips = Counter(
    "leadline_realtime_breaker_trips_total",
    "Times the Realtime circuit breaker opened.",
)
