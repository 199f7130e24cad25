"""Prometheus exposition. Every layer keeps plain ints; the collectors here read them at scrape.

Metric objects are never touched per frame, nor from inside a sans-I/O core:
the media engine, the Twilio routes and the call manager count in attributes
(`RuntimeCollector`, one per app), the Realtime brain, its circuit breaker and
the tool runner count into process-wide stats objects (`AgentCollector`, on
the default registry because those figures outlive any one app).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import REGISTRY, Collector

from agents.compliance import gate as compliance_gate
from agents.nlu import entities, triage
from agents.realtime.breaker import CircuitBreaker, default_breaker
from agents.realtime.stats import STATS, RealtimeStats
from agents.tools.framework import TOOL_STATS, ToolStats
from media.clock import SampleRing
from telephony.call import LATENCY, CallLatency

if TYPE_CHECKING:
    from ops.app import Runtime


def _buckets(ring: SampleRing, scale: float) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(ring.bounds, ring.bucket_counts, strict=False):
        running += n
        buckets.append((repr(bound * scale), running))
    buckets.append(("+Inf", ring.count))
    return buckets


def _histogram(name: str, doc: str, ring: SampleRing, scale: float = 1.0
               ) -> HistogramMetricFamily:
    """A cumulative histogram kept beside a bounded ring (see media.clock.SampleRing)."""
    fam = HistogramMetricFamily(name, doc)
    fam.add_metric([], _buckets(ring, scale), ring.total * scale)
    return fam


def _quantiles(name: str, doc: str, values: list[float], scale: float = 1.0) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=["quantile"])
    if values:
        ordered = sorted(values)
        for q in (0.5, 0.95, 0.99):
            idx = min(len(ordered) - 1, int(q * len(ordered)))
            fam.add_metric([str(q)], ordered[idx] * scale)
    return fam


# (metric name, BrainLatency attribute, help): whose share of a slow answer is whose.
_BRAIN_LATENCY = (
    ("leadline_turn_latency_seconds", "turn",
     "End of caller turn (commit) to the first agent audio frame sent to the carrier"),
    ("leadline_turn_latency_brain_seconds", "brain",
     "Brain's share of turn latency: end of caller turn to the brain's first audio"),
    ("leadline_turn_latency_ours_seconds", "ours",
     "Our share of turn latency: the brain's first audio to its first frame sent "
     "(includes waiting for the next 20 ms media tick)"),
    ("leadline_greeting_latency_seconds", "greeting",
     "Media stream start to the first greeting frame sent"),
    ("leadline_brain_connect_seconds", "start",
     "Brain start: for openai, connecting to the Realtime service and setting up the "
     "session; successful starts"),
)


def latency_families(latency: CallLatency = LATENCY) -> Iterator[HistogramMetricFamily]:
    """The per-brain-kind latency histograms kept by `telephony.call.CallLatency`."""
    kinds = sorted(latency.by_brain.items())
    for name, attr, doc in _BRAIN_LATENCY:
        fam = HistogramMetricFamily(name, doc, labels=["brain"])
        for kind, rings in kinds:
            ring: SampleRing = getattr(rings, attr)
            fam.add_metric([kind], _buckets(ring, 1.0), ring.total)
        yield fam
    recent = GaugeMetricFamily(
        "leadline_turn_latency_recent_seconds",
        "Turn latency quantiles over each brain kind's last samples, by share "
        "(turn = brain + ours)", labels=["brain", "share", "quantile"])
    for kind, rings in kinds:
        for share in ("turn", "brain", "ours"):
            ring = getattr(rings, share)
            if len(ring):
                for q, value in zip((0.5, 0.99), ring.percentiles(50, 99), strict=True):
                    recent.add_metric([kind, share, str(q)], value)
    yield recent


def _counter(name: str, doc: str, counts: Mapping[str, int] | Mapping[tuple[str, ...], int],
             labels: list[str]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for key, n in counts.items():
        fam.add_metric([key] if isinstance(key, str) else list(key), n)
    return fam


def _gauge(name: str, doc: str, values: Mapping[str, float], label: str) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        fam.add_metric([key], value)
    return fam


def realtime_families(stats: RealtimeStats = STATS,
                      breaker: CircuitBreaker = default_breaker) -> Iterable[object]:
    """The Realtime brain's figures under the names they have always had."""
    s = stats
    yield _counter("leadline_realtime_bad_events_total",
                   "Server events or client requests the Realtime brain refused or discarded, "
                   "by kind.", s.bad_events, ["kind"])
    yield _counter("leadline_realtime_error_events_total",
                   "`error` events received from the Realtime service, by error type.",
                   s.error_events, ["type"])
    yield _counter("leadline_realtime_responses_total", "Realtime responses finished, by status.",
                   s.responses, ["status"])
    yield _counter("leadline_realtime_tokens_total",
                   "Tokens billed by the Realtime service (from response.done usage).",
                   s.tokens, ["direction", "modality"])
    yield _gauge("leadline_realtime_rate_limit_remaining",
                 "Last `rate_limits.updated` remaining value, by limit name.",
                 s.rate_limit_remaining, "name")
    yield _gauge("leadline_realtime_rate_limit_limit",
                 "Last `rate_limits.updated` limit value, by limit name.",
                 s.rate_limit_limit, "name")
    yield _gauge("leadline_realtime_rate_limit_reset_seconds",
                 "Last `rate_limits.updated` reset time, by limit name.",
                 s.rate_limit_reset, "name")
    yield _counter("leadline_realtime_connects_total",
                   "Connection attempts to the Realtime service, by outcome (ok, timeout, error).",
                   s.connects, ["outcome"])
    yield _histogram("leadline_realtime_connect_seconds",
                     "Time to open a Realtime WebSocket (successful attempts).",
                     s.connect_seconds)
    yield CounterMetricFamily("leadline_realtime_disconnects_total",
                              "Realtime sockets lost mid-call (not closed by us).",
                              value=s.disconnects)
    yield _counter("leadline_realtime_restores_total",
                   "Mid-call reconnects with context restored, by outcome (ok, failed).",
                   s.restores, ["outcome"])
    yield CounterMetricFamily("leadline_realtime_rotations_total",
                              "Sessions replaced before the service's session time limit.",
                              value=s.rotations)
    yield CounterMetricFamily("leadline_realtime_brain_failed_total",
                              "Live calls handed to the keyless brain because the Realtime "
                              "brain could not go on.", value=s.brain_failures)
    yield _histogram("leadline_realtime_first_audio_seconds",
                     "Brain's share of turn latency: end of caller turn (or response request) "
                     "to the first audio delta from the service.", s.first_audio_seconds)
    yield GaugeMetricFamily("leadline_realtime_breaker_state",
                            "Circuit breaker of the Realtime brain: 0 closed, 1 half-open, "
                            "2 open.", value=int(breaker.last_state))
    yield CounterMetricFamily("leadline_realtime_breaker_trips_total",
                              "Times the Realtime circuit breaker opened.", value=breaker.trips)


