"""The dialer's counters on /metrics: jobs and what became of them, dials, callbacks.

The counts live in plain-int stats objects of `telephony.dialer` (cheap to bump on the
hot paths); this collector reads them at scrape time, like the SMS side's.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from store.artifacts import CallArtifacts
from telephony.dialer.service import DialerService


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ArtifactsCollector(Collector):
    """`store.artifacts.CallArtifacts`' counters: calls saved, uploads, retries, spooling,
    and every way a write failed (`kind`)."""

    KINDS = ("calls_saved", "uploaded", "uploaded_bytes", "attempt_failed", "failed_permanent",
             "failed_transient", "spooled", "spool_resent", "transcript_unreadable",
             "refused_too_large", "errors")

    def __init__(self, artifacts: CallArtifacts) -> None:
        self.artifacts = artifacts

    def collect(self) -> Iterator[object]:
        stats = self.artifacts.stats
        family = CounterMetricFamily("leadline_artifacts", "Call artifact writes, by kind",
                                     labels=["kind"])
        for kind in self.KINDS:
            family.add_metric([kind], stats.get(kind, 0))
        yield family


class DialerCollector(Collector):
    def __init__(self, service: DialerService) -> None:
        self.service = service

    def collect(self) -> Iterator[object]:
        s = self.service
        st, cb, obs = s.stats, s.callback_stats, s.observer
        yield CounterMetricFamily("leadline_dialer_jobs", "Call jobs taken from the queue",
                                  value=st.jobs)
        yield CounterMetricFamily("leadline_dialer_dials", "calls.create requests accepted",
                                  value=st.dialed)
        yield CounterMetricFamily("leadline_dialer_attached",
                                  "Redelivered jobs that attached to their existing dial",
                                  value=st.attached)
        yield CounterMetricFamily("leadline_dialer_delayed",
                                  "Jobs moved back to delayed (outside calling hours, caps)",
                                  value=st.delayed)
        yield CounterMetricFamily("leadline_dialer_dial_errors",
                                  "calls.create failures (refused or unreachable)",
                                  value=st.dial_errors)
        rejected = CounterMetricFamily("leadline_dialer_rejected",
                                       "Jobs failed without a dial, by reason", labels=["reason"])
        for reason, n in sorted(st.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        outcomes = CounterMetricFamily("leadline_dialer_outcomes", "Finished calls, by outcome",
                                       labels=["outcome"])
        for outcome, n in sorted(st.outcomes.items()):
            outcomes.add_metric([outcome], n)
        yield outcomes
        callbacks = CounterMetricFamily("leadline_dialer_callbacks",
                                        "Twilio call-status and AMD callbacks, by kind",
                                        labels=["kind"])
        for kind in ("status_callbacks", "amd_callbacks", "forged", "unknown_calls",
                     "bad_callbacks"):
            callbacks.add_metric([kind], getattr(cb, kind))
        yield callbacks
        events = CounterMetricFamily("leadline_dialer_call_events",
                                     "Live outbound call events", labels=["kind"])
        for kind in ("voicemails_left", "dnc_recorded", "late_amd", "errors"):
            events.add_metric([kind], getattr(obs, kind))
        events.add_metric(["webhooks_sent"], s.webhooks_sent)
        events.add_metric(["webhooks_failed"], s.webhooks_failed)
        yield events
        own = CounterMetricFamily(
            "leadline_dialer_own_amd_verdicts",
            "Our own machine detector's verdicts acted upon (LiveKit calls, Twilio AMD "
            "unknown), by Twilio's AnsweredBy name", labels=["answered_by"])
        for answered_by, n in sorted(obs.own_amd_verdicts.items()):
            own.add_metric([answered_by], n)
        yield own
        window = list(st.job_to_dial_ms)
        latency = GaugeMetricFamily("leadline_dialer_job_to_dial_ms",
                                    "Job creation to calls.create, recent window",
                                    labels=["quantile"])
        latency.add_metric(["0.5"], _quantile(window, 0.5))
        latency.add_metric(["0.99"], _quantile(window, 0.99))
        yield latency
