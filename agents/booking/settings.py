"""`[booking]`: which calendar meetings go into, and what a bookable slot is.

Validated at load (msgspec runs `__post_init__`; the message names the key), so a typo in
the working hours or an unknown key stops the load instead of surfacing mid-call.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")


def parse_span(span: str, key: str) -> tuple[int, int]:
    """"09:00-17:00" → (540, 1020) minutes after midnight, or ValueError naming `key`."""
    m = _SPAN.fullmatch(span.strip()) if isinstance(span, str) else None
    if m is None:
        raise ValueError(f"{key}: {span!r} is not an 'HH:MM-HH:MM' span")
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    if start >= end or end > 24 * 60:
        raise ValueError(f"{key}: {span!r} must end after it starts")
    return start, end


class GoogleCalendarSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[booking.google]`: the calendar and the credentials that may write to it.

    Either `credentials_file` (an authorized-user or service-account JSON key) or
    `client_id` + `client_secret` + `refresh_token` (OAuth user credentials). A service
    account needs `subject` (domain-wide delegation) to invite attendees."""

    calendar_id: str = "primary"
    credentials_file: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    # The Workspace user a service account acts as (domain-wide delegation).
    subject: str = ""
    base_url: str = "https://www.googleapis.com/calendar/v3"
    token_url: str = "https://oauth2.googleapis.com/token"
    timeout_s: float = 10.0
    # Attempts per request on 429 / 5xx / rate-limit 403 (the first one included).
    max_attempts: int = 4
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.calendar_id.strip():
            raise ValueError("google.calendar_id must not be empty")
        for key in ("base_url", "token_url"):
            if not getattr(self, key).startswith(("http://", "https://")):
                raise ValueError(f"google.{key} must be an http(s) URL")
        if not 0 < self.timeout_s <= 120:
            raise ValueError("google.timeout_s must be between 0 and 120")
        if not 1 <= self.max_attempts <= 10:
            raise ValueError("google.max_attempts must be between 1 and 10")
        if not 0 <= self.backoff_s <= 30:
            raise ValueError("google.backoff_s must be between 0 and 30")
        user = (self.client_id, self.client_secret, self.refresh_token)
        if any(user) and not all(user):
            raise ValueError("google: client_id, client_secret and refresh_token go together")

    @property
    def configured(self) -> bool:
        return bool(self.credentials_file or self.refresh_token)


class BookingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[booking]`: the meetings the agent books (see README "Booking")."""

    provider: Literal["builtin", "google"] = "builtin"
    # The built-in calendar's name (one per server unless you run several).
    calendar: str = "main"
    summary: str = "Meeting with {business}"
    duration_min: int = 30
    buffer_min: int = 10
    # Slot starts are on this grid (minutes after the hour of opening).
    step_min: int = 30
    # The host's working hours and days, in `time_zone`.
    working_hours: str = "09:00-17:00"
    days: list[str] = msgspec.field(default_factory=lambda: list(DAYS[:5]))
    # The calendar's zone; "" = the business's `timezone` (else America/New_York).
    time_zone: str = ""
    # Hours of the callee's own day a slot must fall in (no 6 AM call for the West Coast).
    callee_hours: str = "08:00-20:00"
    # No slot sooner than this after now; none further ahead than `horizon_days`.
    min_notice_min: int = 60
    horizon_days: int = 14
    # Signs the booking link (GET/POST /book/{token}); "" = no booking link served.
    link_secret: str = ""
    # Also serve /book without a token (anyone may book the default calendar).
    public_link: bool = False
    google: GoogleCalendarSettings = msgspec.field(default_factory=GoogleCalendarSettings)

    def __post_init__(self) -> None:
        if not 5 <= self.duration_min <= 480:
            raise ValueError("duration_min must be between 5 and 480")
        if not 0 <= self.buffer_min <= 240:
            raise ValueError("buffer_min must be between 0 and 240")
        if not 5 <= self.step_min <= 240:
            raise ValueError("step_min must be between 5 and 240")
        open_, close = parse_span(self.working_hours, "working_hours")
        if close - open_ < self.duration_min:
            raise ValueError("working_hours are shorter than duration_min")
        parse_span(self.callee_hours, "callee_hours")
        if not self.days:
            raise ValueError("days must list at least one day")
        for day in self.days:
            if day not in DAYS:
                raise ValueError(f"days: unknown day {day!r} (use {', '.join(DAYS)})")
        if self.time_zone:
            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone") \
                    from None
        if not 0 <= self.min_notice_min <= 7 * 24 * 60:
            raise ValueError("min_notice_min must be between 0 and 10080")
        if not 1 <= self.horizon_days <= 90:
            raise ValueError("horizon_days must be between 1 and 90")
        if not 1 <= len(self.calendar) <= 200:
            raise ValueError("calendar must be 1..200 characters")
        if not self.summary.strip() or len(self.summary) > 200:
            raise ValueError("summary must be 1..200 characters")
        if self.provider == "google" and not self.google.configured:
            raise ValueError("provider = 'google' needs google.credentials_file or "
                             "google.client_id/client_secret/refresh_token")
