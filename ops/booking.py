"""Booking wired into the server: the calendar `[booking]` names, the realtime tools'
service (`agents.booking.tools.DESK`) and the /book link routes.

Wiring only; the rules live in `agents.booking`. The provider is built at start and
again when `[booking]` changes on reload (the old Google session is closed after).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from agents.booking.builtin import BuiltinCalendar
from agents.booking.service import STATS, BookingService
from agents.booking.tools import DESK
from agents.booking.web import BookingLink

if TYPE_CHECKING:
    from aiohttp import web

    from agents.booking.providers import CalendarProvider
    from agents.booking.settings import BookingSettings
    from ops.config import Config

log = logging.getLogger("leadline.booking")


def make_provider(settings: BookingSettings, db: Callable[[], Any]) -> CalendarProvider:
    if settings.provider == "google":
        from agents.booking.google import GoogleCalendar

        return GoogleCalendar(settings.google)
    return BuiltinCalendar(db, settings.calendar,
                           buffer=timedelta(minutes=settings.buffer_min))


class Booking:
    def __init__(self, config: Callable[[], Config], db: Callable[[], Any]) -> None:
        self._config = config
        self._db = db
        self.service: BookingService | None = None
        self._built_for: BookingSettings | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.link = BookingLink(lambda: self.service, lambda: self._config().booking,
                                self._business_zone)

    def _business_zone(self, name: str) -> str | None:
        """A business's zone for the link ("" = the default business, or none)."""
        businesses = self._config().businesses
        if not name:
            default = next((b for b in businesses if b.default), None) or \
                (businesses[0] if businesses else None)
            return default.timezone if default is not None else ""
        found = next((b for b in businesses if b.name == name), None)
        return found.timezone if found is not None else None

    def add_to(self, app: web.Application) -> None:
        self.link.add_to(app)

    def configure(self) -> None:
        """Build the service for the current `[booking]` (start, and reload on change)."""
        settings = self._config().booking
        if self._built_for == settings and self.service is not None:
            return
        old = self.service
        try:
            self.service = BookingService(settings, make_provider(settings, self._db))
        except Exception:
            log.exception("booking provider could not be built; booking tools refuse")
            self.service = None
        self._built_for = settings
        DESK.service = self.service
        if old is not None and old is not self.service:
            try:
                task = asyncio.get_running_loop().create_task(old.provider.close())
            except RuntimeError:
                return
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def start(self) -> None:
        self.configure()

    async def stop(self) -> None:
        service, self.service = self.service, None
        if DESK.service is service:
            DESK.service = None
        if service is not None:
            await service.provider.close()


class BookingCollector(Collector):
    """`agents.booking.service.STATS` on /metrics, read at scrape time."""

    def collect(self) -> Iterator[object]:
        s = STATS
        yield CounterMetricFamily("leadline_booking_booked", "Meetings booked (tools and link)",
                                  value=s.booked)
        yield CounterMetricFamily("leadline_booking_conflicts",
                                  "Bookings refused because the slot was taken meanwhile",
                                  value=s.conflicts)
        errors = CounterMetricFamily("leadline_booking_calendar_errors",
                                     "Calendar failures, by kind", labels=["kind"])
        for kind in ("auth", "forbidden", "rate_limited", "unavailable", "other"):
            errors.add_metric([kind], s.calendar_errors.get(kind, 0))
        yield errors
        yield CounterMetricFamily("leadline_booking_token_refreshes",
                                  "Google OAuth token refreshes", value=s.refreshes)
        yield CounterMetricFamily("leadline_booking_retries",
                                  "Google Calendar requests retried (429, 5xx, timeouts)",
                                  value=s.retries)
        link = CounterMetricFamily("leadline_booking_link_posts",
                                   "Booking link submissions, by result", labels=["result"])
        link.add_metric(["booked"], s.link_booked)
        link.add_metric(["refused"], s.link_refused)
        yield link
