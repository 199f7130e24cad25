"""Booking without I/O: bookable slots, two proposals, the day a caller asks for, the
callee's zone, the email, and the sentence that confirms it.

Everything takes `now` and returns values, so the rules are tested exactly (DST nights,
zones, buffers) without a calendar or a clock. The shells (`service.py`, the tools, the
booking link) only fetch busy intervals and write events.

Times: the host works `working_hours` on `days` in the calendar's zone; a slot is also
kept inside the callee's own `callee_hours` (a 9 AM Eastern slot is 6 AM in California)
and is said in the callee's zone, because that is the clock they will look at. All
instants are aware datetimes; comparisons are done in UTC.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.booking.settings import DAYS, BookingSettings, parse_span

DEFAULT_ZONE = "America/New_York"
# Proposals are spread out: the second is at least this long after the first on one day.
SPREAD = timedelta(hours=2)
MAX_BUSY = 2000
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


class BookingInputError(ValueError):
    """Something the model or the caller gave cannot be booked; the message says why and
    is meant to be read back to the model (a tool error), never raised into the call."""


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    start: datetime
    end: datetime

    def overlaps(self, other: Interval, pad: timedelta = timedelta(0)) -> bool:
        return self.start < other.end + pad and other.start < self.end + pad


@dataclass(frozen=True, slots=True)
class Rules:
    """`[booking]` resolved for one calendar: minutes, sets and zones ready to use."""

    zone: ZoneInfo
    open_min: int
    close_min: int
    weekdays: frozenset[int]
    duration: timedelta
    buffer: timedelta
    step_min: int
    callee_open: int
    callee_close: int
    min_notice: timedelta
    horizon: timedelta

    @classmethod
    def from_settings(cls, s: BookingSettings, business_zone: str = "") -> Rules:
        open_, close = parse_span(s.working_hours, "working_hours")
        c_open, c_close = parse_span(s.callee_hours, "callee_hours")
        return cls(
            zone=zone_or_default(s.time_zone or business_zone),
            open_min=open_, close_min=close,
            weekdays=frozenset(DAYS.index(d) for d in s.days),
            duration=timedelta(minutes=s.duration_min), buffer=timedelta(minutes=s.buffer_min),
            step_min=s.step_min, callee_open=c_open, callee_close=c_close,
            min_notice=timedelta(minutes=s.min_notice_min),
            horizon=timedelta(days=s.horizon_days),
        )


def zone_or_default(name: str | None, default: str = DEFAULT_ZONE) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo(default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def _wall(day: date, minute: int, zone: ZoneInfo) -> datetime | None:
    """The instant `day` at `minute` (after midnight) in `zone`; None for a wall time that
    does not exist (the hour skipped when clocks go forward)."""
    naive = datetime.combine(day, time(minute // 60, minute % 60))
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware


def _minute_of_day(at: datetime) -> int:
    return at.hour * 60 + at.minute


def free_slots(rules: Rules, busy: Iterable[Interval], *, now: datetime, callee: ZoneInfo,
               day: date | None = None, not_before: time | None = None,
               limit: int = 50) -> list[Interval]:
    """Bookable slots in time order: working hours and days, `min_notice` after `now`,
    within the horizon, `buffer` clear of every busy interval, inside the callee's hours.

    `day` (a date in the callee's zone) keeps that day only; `not_before` (callee wall
    time) drops earlier starts that day, for "Tuesday afternoon"."""
    if now.tzinfo is None:
        raise ValueError("now must be aware")
    starts, ends = _blocked(busy, rules.buffer)
    earliest = now + rules.min_notice
    latest = now + rules.horizon
    out: list[Interval] = []
    for slot in _grid(rules, now, day, callee):
        if slot.start < earliest or slot.start >= latest:
            continue
        # The first blocked span ending after the slot starts; it overlaps if it also
        # starts before the slot ends (spans are merged, so one look is enough).
        i = bisect.bisect_right(ends, slot.start)
        if i < len(ends) and starts[i] < slot.end:
            continue
        local_start = slot.start.astimezone(callee)
        local_end = slot.end.astimezone(callee)
        if day is not None and local_start.date() != day:
            continue
        if not_before is not None and local_start.time() < not_before:
            continue
        if local_end.date() != local_start.date() and _minute_of_day(local_end) != 0:
            continue
        end_min = _minute_of_day(local_end) or 24 * 60
        if _minute_of_day(local_start) < rules.callee_open or end_min > rules.callee_close:
            continue
        out.append(slot)
        if len(out) >= limit:
            break
    return out


def _blocked(busy: Iterable[Interval], pad: timedelta) -> tuple[list[datetime],
                                                                 list[datetime]]:
    """Busy intervals widened by `pad` and merged: parallel sorted starts and ends."""
    spans = sorted((b.start - pad, b.end + pad) for b in list(busy)[:MAX_BUSY]
                   if b.end > b.start)
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in spans:
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _grid(rules: Rules, now: datetime, day: date | None, callee: ZoneInfo) -> Iterator[Interval]:
    """Every working-hours slot start from today (host zone) to the end of the horizon."""
    first = now.astimezone(rules.zone).date()
    last = (now + rules.horizon).astimezone(rules.zone).date()
    if day is not None:
        # The callee's day touches at most the host's day before, same and after.
        first = max(first, day - timedelta(days=1))
        last = min(last, day + timedelta(days=1))
    length = int(rules.duration.total_seconds() // 60)
    minutes = range(rules.open_min, rules.close_min - length + 1, rules.step_min)
    if not minutes:
        return
    current = first
    while current <= last:
        if current.weekday() in rules.weekdays:
            opening = _wall(current, minutes[0], rules.zone)
            closing = _wall(current, minutes[-1], rules.zone)
            if opening is not None and closing is not None \
                    and opening.utcoffset() == closing.utcoffset():
                # No clock change inside the working day: step in absolute time.
                base = opening.astimezone(UTC)
                for minute in minutes:
                    start = base + timedelta(minutes=minute - minutes[0])
                    yield Interval(start, start + rules.duration)
            else:
                for minute in minutes:
                    wall = _wall(current, minute, rules.zone)
                    if wall is not None:
                        start = wall.astimezone(UTC)
                        yield Interval(start, start + rules.duration)
        current += timedelta(days=1)


def propose(slots: Sequence[Interval], n: int = 2) -> list[Interval]:
    """`n` slots to offer: the earliest, then ones spread out (another part of the day or
    another day) so the two are a real choice; the next ones if nothing is spread."""
    if not slots:
        return []
    chosen = [slots[0]]
    for slot in slots[1:]:
        if len(chosen) >= n:
            break
        last = chosen[-1]
        if slot.start - last.start >= SPREAD or slot.start.date() != last.start.date():
            chosen.append(slot)
    for slot in slots:
        if len(chosen) >= n:
            break
        if slot not in chosen:
            chosen.append(slot)
    return sorted(chosen)


# --- zones and speech ----------------------------------------------------------------------

@cache
def _tables() -> dict[str, dict[str, str]]:
    text = resources.files(__package__).joinpath("zones.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {"states": dict(data["states"]), "spoken": dict(data["spoken"])}


def callee_zone(*, phone: str = "", state: str = "", fallback: str = "") -> ZoneInfo:
    """The callee's zone: their state (contact record), else their number's single zone,
    else `fallback` (the calendar's or business's zone). A number that maps to several
    zones (toll-free, some area codes) says nothing and falls back."""
    code = state.strip().upper()
    if code in _tables()["states"]:
        return ZoneInfo(_tables()["states"][code])
    if phone:
        from agents.compliance.rules import number_facts

        zones = number_facts(phone).zones
        if len(zones) == 1:
            return zone_or_default(zones[0], fallback or DEFAULT_ZONE)
    return zone_or_default(fallback)


def zone_word(zone: ZoneInfo, at: datetime) -> str:
    """"Eastern", "Pacific" …; elsewhere "<city> time" ("London time")."""
    abbr = at.astimezone(zone).tzname() or ""
    spoken = _tables()["spoken"].get(abbr)
    if spoken:
        return spoken
    key = getattr(zone, "key", "") or ""
    city = key.rsplit("/", 1)[-1].replace("_", " ")
    return f"{city} time" if city else "UTC"


def spoken_time(at: datetime, zone: ZoneInfo) -> str:
    """"Tuesday, December 8 at 10:00 AM Eastern": what the agent says, in `zone`."""
    local = at.astimezone(zone)
    hour = local.hour % 12 or 12
    half = "AM" if local.hour < 12 else "PM"
    return (f"{local:%A}, {local:%B} {local.day} at {hour}:{local:%M} {half} "
            f"{zone_word(zone, local)}")


def confirmation(slot: Interval, zone: ZoneInfo, email: str, *, invited: bool = True) -> str:
    """The verbal confirmation: date, time and zone, and where the invitation went (a
    calendar that sends no invitation, the built-in one, only has the address noted)."""
    said = spell_email(email)
    tail = (f"I've sent the invitation to {said}." if invited
            else f"I have your email as {said}.")
    return f"You're booked for {spoken_time(slot.start, zone)}. {tail}"


def spell_email(email: str) -> str:
    """An address as it is read back: "john dot smith at gmail dot com"."""
    local, _, domain = email.partition("@")
    return f"{local.replace('.', ' dot ')} at {domain.replace('.', ' dot ')}"


# --- what the caller and the model say ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class DayRequest:
    day: date
    # A time the caller named ("Tuesday afternoon", "Thursday at 3"): slots from then on.
    not_before: time | None = None


def parse_day(text: str, *, now: datetime, zone: ZoneInfo) -> DayRequest | None:
    """The day the caller asks for ("can we do Thursday instead", "December 9",
    "2026-12-09"), relative to `now` in the callee's `zone`; None if no day was said."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[:300]
    m = _ISO_DATE.match(text)
    if m:
        try:
            return DayRequest(date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            raise BookingInputError(f"{text.strip()!r} is not a calendar date") from None
    from agents.nlu.entities import extract_dates

    for mention in extract_dates(text, now=now, zone=getattr(zone, "key", "UTC")):
        when = datetime.fromisoformat(mention.value)
        return DayRequest(when.date(), when.time() if mention.has_time else None)
    return None


def parse_start(raw: str, zone: ZoneInfo) -> datetime:
    """A slot start the model sends: ISO 8601; without an offset it is the callee's time."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        raise BookingInputError("start must be an ISO 8601 date and time, "
                                "e.g. 2026-12-08T10:00:00-05:00")
    try:
        at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BookingInputError(f"start {raw.strip()[:64]!r} is not an ISO 8601 date and "
                                "time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return at.astimezone(UTC)


def clean_email(raw: str) -> str:
    """A deliverable-looking address (syntax only; no DNS during a call), also from
    spoken forms ("john dot smith at gmail dot com"); BookingInputError otherwise."""
    from email_validator import EmailNotValidError, validate_email

    if not isinstance(raw, str) or not raw.strip() or len(raw) > 320:
        raise BookingInputError("an email address is needed to send the invitation")
    candidates = [raw.strip()]
    from agents.nlu.entities import extract_emails

    candidates += [e.value for e in extract_emails(raw)]
    error = ""
    for candidate in candidates:
        try:
            return validate_email(candidate, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            error = error or str(exc)
    raise BookingInputError(f"{raw.strip()[:80]!r} is not a valid email address: {error}")


def check_start(start: datetime, *, now: datetime, slots: Sequence[Interval]) -> Interval:
    """The slot starting at `start`, if it is bookable; BookingInputError says why not."""
    if start <= now:
        raise BookingInputError("that time is in the past; offer one of the free slots")
    for slot in slots:
        if slot.start == start:
            return slot
    raise BookingInputError("that time is not a free slot")
