"""The owner alert: an URGENT call phones the owner, retries, then texts.

`OwnerAlerts` runs one alert per customer call (never two: the call's `CallFlow`
fires URGENT once, and the alerts table refuses a second start for the same
call). Each attempt is a Twilio call whose TwiML says who called, from which
number, what is wrong and where, repeated, inside a `<Gather numDigits=1>` whose
action is the acknowledgement webhook. An attempt ends with an ack (done), or
busy / no-answer / failed / voicemail / answered-without-ack, and the next one
waits out the configured backoff. When every call went unacknowledged the owner
gets a text, and an email when `owner.email` is set. Every attempt and its outcome
is recorded on the customer call.

I/O goes through a `Notifier` the composition root implements (Twilio REST,
the compliance-checked SMS send, the audit trail), so this module imports no
carrier and no store.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from twilio.twiml.voice_response import Gather, VoiceResponse

from agents.business.flow import CallFlow
from agents.business.plans import gates
from agents.business.settings import AlertSettings, BusinessSettings

log = logging.getLogger(__name__)

# Statuses that end an alert call (Twilio's CallStatus values).
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
MACHINE = re.compile(r"^(machine|fax)")
MAX_ALERTS = 1_000
# The bound: the first alert call is placed within this many seconds of the
# caller turn that made the call URGENT. Nothing slow runs before the placement (the
# alert starts in the turn's own callback, its first step is the REST create); the
# delay is recorded on every attempt (`placed_after_s`) and a late one is logged and
# counted (`late`), so the bound is measured, not assumed.
PLACE_WITHIN_S = 5.0


class Notifier(Protocol):
    async def place_call(self, to: str, from_: str, twiml: str, alert_id: str,
                         ring_timeout_s: int) -> str:
        """Start an alert call; its Twilio call SID."""

    async def hang_up(self, alert_call_sid: str) -> None:
        """End an alert call (it reached voicemail)."""

    async def send_text(self, to: str, body: str, origin: str) -> None:
        """Text the owner (compliance-checked, idempotent on `origin`)."""

    async def send_email(self, to: str, subject: str, body: str, origin: str,
                         file_under: str) -> str:
        """Email the owner (compliance-checked email outbox, idempotent on `origin`,
        filed under the phone `file_under`); the outbox's state ("queued" …)."""

    async def record(self, call_sid: str, kind: str, detail: dict[str, object]) -> None:
        """Append to the customer call's audit trail."""


def _spoken_number(number: str) -> str:
    """Digits read one by one ("4 1 5 …"), as a person would want to write them down."""
    return " ".join(c for c in number if c.isdigit()) or "unknown"


def alert_message(summary: dict[str, str]) -> str:
    caller = summary.get("caller") or "a caller who did not give a name"
    parts = [f"Urgent call for {summary.get('business', 'your business')}.",
             f"From {caller}, number {_spoken_number(summary.get('number', ''))}."]
    if summary.get("problem"):
        parts.append(f"They said: {summary['problem']}.")
    if summary.get("address"):
        parts.append(f"Address: {summary['address']}.")
    return " ".join(parts)


def alert_text(summary: dict[str, str]) -> str:
    """The owner's text when no call was acknowledged."""
    bits = [f"URGENT call for {summary.get('business', '')}:",
            summary.get("caller") or "caller", summary.get("number") or "unknown number"]
    if summary.get("problem"):
        bits.append(f'said "{summary["problem"][:200]}"')
    if summary.get("address"):
        bits.append(f"at {summary['address']}")
    return " ".join(bits) + ". We phoned you and got no answer; please call them back now."


def alert_email(summary: dict[str, str]) -> str:
    """The owner's email when no call was acknowledged: the text, then each fact on its
    own line."""
    lines = [alert_text(summary), ""]
    for label, key in (("Caller", "caller"), ("Number", "number"), ("Problem", "problem"),
                       ("Address", "address"), ("Priority", "priority")):
        lines.append(f"{label + ':':<10} {summary.get(key) or '(not given)'}")
    return "\n".join(lines) + "\n"


