"""The LiveKit leg's counters on /metrics: dials and how they ended, leg trouble.

The counts are plain ints on `telephony.livekit` objects (the per-frame paths bump an
int, nothing more); this collector reads them at scrape time, like the dialer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class LiveKitCollector(Collector):
    """`placer` is the app's `telephony.livekit.dialing.LiveKitPlacer`."""

    def __init__(self, placer: Any) -> None:
        self.placer = placer

    def collect(self) -> Iterator[object]:
        calls = self.placer.calls
        sip = calls._sip  # made at the first dial; None until then
        yield CounterMetricFamily("leadline_livekit_dials", "CreateSIPParticipant requests",
                                  value=0 if sip is None else sip.dials)
        errors = CounterMetricFamily(
            "leadline_livekit_dial_errors",
            "Dials that did not connect: busy, no_answer, failed (a SIP answer), "
            "rejected (a final API error), transient (5xx, timeout, unreachable)",
            labels=["kind"])
        for kind, n in sorted(({} if sip is None else sip.dial_errors).items()):
            errors.add_metric([kind], n)
        yield errors
        results = CounterMetricFamily("leadline_livekit_calls",
                                      "LiveKit calls by how they ended", labels=["result"])
        for result, n in sorted(calls.results.items()):
            results.add_metric([result], n)
        yield results
        yield GaugeMetricFamily("leadline_livekit_active_calls", "LiveKit calls up now",
                                value=len(calls.active))
        legs = calls.leg_totals()
        yield CounterMetricFamily("leadline_livekit_frames_in",
                                  "20 ms callee frames handed to calls", value=legs.frames_in)
        yield CounterMetricFamily("leadline_livekit_frames_out",
                                  "20 ms agent frames captured into rooms",
                                  value=legs.frames_out)
        events = CounterMetricFamily(
            "leadline_livekit_leg_events",
            "Leg events: cleared (barge-in), overflows (slow room), capture_errors",
            labels=["event"])
        for event in ("cleared", "overflows", "capture_errors"):
            events.add_metric([event], getattr(legs, event))
        yield events
        bad = CounterMetricFamily("leadline_livekit_bad_frames",
                                  "Unusable frames from rooms, dropped, by reason",
                                  labels=["reason"])
        for reason, n in sorted(legs.bad_frames.items()):
            bad.add_metric([reason], n)
        yield bad
