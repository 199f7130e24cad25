"""The booking link: GET /book/{token} lists free slots as a plain HTML form; POST books
one. GET/POST /book (no token) only with `[booking] public_link = true`.

No JavaScript and no cookies: the form carries a signed, hour-long form token
(`link.py`), so a POST must come from a page we served for a genuine link; the slot is
re-checked against the calendar when it is booked (a stale page gets the new slots and a
409), the email is validated, every field is bounded. Slots are shown in the calendar's
zone, or in `?tz=<IANA zone>` when the link names one (a drip can add the lead's zone).
A second submit of a slot just booked is answered 409 with the slots still free.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from agents.booking.core import (
    BookingInputError,
    Interval,
    clean_email,
    parse_start,
    spoken_time,
    zone_or_default,
)
from agents.booking.link import form_token_ok, make_form_token, read_link_token
from agents.booking.providers import CalendarError
from agents.booking.service import STATS, BookingService, Taken
from agents.booking.settings import BookingSettings

log = logging.getLogger("leadline.booking.web")

MAX_FORM_BYTES = 8 * 1024
MAX_SLOTS_SHOWN = 24
# business name -> its time zone, or None if there is no such business.
BusinessZone = Callable[[str], str | None]


def render_page(*, title: str, slots: list[Interval], zone: ZoneInfo, form_token: str,
                message: str = "", error: bool = False) -> str:
    """The booking page (pure: tested without a server)."""
    e = html.escape
    items = "\n".join(
        f'<li><label><input type="radio" name="start" '
        f'value="{e(s.start.astimezone(zone).isoformat())}"'
        f'{" checked" if i == 0 else ""}> {e(spoken_time(s.start, zone))}</label></li>'
        for i, s in enumerate(slots[:MAX_SLOTS_SHOWN]))
    note = (f'<p class="{"error" if error else "note"}">{e(message)}</p>' if message else "")
    if not slots:
        body = "<p>No free times right now. Please reply to our message and we will call you.</p>"
    else:
        body = (
            f'<form method="post"><input type="hidden" name="f" value="{e(form_token)}">'
            f"<ul>{items}</ul>"
            '<p><label>Email <input type="email" name="email" required maxlength="320">'
            '</label></p><p><label>Name <input type="text" name="name" maxlength="100">'
            '</label></p><p><button type="submit">Book</button></p></form>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title></head><body><h1>{e(title)}</h1>{note}{body}"
            "</body></html>")


def render_booked(title: str, say: str) -> str:
    e = html.escape
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
            f"</title></head><body><h1>Booked</h1><p>{e(say)}</p></body></html>")


class BookingLink:
    """The /book routes; `service()` and `settings()` are read per request (reloads)."""

    def __init__(self, service: Callable[[], BookingService | None],
                 settings: Callable[[], BookingSettings], businesses: BusinessZone,
                 *, clock: Callable[[], float] = time.time) -> None:
        self._service = service
        self._settings = settings
        self._businesses = businesses
        self._clock = clock
        self.booked = 0
        self.refused = 0

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/book", self.page)
        app.router.add_post("/book", self.submit)
        app.router.add_get("/book/{token}", self.page)
        app.router.add_post("/book/{token}", self.submit)

    def _resolve(self, request: web.Request) -> tuple[BookingService, str, str, str]:
        """(service, secret, link, business zone) for a genuine link, or 404."""
        settings = self._settings()
        service = self._service()
        secret = settings.link_secret
        if service is None or not secret:
            raise web.HTTPNotFound(text="no booking link here")
        token = request.match_info.get("token")
        if token is None:
            if not settings.public_link:
                raise web.HTTPNotFound(text="no booking link here")
            business = ""
        else:
            found = read_link_token(secret, token)
            if found is None:
                raise web.HTTPNotFound(text="unknown booking link")
            business = found
        zone = self._businesses(business)
        if zone is None:
            raise web.HTTPNotFound(text="unknown booking link")
        return service, secret, token or "", zone

    def _view_zone(self, request: web.Request, service: BookingService, zone: str) -> ZoneInfo:
        fallback = service.settings.time_zone or zone
        return zone_or_default(request.query.get("tz", "")[:64] or fallback, fallback or
                               "America/New_York")

    async def page(self, request: web.Request) -> web.Response:
        service, secret, link, zone = self._resolve(request)
        view = self._view_zone(request, service, zone)
        return await self._page(service, secret, link, zone, view)

    async def _page(self, service: BookingService, secret: str, link: str, zone: str,
                    view: ZoneInfo, *, message: str = "", error: bool = False,
                    status: int = 200) -> web.Response:
        try:
            slots = await service.slots(callee=view, business_zone=zone,
                                        limit=MAX_SLOTS_SHOWN)
        except CalendarError as exc:
            STATS.calendar_error(exc)
            log.warning("booking page: calendar unavailable: %s", exc)
            return web.Response(status=503, text="The calendar is unavailable; try later.")
        text = render_page(title="Book a time", slots=slots, zone=view,
                           form_token=make_form_token(secret, link, self._clock()),
                           message=message, error=error)
        return web.Response(status=status, text=text, content_type="text/html",
                            charset="utf-8")

    async def submit(self, request: web.Request) -> web.Response:
        service, secret, link, zone = self._resolve(request)
        view = self._view_zone(request, service, zone)
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
        form = await request.post()
        fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        if not form_token_ok(secret, link, fields.get("f", ""), self._clock()):
            self.refused += 1
            STATS.link_refused += 1
            return await self._page(service, secret, link, zone, view, status=403,
                                    error=True, message="This page expired; pick a time again.")
        try:
            start = parse_start(str(fields.get("start", "")), view)
            email = clean_email(str(fields.get("email", "")))
        except BookingInputError as exc:
            self.refused += 1
            STATS.link_refused += 1
            return await self._page(service, secret, link, zone, view, status=400,
                                    error=True, message=str(exc))
        name = " ".join(str(fields.get("name", ""))[:100].split())
        summary = service.settings.summary.replace("{business}", "us")
        if name:
            summary = f"{summary} ({name})"
        try:
            booked = await service.book(
                start, email, callee=view, business_zone=zone, summary=summary,
                description="Booked through the booking link.",
                key=f"web:{link}:{start.isoformat()}:{email}")
        except BookingInputError as exc:
            self.refused += 1
            STATS.link_refused += 1
            return await self._page(service, secret, link, zone, view, status=400,
                                    error=True, message=str(exc))
        except Taken:
            self.refused += 1
            STATS.link_refused += 1
            return await self._page(service, secret, link, zone, view, status=409, error=True,
                                    message="That time was just taken. Please pick another.")
        except CalendarError as exc:
            STATS.calendar_error(exc)
            log.warning("booking link: calendar failed: %s", exc)
            return web.Response(status=503, text="The calendar is unavailable; try later.")
        self.booked += 1
        STATS.link_booked += 1
        return web.Response(text=render_booked("Booked", booked.say),
                            content_type="text/html", charset="utf-8")
