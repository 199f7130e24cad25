"""`POST /twilio/call-status` and `POST /twilio/amd`: Twilio's word on our outbound calls.

Both are signed like every Twilio webhook (X-Twilio-Signature over the public URL and
the form) and a forged one is refused with 403 and counted. What they say goes to the
dial row in SQL — the process that holds the job may be another one — and wakes a
worker of this process at once. A callback for a call we never dialed is answered 204
(Twilio must not retry it), logged and counted; so is an AMD verdict for a call that
has ended already (recorded, nothing to act on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from store.dialer_models import DIAL_STATUS_RANK
from telephony.dialer.leg import AMD_PATH, CALL_STATUS_PATH
from telephony.dialer.observer import OutboundCalls
from telephony.dialer.outcome import status_outcome
from telephony.dialer.worker import CallWaiters
from telephony.settings import TwilioSettings
from telephony.twilio.http import public_base_url
from telephony.twilio.signature import SignatureChecker

log = logging.getLogger("leadline.dialer")
MAX_FIELD = 200


class CallbackStats:
    def __init__(self) -> None:
        self.status_callbacks = 0
        self.amd_callbacks = 0
        self.forged = 0
        self.unknown_calls = 0
        self.bad_callbacks = 0


class DialerRoutes:
    def __init__(self, twilio: Callable[[], TwilioSettings], db: Callable[[], Any],
                 waiters: CallWaiters, observer: OutboundCalls,
                 stats: CallbackStats | None = None) -> None:
        self._twilio = twilio
        self._db = db
        self.waiters = waiters
        self.observer = observer
        self.stats = stats or CallbackStats()

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(CALL_STATUS_PATH, self.call_status)
        app.router.add_post(AMD_PATH, self.amd)

    async def _form(self, request: web.Request) -> dict[str, str] | None:
        """The form if its signature is Twilio's (or checks are off); None: forged."""
        settings = self._twilio()
        form = {k: str(v)[:MAX_FIELD] for k, v in (await request.post()).items()}
        if not settings.validate_signatures:
            return form
        base = public_base_url(settings, request) or ""
        signature = request.headers.get("X-Twilio-Signature", "")
        if settings.auth_token and signature and SignatureChecker(settings.auth_token).valid(
                base + request.path_qs, form, signature):
            return form
        self.stats.forged += 1
        log.warning("rejected dialer callback with a bad Twilio signature",
                    extra={"path": request.path, "remote": request.remote or ""})
        return None

    async def call_status(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        self.stats.status_callbacks += 1
        sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
        if not sid or status not in DIAL_STATUS_RANK:
            self.stats.bad_callbacks += 1
            log.warning("call status callback without a usable CallSid/CallStatus",
                        extra={"call_sid": sid, "status": status[:40]})
            return web.Response(status=400, text="CallSid and a known CallStatus required")
        duration: int | None = None
        if form.get("CallDuration", "").isdigit():
            duration = int(form["CallDuration"])
        record = await self._db().update_dial_status(
            sid, status, duration_s=duration, answered_by=form.get("AnsweredBy") or None,
            outcome=status_outcome(status))
        if record is None:
            self.stats.unknown_calls += 1
            log.info("status callback for a call we did not dial", extra={"call_sid": sid})
        elif record.terminal:  # only an end changes what a waiting worker does next
            self.waiters.notify(sid)
        return web.Response(status=204)

    async def amd(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if form is None:
            return web.Response(status=403, text="invalid signature")
        self.stats.amd_callbacks += 1
        sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "")
        if not sid or not answered_by:
            self.stats.bad_callbacks += 1
            return web.Response(status=400, text="CallSid and AnsweredBy required")
        record = await self._db().set_dial_answered_by(sid, answered_by)
        if record is None:
            self.stats.unknown_calls += 1
            log.info("AMD callback for a call we did not dial", extra={"call_sid": sid})
            return web.Response(status=204)
        acted = self.observer.answered_by(sid, answered_by)
        if not acted:
            log.info("AMD verdict for a call not live here", extra={
                "call_sid": sid, "answered_by": answered_by, "status": record.status})
        self.waiters.notify(sid)
        return web.Response(status=204)
