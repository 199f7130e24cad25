"""The businesses wired into the server: the registry per config, and owner notices.

Wiring only: which business a call is for lives in `agents.business`, the SMS
rules in `sms.conversation`. This module builds a `BusinessRegistry` once per
config object (a hot reload swaps it whole) and sends the owner's texts through
the compliance-checked SMS send, in tasks it keeps until they end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agents.business.alert import OwnerAlerts
from agents.business.flow import CallFlow, TurnOutcome
from agents.business.registry import BusinessRegistry, owner_missed_call_text
from agents.business.settings import BusinessSettings
from store.phones import InvalidPhoneNumber, normalize_phone
from telephony.calls import CallObserver
from telephony.twilio.http import public_base_url
from telephony.twilio.rest import TwilioRest
from telephony.twilio.twiml import say_hangup_twiml

if TYPE_CHECKING:
    from agents.brain import Role
    from ops.config import Config
    from sms.conversation import Conversation
    from store.database import Database
    from telephony.call import Call

log = logging.getLogger("leadline.business")
# Owner notices in flight at once; more are dropped (logged, counted), never queued forever.
MAX_PENDING_NOTICES = 256
# The audit row holding a caller's last issue with a business (`agents.memory`): keyed
# by business and number in the call_sid column (indexed), newest first.
ISSUE_KIND = "caller_issue"
ACK_PATH = "/twilio/alert-ack"
ALERT_STATUS_PATH = "/twilio/alert-status"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _first_phone(*candidates: str) -> str | None:
    """The first candidate that is a phone number, in E.164 (None when none is)."""
    for raw in candidates:
        if not raw:
            continue
        try:
            return normalize_phone(raw)
        except InvalidPhoneNumber:
            continue
    return None


def _issue_key(flow: CallFlow | None) -> str | None:
    """The caller-issue key of a call for a business: per business (a salon never hears
    about the plumber's call), per caller number; None without one that parses."""
    if flow is None or not flow.caller_number:
        return None
    try:
        phone = normalize_phone(flow.caller_number)
    except InvalidPhoneNumber:
        return None
    return f"issue:{phone}:{flow.business.name}"


class _AlertRest(TwilioRest):
    async def create(self, **kwargs: Any) -> str:
        call = await asyncio.wait_for(self._sdk().calls.create_async(**kwargs), self.timeout_s)
        return str(call.sid or "")


class TwilioAlertNotifier:
    """The owner alert's I/O: Twilio REST for the calls (the client made on the first
    alert: most deployments never place one), the SMS side, the audit trail."""

    def __init__(self, config: Callable[[], Config], businesses: Businesses) -> None:
        self._config = config
        self._businesses = businesses
        self._rest: _AlertRest | None = None

    def _client(self) -> _AlertRest:
        if self._rest is None:
            tw = self._config().twilio
            self._rest = _AlertRest(tw.account_sid, tw.auth_token,
                                    base_url=tw.api_base_url or None)
        return self._rest

    async def place_call(self, to: str, from_: str, twiml: str, alert_id: str,
                         ring_timeout_s: int) -> str:
        # Every outbound call passes the compliance engine: an owner notice is not held
        # by quiet hours, but an owner's opt-out, DNC or an invalid number refuses it.
        from agents.compliance.engine import CompliancePolicy, ContactRequest
        from agents.compliance.gate import check_and_audit
        from store.models import utcnow

        decision = await check_and_audit(
            self._businesses._db(),
            ContactRequest(phone=to, channel="voice", purpose="owner_notice", at=utcnow()),
            CompliancePolicy.from_settings(self._config().compliance),
            source=f"owner_alert:{alert_id}")
        if not decision.allowed:
            raise PermissionError(f"refused by compliance: {decision.reason}")
        base = public_base_url(self._config().twilio)
        status_url = f"{base}{ALERT_STATUS_PATH}?alert={alert_id}"
        return await self._client().create(
            to=to, from_=from_, twiml=twiml, status_callback=status_url,
            status_callback_event=STATUS_EVENTS, status_callback_method="POST",
            machine_detection="DetectMessageEnd", async_amd="true",
            async_amd_status_callback=status_url, async_amd_status_callback_method="POST",
            timeout=ring_timeout_s)

    async def hang_up(self, alert_call_sid: str) -> None:
        await self._client().hangup(alert_call_sid)

    async def aclose(self) -> None:
        if self._rest is not None:
            await self._rest.aclose()

    async def send_text(self, to: str, body: str, origin: str) -> None:
        conversation = self._businesses._conversation()
        if conversation is None:
            raise RuntimeError("the SMS side is not running")
        await conversation.send(to, body, "owner_notice", origin)

    async def send_email(self, to: str, subject: str, body: str, origin: str,
                         file_under: str) -> str:
        return await self._businesses._mail.email_owner(file_under, to, subject, body, origin)

    async def record(self, call_sid: str, kind: str, detail: dict[str, object]) -> None:
        db = self._businesses._db()
        if db is not None:
            await self._businesses._write_audit(db, kind, call_sid, dict(detail))


class Businesses(CallObserver):
    """`registry()` for the current config; `notify_no_voice` for the voice webhook; and,
    as a call observer, each caller turn handed to the call's `CallFlow` (the safety line
    to the brain at once, priority changes and capture answers to the audit trail)."""

    def __init__(self, config: Callable[[], Config],
                 conversation: Callable[[], Conversation | None],
                 database: Callable[[], Database | None] = lambda: None,
                 email_sender: Callable[[], Any] = lambda: None) -> None:
        from ops.call_analysis import OpsLeadNotifier

        self._config = config
        self._conversation = conversation
        self._db = database
        # The owner's emails (no-voice notice, unacknowledged alert): compliance, then the
        # email outbox, as the new-lead notice sends them.
        self._mail = OpsLeadNotifier(config, database, conversation, email_sender)
        self.turns_triaged = 0
        self.safety_lines = 0
        self.audit_failures = 0
        self.forged_acks = 0
        self._for: object = None
        self._registry: BusinessRegistry | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.notices_sent = 0
        self.notices_failed = 0
        self._notifier = TwilioAlertNotifier(config, self)
        self.alerts = OwnerAlerts(lambda: self._config().owner_alerts, self._notifier,
                                  ack_url=self._ack_url, from_number=self._alert_from)

    # -- owner alerts ------------------------------------------------------------

    def _ack_url(self, alert_id: str) -> str | None:
        base = public_base_url(self._config().twilio)
        return f"{base}{ACK_PATH}?alert={alert_id}" if base else None

    def _alert_from(self, business: BusinessSettings) -> str:
        if business.numbers:
            return normalize_phone(business.numbers[0])
        return normalize_phone(self._config().sms.from_number)

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(ACK_PATH, self._ack)
        app.router.add_post(ALERT_STATUS_PATH, self._alert_status)

    async def _form(self, request: web.Request) -> dict[str, str] | None:
        from ops.messaging import signature_check

        form = {k: str(v) for k, v in (await request.post()).items()}
        if not signature_check(self._config)(request, form):
            self.forged_acks += 1
            log.warning("rejected an alert webhook with a bad Twilio signature",
                        extra={"path": request.path, "remote": request.remote or ""})
            return None
        return form

    async def _ack(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        alert_id = request.query.get("alert", "")
        acked = self.alerts.acknowledge(alert_id, form.get("Digits", ""))
        log.info("owner alert keypress", extra={"call_sid": alert_id, "acked": acked})
        text = ("Thank you. The alert is acknowledged. Goodbye." if acked
                else "Sorry, that was not 1. We will call again. Goodbye.")
        return web.Response(text=say_hangup_twiml(text), content_type="application/xml")

    async def _alert_status(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        known = self.alerts.status(request.query.get("alert", ""), form.get("CallSid", ""),
                                   form.get("CallStatus", ""), form.get("AnsweredBy", ""))
        if not known:
            log.info("status of an unknown alert call", extra={"call_sid": form.get("CallSid")})
        return web.Response(status=204)

    def registry(self) -> BusinessRegistry | None:
        """None without `[[businesses]]`: calls keep the behaviour of a single-tenant server."""
        businesses = self._config().businesses
        if businesses is not self._for:
            self._for = businesses
            self._registry = BusinessRegistry(businesses) if businesses else None
        return self._registry

    def notify_no_voice(self, business: BusinessSettings, form: dict[str, str]) -> None:
        """Text and email the owner (whichever contacts they have) that a call came in
        their plan could not answer by voice."""
        phone, email = business.owner.phone, business.owner.email.strip()
        call_sid = form.get("CallSid", "")
        if not phone and not email:
            self.notices_failed += 1
            log.warning("no owner.phone or owner.email to notify of a no-voice call",
                        extra={"business": business.name, "call_sid": call_sid})
            return
        text = owner_missed_call_text(business, form.get("From", ""))
        if phone:
            self.spawn(self._send(phone, text, f"no-voice:{call_sid}", call_sid),
                       "owner notice")
        if email:
            file_under = _first_phone(phone, *business.numbers, form.get("From", ""))
            self.spawn(self._email(business, email, text, file_under, call_sid),
                       "owner notice email")

    async def _email(self, business: BusinessSettings, email: str, text: str,
                     file_under: str | None, call_sid: str) -> None:
        if file_under is None:
            self.notices_failed += 1
            log.error("owner notice email not sent: no phone to file it under",
                      extra={"call_sid": call_sid})
            return
        try:
            state = await self._mail.email_owner(
                file_under, email, f"Missed call for {business.name}", text + "\n",
                f"no-voice-email:{call_sid}")
        except Exception:
            self.notices_failed += 1
            log.exception("owner notice email not sent", extra={"call_sid": call_sid})
            return
        if state in ("queued", "deferred", "duplicate"):
            self.notices_sent += 1
        else:
            self.notices_failed += 1
        log.info("owner notice email", extra={"call_sid": call_sid, "state": state})

    # -- calls ---------------------------------------------------------------------

    def transcript(self, call: Call, role: Role, text: str) -> None:
        flow = call.context.flow
        if flow is None or not text.strip():
            return
        if role == "agent":
            flow.agent_said(text)
            return
        outcome = flow.caller_turn(text)
        self.turns_triaged += 1
        if outcome.safety_line is not None:
            self.safety_lines += 1
            call.brain.safety_first(outcome.safety_line)
        self._record(call.call_sid, flow, outcome)

    async def before_greeting(self, call: Call) -> None:
        """What this caller called this business about last time (inside the call's
        greeting budget, beside the caller lookup): `CallContext.last_issue`."""
        flow, db = call.context.flow, self._db()
        key = _issue_key(flow)
        if key is None or db is None:
            return
        rows = await db.list_audit(call_sid=key, kind=ISSUE_KIND, limit=1)
        if rows:
            call.context.last_issue = str(rows[0].detail.get("issue", ""))[:200]

    def call_started(self, call: Call) -> None:
        flow = call.context.flow
        if flow is not None:
            sid = call.call_sid
            flow.on_urgent.append(lambda f: self.alerts.start(sid, f))

    def call_ended(self, call: Call) -> None:
        flow = call.context.flow
        if flow is not None:
            self._audit("call_priority", call.call_sid, flow.summary())
            key, issue = _issue_key(flow), flow.issue()
            if key is not None and issue:
                self._audit(ISSUE_KIND, key, {"issue": issue, "call_sid": call.call_sid,
                                              "priority": flow.priority,
                                              "category": flow.category})

    def _record(self, call_sid: str, flow: CallFlow, outcome: TurnOutcome) -> None:
        if outcome.answer is not None:
            a = outcome.answer
            self._audit("capture", call_sid,
                        {"field": a.field, "question": a.question, "answer": a.text})
        if outcome.raised or outcome.safety_line is not None:
            t = outcome.triage
            self._audit("triage", call_sid, {
                "priority": flow.priority, "category": t.category, "cue": t.cue or "",
                "life_safety": t.life_safety, "safety_line": outcome.safety_line or ""})

    def _audit(self, kind: str, call_sid: str, detail: dict[str, Any]) -> None:
        db = self._db()
        if db is None:
            return
        self.spawn(self._write_audit(db, kind, call_sid, detail), f"audit {kind}")

    async def _write_audit(self, db: Database, kind: str, call_sid: str,
                           detail: dict[str, Any]) -> None:
        try:
            await db.audit(kind, call_sid=call_sid, detail=detail)
        except Exception:
            self.audit_failures += 1
            log.exception("audit write failed", extra={"call_sid": call_sid, "kind": kind})

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        if len(self._tasks) >= MAX_PENDING_NOTICES:
            coro.close()
            self.notices_failed += 1
            log.error("too many owner notices in flight; dropped one", extra={"what": what})
            return
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, phone: str, text: str, origin: str, call_sid: str) -> None:
        conversation = self._conversation()
        if conversation is None:
            self.notices_failed += 1
            log.error("owner notice not sent: the SMS side is not running",
                      extra={"call_sid": call_sid})
            return
        try:
            queued = await conversation.send(phone, text, "owner_notice", origin)
        except Exception:
            self.notices_failed += 1
            log.exception("owner notice not sent", extra={"call_sid": call_sid})
            return
        self.notices_sent += 1
        log.info("owner notice", extra={"call_sid": call_sid, "state": queued.state,
                                         "reason": queued.reason})

    async def stop(self) -> None:
        """Let notices in flight finish (they are short: a store write and a wake-up);
        alerts still retrying are cancelled with the process."""
        await self.alerts.aclose()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._notifier.aclose()