def tool_families(stats: ToolStats = TOOL_STATS) -> Iterable[object]:
    """Tool calls of every agent (the names predate tools serving more than Realtime)."""
    yield _counter("leadline_realtime_tool_calls_total",
                   "Tool calls by tool and outcome (ok, error, invalid_arguments, timeout, "
                   "cancelled, unknown_tool, rejected).", stats.calls, ["tool", "outcome"])
    fam = HistogramMetricFamily("leadline_realtime_tool_seconds",
                                "Tool run time (completed calls).", labels=["tool"])
    for name, ring in stats.seconds.items():
        fam.add_metric([name], _buckets(ring, 1.0), ring.total)
    yield fam


def decision_families() -> Iterator[CounterMetricFamily]:
    """The compliance gate's decisions and the NLU cores' counts (process-wide: the voice
    calls, the SMS side and the dialer all ask the same gate and classifiers)."""
    yield _counter("leadline_compliance_decisions_total",
                   "Compliance gate decisions (audited), by reason ('allowed' or why not).",
                   dict(compliance_gate.DECISIONS), ["reason"])
    yield _counter("leadline_nlu_triage_total", "Triage results, by priority.",
                   dict(triage.STATS.by_priority), ["priority"])
    yield _counter("leadline_nlu_triage_errors_total", "Triage input refused, by reason.",
                   dict(triage.STATS.errors), ["reason"])
    yield _counter("leadline_nlu_entity_errors_total",
                   "Entity extraction input refused or unparsable, by reason.",
                   dict(entities.STATS), ["reason"])


class AgentCollector(Collector):
    """The agents' process-wide figures (Realtime brain, breaker, tools, compliance, NLU)."""

    def collect(self) -> Iterator[object]:
        yield from realtime_families()
        yield from tool_families()
        yield from decision_families()


