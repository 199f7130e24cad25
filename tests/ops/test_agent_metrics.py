"""The agents' figures reach /metrics at scrape time under their long-standing names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from agents.realtime.breaker import CircuitBreaker
from agents.realtime.stats import RealtimeStats, bump
from agents.tools.framework import ToolStats
from ops.metrics import realtime_families, tool_families


class _Fixed(Collector):
    def __init__(self, stats: RealtimeStats, breaker: CircuitBreaker, tools: ToolStats) -> None:
        self.args = stats, breaker, tools

    def collect(self):  # type: ignore[no-untyped-def]
        stats, breaker, tools = self.args
        yield from realtime_families(stats, breaker)
        yield from tool_families(tools)


def scrape(stats: RealtimeStats, breaker: CircuitBreaker, tools: ToolStats) -> str:
    registry = CollectorRegistry()
    registry.register(_Fixed(stats, breaker, tools))
    return generate_latest(registry).decode()


def test_counts_become_labelled_samples() -> None:
    stats = RealtimeStats()
    bump(stats.bad_events, "delta_after_cancel", 2)
    bump(stats.connects, "timeout")
    stats.add_tokens("input", "audio", 40)
    stats.rate_limit_remaining["requests"] = 9_999
    stats.connect_seconds.add(0.3)
    stats.brain_failures = 1
    tools = ToolStats()
    tools.count("send_dtmf", "invalid_arguments")
    tools.took("send_dtmf", 0.004)
    breaker = CircuitBreaker(failures=1)
    breaker.record_failure()
    text = scrape(stats, breaker, tools)
    for line in (
        'leadline_realtime_bad_events_total{kind="delta_after_cancel"} 2.0',
        'leadline_realtime_connects_total{outcome="timeout"} 1.0',
        'leadline_realtime_tokens_total{direction="input",modality="audio"} 40.0',
        'leadline_realtime_rate_limit_remaining{name="requests"} 9999.0',
        'leadline_realtime_connect_seconds_bucket{le="0.3"} 1.0',
        "leadline_realtime_connect_seconds_count 1.0",
        "leadline_realtime_brain_failed_total 1.0",
        "leadline_realtime_breaker_state 2.0",
        "leadline_realtime_breaker_trips_total 1.0",
        'leadline_realtime_tool_calls_total{outcome="invalid_arguments",tool="send_dtmf"} 1.0',
        'leadline_realtime_tool_seconds_bucket{le="0.01",tool="send_dtmf"} 1.0',
    ):
        assert line in text, line


def test_a_scrape_does_not_move_the_breaker() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 60.0  # past the cooldown: the next call would half-open it
    assert "leadline_realtime_breaker_state 2.0" in scrape(RealtimeStats(), breaker, ToolStats())
    assert breaker.allow()  # the probe is still there for the next call to take
