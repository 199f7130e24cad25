"""Call analysis wired into live calls: a `CallObserver` that gathers what each call left
behind and hands it to `agents.analysis.CallAnalyst` when the call ends.

Wiring only: the record's rules live in `agents/analysis/record.py`, the notice's in
`agents/analysis/notice.py`. What this module knows is where the facts are:

- the caller memory at the greeting (`agents.memory`): taken at the call's first
  transcript, when the lookup before the greeting has answered; a name captured
  before any transcript means the lookup had none (a new caller);
- a transfer: this observer sits before the one that carries transfers out, notes
  the request and lets it through;
- the dialer's outcome: the dialer's live record of the call is kept at call end and
  read in the analysis task, which runs after every observer's `call_ended` (the
  dialer's included, so its voicemail verdict is in);
- the business (`CallContext.business`) and its `CallFlow` (priority, answers).

The texts go through the compliance-checked SMS send and the emails through
compliance and the email outbox, like every other message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from agents.analysis.analyst import CallAnalyst, Owner
from agents.analysis.record import CallFacts, Question
from agents.business.alert import wants_alert
from agents.business.flow import rank
from agents.memory import Known, NewCaller
from store.models import utcnow
from store.phones import InvalidPhoneNumber, normalize_phone
from telephony.calls import CallObserver

if TYPE_CHECKING:
    from ops.config import Config
    from sms.conversation import Conversation
    from store.database import Database
    from telephony.call import Call

log = logging.getLogger("leadline.analysis")
MAX_PENDING = 512


class _State:
    __slots__ = ("dial", "new_caller", "snapped", "started", "transferred")

    def __init__(self, started: datetime) -> None:
        self.started = started
        self.new_caller: bool | None = None
        self.snapped = False
        self.transferred = False
        self.dial: Any = None


class OpsLeadNotifier:
    """`LeadNotifier` over the SMS conversation and the email outbox."""

    def __init__(self, config: Callable[[], Config], db: Callable[[], Database | None],
                 conversation: Callable[[], Conversation | None],
                 email_sender: Callable[[], Any]) -> None:
        self._config = config
        self._db = db
        self._conversation = conversation
        self._email_sender = email_sender

    async def text_owner(self, to: str, body: str, origin: str) -> str:
        conversation = self._conversation()
        if conversation is None:
            return "sms_not_running"
        queued = await conversation.send(to, body, "owner_notice", origin)
        return str(queued.state)

    async def email_owner(self, file_under: str, to_addr: str, subject: str, body: str,
                          key: str) -> str:
        from agents.compliance.engine import CompliancePolicy
        from sms.email.inbound import queue_email_reply

        cfg = self._config()
        db = self._db()
        if not cfg.email.configured:
            return "email_not_configured"
        if db is None:
            return "no_database"
        sender = self._email_sender()
        return await queue_email_reply(
            db, policy=CompliancePolicy.from_settings(cfg.compliance),  # type: ignore[arg-type]
            from_addr=cfg.email.from_address, phone=file_under, to_addr=to_addr,
            subject=subject, body=body, purpose="owner_notice", key=key,
            wake=sender.wake if sender is not None else (lambda: None))


class CallAnalyses(CallObserver):
    """Every call's analysis at its end (see the module docstring)."""

    def __init__(self, config: Callable[[], Config], db: Callable[[], Database | None],
                 conversation: Callable[[], Conversation | None],
                 email_sender: Callable[[], Any] = lambda: None, *,
                 dial_live: Callable[[str], Any] = lambda sid: None,
                 analyst: CallAnalyst | None = None) -> None:
        self._config = config
        self._dial_live = dial_live
        self.analyst = analyst or CallAnalyst(
            lambda: self._config().analysis, db,  # type: ignore[arg-type]
            OpsLeadNotifier(config, db, conversation, email_sender))
        self._calls: dict[Call, _State] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    # -- CallObserver ------------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        if self._config().analysis.enabled:
            self._calls[call] = _State(utcnow())

    def transcript(self, call: Call, role: str, text: str) -> None:
        state = self._calls.get(call)
        if state is not None and not state.snapped:
            self._snap(state, call)
        if state is not None and state.dial is None:
            state.dial = self._dial_live(call.call_sid)

    def caller_named(self, call: Call, name: str) -> None:
        state = self._calls.get(call)
        if state is not None and not state.snapped:
            # Named before anything was said back: the lookup had no name for them.
            state.snapped = True
            state.new_caller = True if self._phone_of(call) else None

    def transfer(self, call: Call, number: str) -> bool:
        state = self._calls.get(call)
        if state is not None:
            state.transferred = True
        return False  # noted; the transfer observer after this one carries it out

    def call_ended(self, call: Call) -> None:
        state = self._calls.pop(call, None)
        if state is None or not call.call_sid:
            return
        if not state.snapped:
            self._snap(state, call)
        if state.dial is None:
            state.dial = self._dial_live(call.call_sid)
        try:
            facts, owner = self._facts(call, state)
        except Exception:
            log.exception("call analysis facts failed", extra={"call_sid": call.call_sid})
            return
        self._spawn(self._finish(facts, owner, state), f"analysis {call.call_sid}")

    # -- the facts -----------------------------------------------------------------------

    @staticmethod
    def _snap(state: _State, call: Call) -> None:
        state.snapped = True
        memory = call.context.memory
        state.new_caller = (True if isinstance(memory, NewCaller)
                            else False if isinstance(memory, Known) else None)

    @staticmethod
    def _phone_of(call: Call) -> str | None:
        ctx = call.context
        raw = ctx.from_number if ctx.direction == "inbound" else ctx.to_number
        try:
            return normalize_phone(raw) if raw else None
        except (InvalidPhoneNumber, ValueError):
            return None

    def _facts(self, call: Call, state: _State) -> tuple[CallFacts, Owner | None]:
        cfg = self._config()
        ctx = call.context
        business, flow = ctx.business, ctx.flow
        phone = self._phone_of(call)
        raw = ctx.from_number if ctx.direction == "inbound" else ctx.to_number
        flow_facts: dict[str, Any] = {}
        if flow is not None:
            flow_facts = {
                "priority": flow.priority, "category": flow.category,
                "problem": flow.problem, "address": flow.address,
                "answers": {f: a.text for f, a in flow.answers.items()},
                "alerted": rank(flow.priority) == rank("URGENT") and wants_alert(flow.business),
            }
        name = ctx.caller_name if isinstance(ctx.caller_name, str) else ""
        facts = CallFacts(
            call_sid=call.call_sid, started_at=state.started, direction=ctx.direction,
            caller_number=phone or raw, caller_number_valid=phone is not None,
            business=business.name if business is not None else "",
            industry=business.industry if business is not None else cfg.nlu.industry,
            zone=business.timezone if business is not None else cfg.nlu.zone,
            turns=list(call.transcript_tail), caller_name=" ".join(name.split()),
            new_caller=state.new_caller,
            questions=[Question(q.field, q.text, q.required)
                       for q in (business.questions if business is not None else [])],
            transferred=state.transferred, end_reason=call.end_reason or "",
            duration_s=call.duration_s, **flow_facts)
        if business is not None:
            owner = Owner(business.owner.phone, business.owner.email,
                          business.numbers[0] if business.numbers else "")
        elif cfg.sms.owner_phone:
            owner = Owner(cfg.sms.owner_phone)
        else:
            owner = None
        return facts, owner

    async def _finish(self, facts: CallFacts, owner: Owner | None, state: _State) -> None:
        live = state.dial
        if live is not None:
            # Read now, not at call end: the dialer's own call_ended has run by this time.
            try:
                outcome = live.conversation.outcome(live.answered_by)
            except Exception:
                log.exception("dial outcome unreadable", extra={"call_sid": facts.call_sid})
                outcome = None
            if outcome:
                facts = _replace(facts, dial_outcome=outcome)
        # The builder is CPU work (entities, triage over the transcript): off the loop.
        await self.analyst.finish(facts, owner, offload=asyncio.to_thread)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        if len(self._tasks) >= MAX_PENDING:
            coro.close()
            self.dropped += 1
            log.error("too many call analyses in flight; dropped one", extra={"what": what})
            return
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let the analyses of ended calls finish (stored before the database closes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def status(self) -> dict[str, Any]:
        s = self.analyst.stats
        return {"analysed": s.analysed, "model_summaries": s.model_summaries,
                "model_fallbacks": s.model_fallbacks, "store_failures": s.store_failures,
                "notices_sent": s.notices_sent, "notices_failed": s.notices_failed,
                "invalid_owner_phones": s.invalid_owner_phones, "dropped": self.dropped,
                "in_flight": len(self._tasks)}


class AnalysisCollector(Collector):
    """The analysis counters on /metrics, read at scrape time."""

    def __init__(self, analyses: CallAnalyses) -> None:
        self.analyses = analyses

    def collect(self) -> Iterator[object]:
        st = self.analyses.status()
        fam = CounterMetricFamily("leadline_call_analyses", "End-of-call analyses, by event",
                                  labels=["event"])
        for event in ("analysed", "model_summaries", "model_fallbacks", "store_failures",
                      "dropped"):
            fam.add_metric([event], st[event])
        yield fam
        notices = CounterMetricFamily("leadline_new_lead_notices",
                                      "Owner new-lead notices, by result", labels=["result"])
        notices.add_metric(["sent"], st["notices_sent"])
        notices.add_metric(["failed"], st["notices_failed"])
        notices.add_metric(["invalid_owner_phone"], st["invalid_owner_phones"])
        yield notices


def _replace(facts: CallFacts, **changes: Any) -> CallFacts:
    import msgspec

    return msgspec.structs.replace(facts, **changes)
