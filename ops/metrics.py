"""Prometheus exposition. The hot path keeps plain ints; this collector reads them at scrape.

Metric objects are never touched per frame: the media engine, the Twilio
routes and the call manager count in attributes, and `RuntimeCollector`
turns them into families when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import REGISTRY, Collector

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


# (metric name, BrainLatency attribute, help): the turn latency split of issue #3.
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
