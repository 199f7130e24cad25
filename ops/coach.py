"""The coach wired into calls: one `CoachTask` per sales call, fed by its transcripts.

Wiring only: what the coach asks and how it reads the answer live in
`agents.coach`; which script and objectives a call has comes from
`agents.sales` (the call's `Script` parameter, set by the dialer). A call gets
a coach when `[coach] enabled` and it is a sales call: outbound with a script,
or inbound with `[coach] inbound`. The task is a child of the call (cancelled
with it); at the end the objectives done go onto the call's audit trail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from agents.chat.llm import LlmClient, OpenAIChatClient
from agents.coach.core import STATS, CoachCore, CoachStats
from agents.coach.settings import CoachSettings
from agents.coach.task import CoachTask, LoopSchedule, Schedule
from telephony.calls import CallObserver

if TYPE_CHECKING:
    from agents.brain import Role
    from ops.config import Config
    from store.database import Database
    from telephony.call import Call

log = logging.getLogger("leadline.coach")
# Largest coach answer asked for (four short strings).
MAX_REPLY_TOKENS = 400


def script_for(call: Call, config: Config) -> tuple[str, list[str]]:
    """(script text, objectives) of the call: its sales script's (`context.sales`, set by
    `ops.sales` from the dialer's `Script` parameter; an inbound call coached with
    `[coach] inbound` gets `[sales]`'s default script), else `[coach] objectives`."""
    fallback = list(config.coach.objectives)
    sales = call.context.sales
    try:
        from agents.sales.render import render_script

        if sales is not None:
            script, contact = sales.script, sales.contact
        else:
            script, contact = config.sales.script(None), {"phone": call.context.from_number}
        return render_script(script, contact), list(script.objectives) or fallback
    except Exception:
        log.exception("no sales script for the coach", extra={"call_sid": call.call_sid})
        return "", fallback


class Coaching(CallObserver):
    """Starts, feeds and stops the coach of each sales call (see the module docstring)."""

    def __init__(self, config: Callable[[], Config],
                 database: Callable[[], Database | None] = lambda: None, *,
                 schedule: Callable[[], Schedule] = LoopSchedule,
                 stats: CoachStats = STATS) -> None:
        self._config = config
        self._db = database
        # Tests hand a manual schedule to step the coach through a real call.
        self.schedule = schedule
        self.stats = stats
        self.live: dict[Call, CoachTask] = {}
        self._clients: dict[tuple[str, str, str, float], OpenAIChatClient] = {}
        self.audit_failures = 0
        self._writes: set[asyncio.Task[None]] = set()

    def _client(self, s: CoachSettings) -> LlmClient:
        api_key = s.api_key or self._config().openai.api_key
        key = (s.base_url, api_key, s.model, s.timeout_s)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = OpenAIChatClient(
                base_url=s.base_url, api_key=api_key, model=s.model, timeout_s=s.timeout_s,
                max_tokens=MAX_REPLY_TOKENS)
        return client

    @staticmethod
    def is_sales_call(call: Call, s: CoachSettings) -> bool:
        ctx = call.context
        if ctx.direction == "outbound":
            return ctx.sales is not None or bool(ctx.parameters.get("Script"))
        return s.inbound

    # -- CallObserver ------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        s = self._config().coach
        if not s.enabled or not self.is_sales_call(call, s):
            return
        script_text, objectives = script_for(call, self._config())
        schedule = self.schedule()
        core = CoachCore(objectives=objectives, script_text=script_text,
                         interval_s=s.interval_s, clock=schedule.now,
                         max_transcript_chars=s.max_transcript_chars, stats=self.stats)
        # The brain is read at delivery: a call that fell back has another one.
        task = CoachTask(core, self._client(s), lambda note: call.brain.coach_note(note),
                         timeout_s=s.timeout_s, schedule=schedule, call_sid=call.call_sid)
        self.live[call] = task
        # The dialer reads it at the end: the objectives go into the dial's detail.
        call.context.coach = core
        call.spawn(task.run(), "coach")

    def transcript(self, call: Call, role: Role, text: str) -> None:
        task = self.live.get(call)
        if task is not None:
            task.core.heard(role, text)

    def call_ended(self, call: Call) -> None:
        task = self.live.pop(call, None)
        if task is None:
            return
        summary = task.core.summary()
        log.info("coach summary", extra={"call_sid": call.call_sid,
                                         "objectives_done": summary["done"],
                                         "objectives": summary["total"]})
        db = self._db()
        if db is not None and call.call_sid:
            task = asyncio.get_running_loop().create_task(
                self._write(db, call.call_sid, summary), name=f"coach-summary:{call.call_sid}")
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, db: Database, call_sid: str, summary: dict[str, Any]) -> None:
        try:
            await db.audit("coach", call_sid=call_sid, detail=summary)
        except Exception:
            self.audit_failures += 1
            log.exception("coach summary not written", extra={"call_sid": call_sid})

    async def stop(self) -> None:
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def collector(self) -> Collector:
        return CoachCollector(self.stats)


class CoachCollector(Collector):
    """The coach's figures on /metrics, read at scrape time."""

    def __init__(self, stats: CoachStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        s = self.stats
        yield CounterMetricFamily("leadline_coach_requests_total",
                                  "Coach model requests made", value=s.requests)
        yield CounterMetricFamily("leadline_coach_guidance_total",
                                  "Coach guidance notes handed to the agent", value=s.guidance)
        skipped = CounterMetricFamily(
            "leadline_coach_skipped_total",
            "Coach slots not used, by reason (idle: nothing new said; busy; breaker_open; "
            "not_json, invalid, empty: an unusable answer; nothing_to_say)",
            labels=["reason"])
        for reason, n in sorted(s.skipped.items()):
            skipped.add_metric([reason], n)
        yield skipped
        failures = CounterMetricFamily("leadline_coach_failures_total",
                                       "Coach requests that failed, by kind", labels=["kind"])
        for kind, n in sorted(s.failures.items()):
            failures.add_metric([kind], n)
        yield failures
