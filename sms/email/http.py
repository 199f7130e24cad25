"""HTTP routes of the email channel: unsubscribe (page and RFC 8058 one-click), inbound mail.

`GET /email/unsubscribe?t=…` only shows a page with a confirm button: mail scanners and
link previewers fetch every URL in a message, so a GET that unsubscribed would opt people
out who never clicked. `POST` — the mail client's one-click (body
`List-Unsubscribe=One-Click`, RFC 8058) or the page's button — records the opt-out
(consent event on channel "email": marketing stops on every channel) and answers 200
without a redirect, as RFC 8058 asks. A replayed POST changes nothing more. A token that
does not verify gets 400 and changes nothing.

`POST /email/inbound` takes the raw message (see sms/email/inbound.py); with
`[email] inbound_token` set, the provider's webhook URL must carry `?token=` with it.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from sms.email.inbound import InboundMail
from sms.email.settings import EmailSettings
from sms.email.tokens import read_token
from store.errors import StoreError

if TYPE_CHECKING:
    from store.repository import SqlRepository

log = logging.getLogger("leadline.email.http")
MAX_FORM_BYTES = 4096


class EmailHttpStats:
    def __init__(self) -> None:
        self.pages = 0
        self.unsubscribes = 0
        self.repeat_unsubscribes = 0
        self.forged_tokens = 0
        self.inbound = 0
        self.inbound_bad = 0
        self.inbound_forbidden = 0


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           "</title><meta name='viewport' content='width=device-width'></head><body "
           "style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
           f"<h1>{html.escape(title)}</h1>{body}</body></html>")
    return web.Response(status=status, text=doc, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


class EmailRoutes:
    def __init__(self, db: SqlRepository, secret: str, inbound: InboundMail, *,
                 settings: Callable[[], EmailSettings]) -> None:
        self.db = db
        self._secret = secret
        self.inbound_mail = inbound
        self._settings = settings
        self.stats = EmailHttpStats()

    def _forged(self) -> web.Response:
        self.stats.forged_tokens += 1
        log.warning("unsubscribe with an invalid token refused")
        return _page("Link not valid", "<p>This unsubscribe link is not valid. Reply to the "
                     "email with the word STOP and we will remove you.</p>", status=400)

    async def unsubscribe_page(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("t", "")
        phone = read_token(self._secret, token)
        if phone is None:
            return self._forged()
        self.stats.pages += 1
        action = html.escape(f"{request.path}?t={token}", quote=True)
        return _page("Unsubscribe", "<p>Stop all marketing messages from us?</p>"
                     f"<form method='post' action='{action}'>"
                     f"<input type='hidden' name='t' value='{html.escape(token, quote=True)}'>"
                     "<button type='submit'>Unsubscribe</button></form>")

    async def unsubscribe(self, request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return web.Response(status=413, text="too large")
        form = await request.post() if request.can_read_body else {}
        token = request.query.get("t") or str(form.get("t", ""))
        phone = read_token(self._secret, token)
        if phone is None:
            return self._forged()
        one_click = str(form.get("List-Unsubscribe", "")) == "One-Click"
        try:
            if await self.db.is_opted_out(phone):
                self.stats.repeat_unsubscribes += 1
            else:
                await self.db.add_consent_event(
                    phone, "opt_out", "email",
                    "List-Unsubscribe=One-Click" if one_click else "unsubscribe page",
                    source="email_unsubscribe")
                self.stats.unsubscribes += 1
            await self.db.stop_campaigns_for(phone, "opt_out")
        except StoreError as exc:
            log.error("unsubscribe not recorded: %s", exc)
            return _page("Try again", "<p>We could not record that just now; please try "
                         "again in a minute.</p>", status=503)
        return _page("Unsubscribed", "<p>You will get no more marketing messages from us, by "
                     "email or text.</p>")

    async def inbound(self, request: web.Request) -> web.StreamResponse:
        expected = self._settings().inbound_token
        if expected and not hmac.compare_digest(request.query.get("token", ""), expected):
            self.stats.inbound_forbidden += 1
            return web.Response(status=403, text="forbidden")
        ctype = request.content_type
        try:
            if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
                form = await request.post()
                field = form.get("email") or form.get("body-mime")
                if field is None:
                    raise ValueError("form has no 'email' or 'body-mime' field")
                raw = field.file.read() if hasattr(field, "file") else str(field).encode()
            else:
                raw = await request.read()
            outcome = await self.inbound_mail.receive(raw)
        except ValueError as exc:
            self.stats.inbound_bad += 1
            log.warning("inbound email refused: %s", exc)
            return web.json_response({"error": str(exc)[:200]}, status=400)
        except StoreError as exc:
            log.error("inbound email not stored: %s", exc)
            return web.json_response({"error": "store unavailable"}, status=503)
        self.stats.inbound += 1
        return web.json_response(outcome)