# Registered once per process, on the default registry: tests and tools that read
# `prometheus_client.REGISTRY` see these figures as they did when they lived there.
REGISTRY.register(AgentCollector())


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[object]:
        rt = self.runtime
        engine = rt.engine
        calls = rt.calls
        tw = rt.twilio_stats

        yield GaugeMetricFamily("leadline_active_calls", "Calls in progress",
                                value=len(calls.active))
        c = CounterMetricFamily("leadline_calls", "Calls ended, by reason", labels=["reason"])
        for reason, n in calls.end_reasons.items():
            c.add_metric([reason], n)
        yield c
        yield CounterMetricFamily("leadline_calls_started", "Calls started",
                                  value=calls.started)
        yield CounterMetricFamily("leadline_frames_in", "Caller audio frames received",
                                  value=engine.frames_in)
        yield CounterMetricFamily("leadline_frames_out", "Agent audio frames sent",
                                  value=engine.frames_out)
        yield CounterMetricFamily("leadline_barge_ins", "Caller interruptions of the agent",
                                  value=engine.barge_ins)
        yield CounterMetricFamily("leadline_end_of_turns", "Caller turns committed",
                                  value=engine.end_of_turns)
        yield CounterMetricFamily("leadline_playout_underruns",
                                  "Ticks where an open agent response had no audio ready",
                                  value=engine.underruns)
        yield CounterMetricFamily("leadline_media_call_errors",
                                  "Calls whose media failed and were removed",
                                  value=engine.call_errors)
        yield CounterMetricFamily("leadline_vad_batches", "VAD batches run (one per tick)",
                                  value=engine.vad_batches)
        yield CounterMetricFamily("leadline_vad_errors", "VAD batches that failed",
                                  value=engine.vad_errors)
        vad = engine.vad_engine
        inferences = getattr(vad, "inferences", engine.vad_inferences)
        items = getattr(vad, "batch_items", None)
        yield CounterMetricFamily("leadline_vad_inferences", "Model inferences run",
                                  value=inferences)
        if items is not None:
            yield CounterMetricFamily("leadline_vad_batch_items",
                                      "Windows decided by batched inference (sum of batch sizes)",
                                      value=items)
        seconds = getattr(vad, "inference_seconds", None)
        if seconds is not None:
            yield CounterMetricFamily("leadline_vad_inference_seconds",
                                      "Time spent in VAD inference", value=seconds)
        yield _histogram("leadline_frame_processing_seconds",
                         "Media tick processing time: one 20 ms frame of every call",
                         engine.tick_seconds)
        yield _histogram("leadline_frame_lag_seconds",
                         "How late the media clock started each 20 ms tick",
                         rt.clock.lag_ring, 0.001)
        yield _histogram("leadline_end_of_turn_seconds",
                         "Turn commit latency beyond vad.stop_ms of silence",
                         engine.end_of_turn_latency_ms, 0.001)
        yield _histogram("leadline_barge_in_seconds",
                         "Caller speech onset to barge-in (clear sent)",
                         engine.barge_in_latency_ms, 0.001)
        yield from latency_families()
        yield _quantiles("leadline_frame_lag_recent_seconds",
                         "Media clock tick lag quantiles over the last 3000 ticks",
                         rt.clock.lag_samples(), 0.001)
        yield _quantiles("leadline_end_of_turn_over_silence_recent_seconds",
                         "End-of-turn latency beyond vad.stop_ms, quantiles, recent",
                         engine.end_of_turn_latency_ms.values(), 0.001)
        pe = CounterMetricFamily("leadline_protocol_errors",
                                 "Media Streams protocol errors, by kind", labels=["kind"])
        for kind, n in tw.protocol_errors.items():
            pe.add_metric([kind], n)
        yield pe
        yield CounterMetricFamily("leadline_forged_signatures",
                                  "Requests rejected for a bad X-Twilio-Signature",
                                  value=tw.forged_signatures)
        yield CounterMetricFamily("leadline_slow_peers",
                                  "Calls dropped because the peer stopped reading",
                                  value=tw.slow_peers)
        yield CounterMetricFamily("leadline_calls_rejected_busy",
                                  "Calls refused at max_calls", value=tw.rejected_busy)
        reload = CounterMetricFamily("leadline_config_reloads", "Config reloads, by result",
                                     labels=["result"])
        reload.add_metric(["ok"], rt.reloader.reloads_ok)
        reload.add_metric(["failed"], rt.reloader.reloads_failed)
        yield reload


def make_registry(runtime: Runtime) -> CollectorRegistry:
    """Our collector plus the default registry (process metrics, library metrics)."""
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(runtime))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry) + generate_latest(REGISTRY)
