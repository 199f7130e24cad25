"""The queue consumer: one BullMQ job of name "call" becomes at most one phone call.

The queue is the official `bullmq` package (the same Lua scripts as the Node library,
so Node producers see our `returnvalue` and `failedReason` as their own). What this
module adds is the dialing discipline around it:

- validation first (`jobs.parse_job`), then the compliance gate; a job that can never
  be dialed fails without retry (`UnrecoverableError`): `invalid phone number…`,
  `do not call…`; one outside the callee's calling hours goes back to delayed until
  the gate's `next_allowed_at` (not dialed, not failed);
- the idempotency key (`{prefix}:{queue}:{job id}:{created ms}:{attempt}`) is committed in SQL
  before Twilio is asked to dial. BullMQ is at-least-once: a stalled job or one whose
  worker died comes back with the same attempt number, finds its row and attaches to
  the call it holds instead of dialing again. A row reserved without a call SID means
  a worker died between the commit and Twilio's answer: whether Twilio dialed is not
  known here, so the job fails rather than risk a second call. A create that timed out
  is retried as a new attempt, which first asks Twilio (calls by To/From since the
  reservation) and adopts the call if the lost create had placed it;
- the job is held (its lock renewed by bullmq's lock manager) until the call is over,
  which the status callbacks and the media path write to SQL: the same process is woken
  at once, another process finds out by polling `poll_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from agents.compliance.engine import Decision
from store.dialer_models import TERMINAL_STATUSES, DialRecord
from store.errors import StoreError
from telephony.dialer.jobs import CallJob, JobRejected, parse_job
from telephony.dialer.leg import DialFailed, DialRequest
from telephony.dialer.outcome import returnvalue, status_outcome
from telephony.dialer.settings import DialerSettings

log = logging.getLogger("leadline.dialer")

# A call answered and ended whose media side has not reported (the stream never opened,
# or the process holding it died): its outcome comes from the statuses after this long.
MEDIA_GRACE_S = 10.0
# After our own hang-up at max_call_s, how long Twilio gets to say the call ended.
HANGUP_GRACE_S = 60.0
# A redelivered job whose call has not ended in SQL asks Twilio this often: the process
# that died may have been the one its final status callback went to (Twilio does not
# send it again), and without asking the job would wait out max_call_s, fail, and be
# retried as a new attempt — a second call to the same person.
STATUS_CHECK_S = 5.0

ComplianceCheck = Callable[[CallJob, datetime], Awaitable[Decision]]
OutcomeSink = Callable[[str, dict[str, Any]], Awaitable[None]]


class Placer(Protocol):
    async def place(self, request: DialRequest, base_url: str) -> str: ...
    async def hangup(self, call_sid: str) -> None: ...
    async def find(self, to: str, from_: str, since: datetime) -> str | None: ...


class DialStore(Protocol):
    """The store methods the dialer uses (`store.dialer_repo.DialerRepoMixin`)."""

    async def reserve_dial(self, **kw: Any) -> tuple[DialRecord, bool]: ...
    async def dial_placed(self, dial_key: str, call_sid: str) -> DialRecord | None: ...
    async def dial_refused(self, dial_key: str, outcome: str, error: str
                           ) -> DialRecord | None: ...
    async def get_dial(self, dial_key: str) -> DialRecord | None: ...
    async def update_dial_status(self, call_sid: str, status: str, **kw: Any
                                 ) -> DialRecord | None: ...


class DialerStats:
    """Counters for /metrics and the bench (plain ints; a bounded latency window)."""

    def __init__(self) -> None:
        self.jobs = 0
        self.dialed = 0
        self.attached = 0
        self.rejected: dict[str, int] = {}
        self.delayed = 0
        self.dial_errors = 0
        self.outcomes: dict[str, int] = {}
        # ms from the job's creation (producer clock) to our calls.create request.
        self.job_to_dial_ms: deque[float] = deque(maxlen=10_000)

    def reject(self, kind: str) -> None:
        self.rejected[kind] = self.rejected.get(kind, 0) + 1


class CallWaiters:
    """In-process wake-ups by call SID: a status callback or the media path of this
    process ends a worker's wait at once instead of at its next poll."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, call_sid: str) -> asyncio.Event:
        return self._events.setdefault(call_sid, asyncio.Event())

    def notify(self, call_sid: str) -> None:
        event = self._events.get(call_sid)
        if event is not None:
            event.set()

    def discard(self, call_sid: str) -> None:
        self._events.pop(call_sid, None)