def alert_twiml(summary: dict[str, str], business: BusinessSettings, ack_url: str,
                repeat: int) -> str:
    """`<Gather numDigits=1 action=ack_url>` around the message said `repeat` times."""
    message = alert_message(summary)
    voice = {"voice": business.say_voice} if business.say_voice else {}
    response = VoiceResponse()
    gather = Gather(num_digits=1, action=ack_url, method="POST", timeout=8)
    for _ in range(repeat):
        gather.say(f"{message} Press 1 to acknowledge.", language=business.language, **voice)
    response.append(gather)
    response.say("No key was pressed. We will try again. Goodbye.",
                 language=business.language, **voice)
    response.hangup()
    return str(response)


def wants_alert(business: BusinessSettings) -> bool:
    return (business.emergency_policy == "alert_owner" and bool(business.owner.phone)
            and gates(business.plan).emergency_voice_alerts)


@dataclass
class _Alert:
    call_sid: str
    flow: CallFlow
    attempt_sid: str = ""
    status: str = ""
    answered_by: str = ""
    acked: bool = False
    # Loop time of the URGENT turn (when `start` ran).
    started_at: float = 0.0
    # Seconds from the URGENT turn to the placement of the current attempt (None: not placed).
    placed_after_s: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class OwnerAlerts:
    """One alert per URGENT call; webhooks report statuses and acknowledgements."""

    def __init__(self, settings: Callable[[], AlertSettings], notifier: Notifier, *,
                 ack_url: Callable[[str], str | None],
                 from_number: Callable[[BusinessSettings], str]) -> None:
        self._settings = settings
        self._notifier = notifier
        self._ack_url = ack_url
        self._from = from_number
        self._alerts: dict[str, _Alert] = {}
        self._by_attempt: dict[str, str] = {}
        self.started = 0
        self.acked = 0
        self.texts = 0
        self.failures = 0
        self.late = 0

    def start(self, call_sid: str, flow: CallFlow) -> bool:
        """Begin the alert of `call_sid`; False when it has one already or needs none."""
        if not wants_alert(flow.business) or call_sid in self._alerts:
            return False
        if len(self._alerts) >= MAX_ALERTS:
            self._forget_finished()
        alert = _Alert(call_sid, flow, started_at=asyncio.get_running_loop().time())
        self._alerts[call_sid] = alert
        self.started += 1
        alert.task = asyncio.get_running_loop().create_task(
            self._run(alert), name=f"owner-alert:{call_sid}")
        return True

    def status(self, alert_id: str, attempt_sid: str, status: str,
               answered_by: str = "") -> bool:
        """A status or AMD callback of an alert call; False for one we do not know."""
        alert = self._alerts.get(alert_id)
        if alert is None or self._by_attempt.get(attempt_sid) != alert_id:
            return False
        if attempt_sid == alert.attempt_sid:
            if status:
                alert.status = status
            if answered_by:
                alert.answered_by = answered_by
            alert.changed.set()
        return True

    def acknowledge(self, alert_id: str, digits: str) -> bool:
        """The owner pressed a key; "1" acknowledges. True when the alert is acknowledged."""
        alert = self._alerts.get(alert_id)
        if alert is None:
            return False
        if digits.strip() == "1":
            if not alert.acked:
                alert.acked = True
                self.acked += 1
            alert.changed.set()
        return alert.acked

    async def _run(self, alert: _Alert) -> None:
        try:
            await self._attempts(alert)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("owner alert failed", extra={"call_sid": alert.call_sid})

    async def _attempts(self, alert: _Alert) -> None:
        s = self._settings()
        business = alert.flow.business
        owner = business.owner.phone
        notifier = self._notifier
        ack_url = self._ack_url(alert.call_sid)
        summary = alert.flow.summary()
        for attempt in range(1, s.max_calls + 1):
            if ack_url is None:
                await notifier.record(alert.call_sid, "owner_alert", {
                    "attempt": attempt, "outcome": "no public_url for the ack webhook"})
                break
            alert.attempt_sid, alert.placed_after_s = "", None
            outcome = await self._one_call(alert, attempt, owner, business, summary, ack_url, s)
            await notifier.record(alert.call_sid, "owner_alert", {
                "attempt": attempt, "alert_call_sid": alert.attempt_sid, "outcome": outcome,
                "to": owner, "placed_after_s": alert.placed_after_s})
            if alert.acked:
                await notifier.record(alert.call_sid, "owner_alert_ack",
                                      {"attempt": attempt, "alert_call_sid": alert.attempt_sid})
                return
            if attempt < s.max_calls:
                pause = s.backoff_s[min(attempt - 1, len(s.backoff_s) - 1)]
                if await self._wait(alert, pause, until=lambda: alert.acked):
                    await notifier.record(alert.call_sid, "owner_alert_ack", {"attempt": attempt})
                    return
        self.texts += 1
        try:
            await notifier.send_text(owner, alert_text(summary), f"owner-alert:{alert.call_sid}")
            outcome = "sent"
        except Exception as exc:
            self.failures += 1
            log.exception("owner alert text failed", extra={"call_sid": alert.call_sid})
            outcome = f"failed: {type(exc).__name__}"
        await notifier.record(alert.call_sid, "owner_alert_text", {"to": owner,
                                                                   "outcome": outcome})
        email = business.owner.email.strip()
        if email:
            try:
                outcome = await notifier.send_email(
                    email, f"URGENT call for {business.name}", alert_email(summary),
                    f"owner-alert-email:{alert.call_sid}", owner)
            except Exception as exc:
                self.failures += 1
                log.exception("owner alert email failed", extra={"call_sid": alert.call_sid})
                outcome = f"failed: {type(exc).__name__}"
            await notifier.record(alert.call_sid, "owner_alert_email",
                                  {"to": email, "outcome": outcome})

    async def _one_call(self, alert: _Alert, attempt: int, owner: str,
                        business: BusinessSettings, summary: dict[str, str], ack_url: str,
                        s: AlertSettings) -> str:
        twiml = alert_twiml(summary, business, ack_url, s.repeat)
        alert.status = alert.answered_by = ""
        alert.changed.clear()
        try:
            sid = await self._notifier.place_call(owner, self._from(business), twiml,
                                                  alert.call_sid, s.ring_timeout_s)
        except Exception as exc:
            self.failures += 1
            log.warning("owner alert call not placed: %r", exc,
                        extra={"call_sid": alert.call_sid, "attempt": attempt})
            return f"not placed: {str(exc)[:200]}"
        alert.attempt_sid = sid
        alert.placed_after_s = round(asyncio.get_running_loop().time() - alert.started_at, 3)
        if attempt == 1 and alert.placed_after_s > PLACE_WITHIN_S:
            self.late += 1
            log.warning("owner alert placed %.1f s after the urgent turn (bound %.0f s)",
                        alert.placed_after_s, PLACE_WITHIN_S,
                        extra={"call_sid": alert.call_sid})
        self._by_attempt[sid] = alert.call_sid
        log.info("owner alert call placed", extra={"call_sid": alert.call_sid,
                                                    "alert_call_sid": sid, "attempt": attempt})
        ended = await self._wait(alert, s.outcome_wait_s, until=lambda: (
            alert.acked or alert.status in FINAL or bool(MACHINE.match(alert.answered_by))))
        if alert.acked:
            return "acknowledged"
        if MACHINE.match(alert.answered_by):
            try:
                await self._notifier.hang_up(sid)
            except Exception:
                log.warning("could not hang up an alert call on voicemail",
                            extra={"alert_call_sid": sid})
            return "voicemail"
        if not ended:
            return "no outcome in time"
        if alert.status == "completed":
            # Answered and ended: an ack posted at the very end may still be on its way.
            if await self._wait(alert, s.ack_grace_s, until=lambda: alert.acked):
                return "acknowledged"
            return "answered, not acknowledged"
        return alert.status

    @staticmethod
    async def _wait(alert: _Alert, limit_s: float, *, until: Callable[[], bool]) -> bool:
        """Until `until()` holds (True) or `limit_s` passes (False); woken by callbacks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while not until():
            left = deadline - loop.time()
            if left <= 0:
                return False
            alert.changed.clear()
            try:
                await asyncio.wait_for(alert.changed.wait(), left)
            except TimeoutError:
                return until()
        return True

    def _forget_finished(self) -> None:
        for sid, alert in list(self._alerts.items()):
            if alert.task is not None and alert.task.done():
                del self._alerts[sid]
                self._by_attempt = {k: v for k, v in self._by_attempt.items() if v != sid}

    async def aclose(self) -> None:
        tasks = [a.task for a in self._alerts.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
