"""aiohttp handlers for Twilio Messaging: `POST /twilio/sms` and `POST /twilio/sms-status`.

Thin shells over `sms.webhooks` (parsing) and `sms.conversation` (what to do).
The signature check is passed in by the composition root, which owns the URL
Twilio signed (`twilio.public_url` or the request) and the auth token; this
package never imports the voice side. Answers: an empty `<Response/>` (text/xml)
for an inbound message — replies go out through the REST API and the outbox,
never as TwiML, so every one of them is gated and recorded; 200 for a status
callback, even for a sid we never sent (Twilio would only retry it); 403 for a
forged signature; 400 for a form we cannot key; 500 when the store is down
(nothing was stored, so Twilio's retry is welcome).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from sms.conversation import Conversation
from sms.webhooks import ERROR_KINDS, WebhookError, parse_inbound, parse_status
from store.errors import StoreError

log = logging.getLogger("leadline.sms.http")

SMS_PATH = "/twilio/sms"
STATUS_PATH = "/twilio/sms-status"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Bad forms logged per kind before going quiet (each is still counted).
_LOG_FIRST = 20

# (request, the form as posted) → True if Twilio signed it.
SignatureCheck = Callable[[web.Request, Mapping[str, str]], bool]


class SmsHttpStats:
    def __init__(self) -> None:
        self.webhooks = 0
        self.status_callbacks = 0
        self.forged = 0
        self.bad: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.store_errors = 0
        self.errors = 0  # anything else that failed a webhook (a bug): logged with its trace


class SmsRoutes:
    def __init__(self, conversation: Conversation, signature_ok: SignatureCheck,
                 stats: SmsHttpStats | None = None) -> None:
        self.conversation = conversation
        self._signature_ok = signature_ok
        self.stats = stats or SmsHttpStats()

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(SMS_PATH, self.inbound)
        app.router.add_post(STATUS_PATH, self.status)

    async def _form(self, request: web.Request) -> tuple[dict[str, str], bool]:
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        if self._signature_ok(request, posted):  # type: ignore[arg-type]
            return form, True
        self.stats.forged += 1
        log.warning("rejected SMS webhook with a bad Twilio signature",
                    extra={"path": request.path, "remote": request.remote or ""})
        return form, False

    def _bad(self, request: web.Request, exc: WebhookError) -> web.Response:
        self.stats.bad[exc.kind] = self.stats.bad.get(exc.kind, 0) + 1
        if self.stats.bad[exc.kind] <= _LOG_FIRST:
            log.warning("bad SMS webhook", extra={"path": request.path, "kind": exc.kind,
                                                  "detail": exc.detail[:200]})
        return web.Response(status=400, text=f"bad request: {exc.kind}")

    async def inbound(self, request: web.Request) -> web.Response:
        self.stats.webhooks += 1
        return await self._handle(request, parse_inbound, self.conversation.receive,
                                  "inbound SMS", web.Response(text=EMPTY_TWIML,
                                                              content_type="text/xml"))

    async def status(self, request: web.Request) -> web.Response:
        self.stats.status_callbacks += 1
        return await self._handle(request, parse_status, self.conversation.status,
                                  "status callback", web.Response(status=200, text=""))

    async def _handle(self, request: web.Request, parse: Callable[[dict[str, str]], Any],
                      act: Callable[[Any], Awaitable[object]], what: str,
                      answer: web.Response) -> web.Response:
        """Signature, parse, act: 403 forged, 400 malformed (counted by kind), 500 when
        the store is down (Twilio retries), `answer` once the event is stored."""
        form, signed = await self._form(request)
        if not signed:
            return web.Response(status=403, text="invalid signature")
        try:
            event = parse(form)
        except WebhookError as exc:
            return self._bad(request, exc)
        try:
            await act(event)
        except StoreError as exc:
            self.stats.store_errors += 1
            log.error("%s not stored: %s", what, exc,
                      extra={"message_sid": event.message_sid})
            return web.Response(status=500, text="store unavailable")
        except Exception:
            self.stats.errors += 1
            log.exception("%s failed", what, extra={"message_sid": event.message_sid})
            return web.Response(status=500, text="internal error")
        return answer