def _reject_kind(reason: str) -> str:
    for kind in ("invalid phone number", "do not call", "unknown job name", "invalid job data",
                 "outside calling hours", "twilio refused", "dial state unknown"):
        if reason.startswith(kind):
            return kind.replace(" ", "_")
    return "other"


class Dialer:
    """Turns jobs into calls; `process` is the bullmq processor, `run`/`stop` its life."""

    def __init__(
        self,
        settings: Callable[[], DialerSettings],
        public_url: Callable[[], str | None],
        db: Callable[[], Any],
        placer: Placer,
        compliance: ComplianceCheck,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        waiters: CallWaiters | None = None,
        on_outcome: OutcomeSink | None = None,
        stats: DialerStats | None = None,
        livekit: Placer | None = None,
    ) -> None:
        self._settings = settings
        # Places jobs with `via = "livekit"` (telephony.livekit.dialing); None: refused.
        self.livekit = livekit
        # (names, default) a job's `script` is checked against: the `[sales]` scripts when
        # the composition root sets this, else the `[dialer]` section's own list.
        self.scripts: Callable[[], tuple[tuple[str, ...], str]] | None = None
        self._public_url = public_url
        self._db = db
        self.placer = placer
        self._compliance = compliance
        self.now = now
        self.waiters = waiters or CallWaiters()
        self._on_outcome = on_outcome
        self.stats = stats or DialerStats()
        self.worker: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sinks: set[asyncio.Task[None]] = set()

    # -- life ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming (a background task; Redis being down is retried by bullmq)."""
        from bullmq import Worker

        s = self._settings()
        self.worker = Worker(s.queue, self.process, {
            "connection": s.redis_url,
            "prefix": s.prefix,
            "concurrency": s.concurrency,
            "lockDuration": s.lock_duration_ms,
            "stalledInterval": s.stalled_interval_ms,
            # A job whose worker died mid-call stalls; it must come back to attach, more
            # than once if need be (each return attaches, none dials).
            "maxStalledCount": 5,
            "autorun": False,
            "runRetryDelay": 1000,
            "drainDelay": 5,
        })
        self.worker.on("error", self._worker_error)
        self._task = asyncio.create_task(self._run(), name="dialer-worker")
        log.info("dialer started", extra={"queue": s.queue, "prefix": s.prefix,
                                           "concurrency": s.concurrency})

    async def _run(self) -> None:
        try:
            await self.worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialer worker loop ended")

    def _worker_error(self, err: Any, *args: Any) -> None:
        log.warning("dialer queue error", extra={"error": repr(err)[:300]})

    async def stop(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker.close(force=True), 10)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for task in list(self._sinks):
            task.cancel()

    # -- one job ---------------------------------------------------------------------

    async def process(self, job: Any, token: str) -> dict[str, Any]:
        """The bullmq processor: the job's returnvalue, or an exception bullmq records."""
        from bullmq import DelayedError, UnrecoverableError

        self.stats.jobs += 1
        s = self._settings()
        try:
            names, default = (self.scripts() if self.scripts is not None
                              else (s.scripts, s.default_script))
            call = parse_job(job.name, job.data, default_caller_id=s.caller_id,
                             scripts=names, default_script=default,
                             max_bytes=s.max_job_bytes)
            if call.via == "livekit" and self.livekit is None:
                raise JobRejected("via livekit: this process has no LiveKit SIP trunk; "
                                  "send the job with via twilio")
        except JobRejected as exc:
            self.stats.reject(_reject_kind(exc.reason))
            log.info("call job rejected", extra={"job_id": job.id, "reason": exc.reason})
            raise UnrecoverableError(exc.reason) from None
        attempt = int(getattr(job, "attemptsMade", 0) or 0)
        # The job's creation time is part of its identity: ids restart at 1 when Redis
        # loses its data (or the queue is obliterated), and a new job 1 is not the old one.
        key = f"{s.prefix}:{s.queue}:{job.id}:{int(getattr(job, 'timestamp', 0) or 0)}:{attempt}"
        db = self._db()
        # One read for both questions: is this attempt's dial there (attach), and did an
        # earlier attempt's create time out (`_lost_create`)?
        dials = await db.list_dials(str(job.id))
        record = next((d for d in dials if d.dial_key == key), None)
        attached = record is not None
        if record is not None:
            self.stats.attached += 1
            log.info("call job redelivered; attaching to its dial",
                     extra={"job_id": job.id, "call_sid": record.call_sid})
        else:
            decision = await self._compliance(call, self.now())
            if not decision.allowed:
                reason = self._refusal(decision)
                if reason is None:
                    await self._delay(job, token, decision)
                    raise DelayedError()
                self.stats.reject(_reject_kind(reason))
                raise UnrecoverableError(reason)
            record, created = await db.reserve_dial(
                dial_key=key, queue=s.queue, job_id=str(job.id), attempt=attempt,
                phone=call.phone, caller_id=call.caller_id, campaign_id=call.campaign_id,
                step=call.step, script=call.script)
            if created:
                record = await self._dial(job, key, call, s, dials)
        if not record.call_sid:
            if record.status == "refused":
                raise UnrecoverableError(record.error or "twilio refused the call")
            self.stats.reject("dial_state_unknown")
            raise UnrecoverableError(
                "dial state unknown: a worker stopped between recording the dial and "
                "Twilio's answer; not dialed again")
        final = await self._wait(key, record.call_sid, s, attached=attached, known=record)
        value = returnvalue(final)
        self.stats.outcomes[value["outcome"]] = self.stats.outcomes.get(value["outcome"], 0) + 1
        log.info("call job finished", extra={"job_id": job.id, "call_sid": final.call_sid,
                                              "outcome": value["outcome"]})
        if self._on_outcome is not None:
            task = asyncio.create_task(self._on_outcome(str(job.id), value))
            self._sinks.add(task)
            task.add_done_callback(self._sinks.discard)
        return value

    def _refusal(self, decision: Decision) -> str | None:
        """The failedReason for a refusal that is final; None: try again later."""
        reason = decision.reason
        if reason == "invalid_number":
            return "invalid phone number: not a reachable number"
        if reason in ("opted_out", "dnc"):
            return f"do not call: {'opted out' if reason == 'opted_out' else 'on the DNC list'}"
        if reason in ("quiet_hours", "frequency_cap") and decision.next_allowed_at is not None:
            return None
        return f"outside calling hours: {reason.replace('_', ' ')}"

    async def _delay(self, job: Any, token: str, decision: Decision) -> None:
        """Back to delayed until the gate allows the call. The gate's clock may be
        injected, so the wait is its distance from that clock, laid on the real one."""
        assert decision.next_allowed_at is not None
        wait = max(timedelta(0), decision.next_allowed_at - self.now())
        until_ms = int(time.time() * 1000 + wait.total_seconds() * 1000)
        self.stats.delayed += 1
        log.info("call job delayed", extra={"job_id": job.id, "reason": decision.reason,
                                             "next_allowed_at":
                                             decision.next_allowed_at.isoformat()})
        await job.moveToDelayed(until_ms, token)

    async def _dial(self, job: Any, key: str, call: CallJob, s: DialerSettings,
                    dials: list[DialRecord]) -> DialRecord:
        from bullmq import UnrecoverableError

        db = self._db()
        placer = self.livekit if call.via == "livekit" and self.livekit else self.placer
        base = self._public_url() or ""
        if not base and placer is self.placer:
            await db.dial_refused(key, "failed", "no twilio.public_url to be called back at")
            raise UnrecoverableError("twilio refused the call: no twilio.public_url set")
        contact = call.contact
        params = {
            "DialKey": key, "JobId": str(job.id), "CampaignId": call.campaign_id or "",
            "Step": "" if call.step is None else str(call.step), "Script": call.script,
            "FirstName": contact.first_name, "LastName": contact.last_name,
            "PracticeName": contact.practice_name, "CallerId": call.caller_id,
            "State": contact.state, "Email": contact.email,
        }
        request = DialRequest(to=call.phone, from_=call.caller_id, parameters=params,
                              ring_timeout_s=s.ring_timeout_s, time_limit_s=s.max_call_s)
        created_ms = getattr(job, "timestamp", None)
        if isinstance(created_ms, int | float) and created_ms > 0:
            self.stats.job_to_dial_ms.append(max(0.0, time.time() * 1000 - created_ms))
        adopted = (await self._lost_create(db, job, key, call, dials)
                   if placer is self.placer else None)
        if adopted is not None:
            placed = await db.dial_placed(key, adopted)
            assert placed is not None
            return placed
        try:
            sid = await placer.place(request, base)
        except DialFailed as exc:
            self.stats.dial_errors += 1
            log.warning("dial failed", extra={"job_id": job.id, "error": str(exc),
                                              "permanent": exc.permanent})
            if exc.permanent or exc.status is not None:
                # Twilio answered: no call exists for this attempt.
                await db.dial_refused(key, "failed", f"twilio refused the call: {exc}")
            if exc.permanent:
                self.stats.reject("twilio_refused")
                raise UnrecoverableError(f"twilio refused the call: {exc}") from None
            raise
        self.stats.dialed += 1
        placed = await db.dial_placed(key, sid)
        assert placed is not None
        return placed

    async def _lost_create(self, db: Any, job: Any, key: str, call: CallJob,
                           dials: list[DialRecord]) -> str | None:
        """An earlier attempt of this job whose create timed out (reserved, no SID) may
        have been placed all the same: ask Twilio before dialing again, and adopt the call
        if it exists. The earlier rows are closed either way."""
        prefix = key.rsplit(":", 1)[0] + ":"
        lost = [d for d in dials
                if d.dial_key.startswith(prefix) and d.dial_key != key
                and d.status == "reserved" and not d.call_sid]
        if not lost:
            return None
        since = min(d.created_at for d in lost)
        sid = await self.placer.find(call.phone, call.caller_id, since)
        note = (f"create timed out; Twilio had placed {sid}, adopted by a later attempt"
                if sid else "create timed out; Twilio placed no call")
        for dial in lost:
            await db.dial_refused(dial.dial_key, "failed", note)
        if sid is not None:
            self.stats.attached += 1
            log.warning("a timed-out create had placed a call; adopting it",
                        extra={"job_id": job.id, "call_sid": sid})
        return sid

    async def _wait(self, key: str, call_sid: str, s: DialerSettings, *,
                    attached: bool = False, known: DialRecord | None = None) -> DialRecord:
        """Until the call is over: read the row when woken (a final status callback, the
        media side's end) or every `poll_s`. `known`: the row as just read or written, so
        the first look costs no query."""
        db = self._db()
        event = self.waiters.event(call_sid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.ring_timeout_s + s.max_call_s + HANGUP_GRACE_S
        hung_up = False
        next_check = loop.time() + (0.0 if attached else math.inf)
        try:
            while True:
                event.clear()
                try:
                    record = known or await db.get_dial(key)
                except StoreError as exc:
                    # The call is placed: a database restart must not fail the job, or
                    # BullMQ's retry would be a new attempt and a second call. Wait on.
                    log.info("dial state unreadable; waiting on",
                             extra={"call_sid": call_sid, "error": str(exc)[:200]})
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(s.poll_s)
                    continue
                known = None
                assert record is not None
                if self._finished(record):
                    return record
                now = datetime.now(UTC)
                if (not hung_up and record.answered_at is not None
                        and (now - record.answered_at).total_seconds() > s.max_call_s):
                    hung_up = True
                    log.warning("call over max_call_s; hanging up",
                                extra={"call_sid": call_sid})
                    with contextlib.suppress(Exception):
                        await self.placer.hangup(call_sid)
                if (hung_up or attached) and not record.terminal and loop.time() >= next_check:
                    next_check = loop.time() + STATUS_CHECK_S
                    await self._ask_twilio(call_sid)
                    continue
                if loop.time() > deadline:
                    raise RuntimeError(f"call {call_sid} never reported its end")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), s.poll_s)
        finally:
            self.waiters.discard(call_sid)

    async def _ask_twilio(self, call_sid: str) -> None:
        """Record the call's final status if Twilio says it is over (what its lost status
        callback would have said); errors only mean asking again later."""
        status_of = getattr(self.placer, "status", None)
        if status_of is None:
            return
        try:
            status = await status_of(call_sid)
        except Exception as exc:  # Twilio down or slow: the next check asks again
            log.info("call status lookup failed", extra={"call_sid": call_sid,
                                                          "error": repr(exc)[:200]})
            return
        if status in TERMINAL_STATUSES:
            log.warning("call ended without a status callback we received; recorded from "
                        "Twilio", extra={"call_sid": call_sid, "status": status})
            with contextlib.suppress(StoreError):  # unreadable now: asked again later
                await self._db().update_dial_status(call_sid, status,
                                                    outcome=status_outcome(status))

    @staticmethod
    def _finished(record: DialRecord) -> bool:
        if not record.terminal:
            return False
        if record.answered_at is None or record.media_ended_at is not None:
            return True
        ended = record.ended_at or record.updated_at
        return (datetime.now(UTC) - ended).total_seconds() > MEDIA_GRACE_S
