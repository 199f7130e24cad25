"""Slots and proposals without a calendar: zones, DST, working hours, buffers, the past,
"Thursday instead", spoken confirmations, emails; bad input only ever a BookingInputError."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.booking.core import (
    BookingInputError,
    Interval,
    Rules,
    callee_zone,
    check_start,
    clean_email,
    confirmation,
    free_slots,
    parse_day,
    parse_start,
    propose,
    spoken_time,
)
from agents.booking.settings import BookingSettings

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
LONDON = ZoneInfo("Europe/London")
# Wednesday 2 December 2026, 09:00 in New York.
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def rules(**kw: object) -> Rules:
    return Rules.from_settings(BookingSettings(**kw), "America/New_York")  # type: ignore[arg-type]


def et(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NY).astimezone(UTC)


def test_two_spread_proposals_in_working_hours_after_the_notice() -> None:
    slots = free_slots(rules(), [], now=NOW, callee=NY)
    assert slots[0].start == et(2, 10)  # 09:00 now + 60 min notice
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    first, second = propose(slots)
    assert (first.start, second.start) == (et(2, 10), et(2, 12))
    assert spoken_time(first.start, NY) == "Wednesday, December 2 at 10:00 AM Eastern"
    for s in slots:
        local = s.start.astimezone(NY)
        assert local.weekday() < 5 and time(9) <= local.time() and s.end.astimezone(NY).time() \
            <= time(17)


def test_weekend_is_skipped_and_horizon_bounds() -> None:
    slots = free_slots(rules(horizon_days=6), [], now=NOW, callee=NY, limit=500)
    days = {s.start.astimezone(NY).date() for s in slots}
    assert days == {date(2026, 12, 2), date(2026, 12, 3), date(2026, 12, 4), date(2026, 12, 7)}


def test_callee_zone_keeps_the_callee_s_own_hours_and_speaks_their_time() -> None:
    slots = free_slots(rules(), [], now=NOW, callee=LA)
    # 10:00 Eastern is 7:00 Pacific: too early for the callee.
    assert slots[0].start == et(2, 11)
    assert spoken_time(slots[0].start, LA) == "Wednesday, December 2 at 8:00 AM Pacific"
    assert confirmation(slots[0], LA, "ann.lee@example.com") == (
        "You're booked for Wednesday, December 2 at 8:00 AM Pacific. "
        "I've sent the invitation to ann dot lee at example dot com.")


def test_busy_intervals_and_the_buffer_block_slots() -> None:
    busy = [Interval(et(2, 11), et(2, 11, 30))]
    slots = free_slots(rules(), busy, now=NOW, callee=LA)
    # 11:00 is busy, 11:30 is inside the 10-minute buffer after it.
    assert slots[0].start == et(2, 12)
    no_buffer = free_slots(rules(buffer_min=0), busy, now=NOW, callee=LA)
    assert no_buffer[0].start == et(2, 11, 30)
    # A busy interval just before a slot, ending inside the buffer, blocks it too.
    busy = [Interval(et(2, 11, 35), et(2, 11, 55))]
    starts = [s.start for s in free_slots(rules(), busy, now=NOW, callee=NY)]
    assert et(2, 11) not in starts and et(2, 12) not in starts and et(2, 12, 30) in starts


def test_dst_changes_the_offset_between_host_and_callee() -> None:
    # A London host, a New York callee: the US moves clocks on 14 March 2027, the UK on 28.
    r = rules(time_zone="Europe/London", working_hours="09:00-18:00")
    now = datetime(2027, 3, 11, 9, 0, tzinfo=UTC)
    friday = free_slots(r, [], now=now, callee=NY, day=date(2027, 3, 12))
    tuesday = free_slots(r, [], now=now, callee=NY, day=date(2027, 3, 16))
    assert friday[0].start == datetime(2027, 3, 12, 13, 0, tzinfo=UTC)  # 8 AM EST
    assert tuesday[0].start == datetime(2027, 3, 16, 12, 0, tzinfo=UTC)  # 8 AM EDT
    assert spoken_time(friday[0].start, NY) == "Friday, March 12 at 8:00 AM Eastern"
    assert spoken_time(tuesday[0].start, NY) == "Tuesday, March 16 at 8:00 AM Eastern"
    assert spoken_time(tuesday[0].start, LONDON) == "Tuesday, March 16 at 12:00 PM London time"


def test_wall_times_skipped_by_dst_are_never_offered() -> None:
    r = rules(working_hours="01:00-04:00", days=["sun"], callee_hours="00:00-24:00",
              min_notice_min=0)
    now = datetime(2027, 3, 13, 12, 0, tzinfo=UTC)
    slots = free_slots(r, [], now=now, callee=NY, day=date(2027, 3, 14))
    local = [s.start.astimezone(NY).strftime("%H:%M") for s in slots]
    # 02:00 and 02:30 do not exist that night; 01:30-02:00 local ends at 03:00 EDT.
    assert local == ["01:00", "01:30", "03:00", "03:30"]
    assert len({s.start for s in slots}) == len(slots)


def test_the_past_and_the_notice_are_never_offered() -> None:
    late = datetime(2026, 12, 2, 21, 30, tzinfo=UTC)  # 16:30 Eastern
    assert free_slots(rules(), [], now=late, callee=NY, day=date(2026, 12, 2)) == []
    slots = free_slots(rules(), [], now=late, callee=NY)
    assert slots[0].start == et(3, 9)
    with pytest.raises(BookingInputError, match="past"):
        check_start(et(2, 10), now=late, slots=slots)
    with pytest.raises(BookingInputError, match="not a free slot"):
        check_start(et(3, 9, 10), now=late, slots=slots)
    assert check_start(et(3, 9), now=late, slots=slots) == slots[0]


def test_thursday_instead_gives_thursday_slots() -> None:
    request = parse_day("Hmm, can we do Thursday instead?", now=NOW, zone=NY)
    assert request is not None and request.day == date(2026, 12, 3)
    slots = free_slots(rules(), [], now=NOW, callee=NY, day=request.day)
    picks = propose(slots)
    assert len(picks) == 2
    assert all(p.start.astimezone(NY).date() == date(2026, 12, 3) for p in picks)
    assert spoken_time(picks[0].start, NY) == "Thursday, December 3 at 9:00 AM Eastern"
    afternoon = parse_day("next tuesday afternoon", now=NOW, zone=NY)
    assert afternoon is not None and afternoon.not_before == time(14)
    later = free_slots(rules(), [], now=NOW, callee=NY, day=afternoon.day,
                       not_before=afternoon.not_before)
    assert later[0].start.astimezone(NY).time() == time(14)
    assert parse_day("2026-12-09", now=NOW, zone=NY).day == date(2026, 12, 9)  # type: ignore[union-attr]
    assert parse_day("whatever works", now=NOW, zone=NY) is None
    with pytest.raises(BookingInputError):
        parse_day("2026-02-30", now=NOW, zone=NY)


def test_spoken_time_format() -> None:
    at = datetime(2026, 12, 8, 10, 0, tzinfo=NY)
    assert spoken_time(at, NY) == "Tuesday, December 8 at 10:00 AM Eastern"
    assert spoken_time(at, ZoneInfo("America/Chicago")) == "Tuesday, December 8 at 9:00 AM Central"
    assert spoken_time(at, ZoneInfo("America/Phoenix")) == "Tuesday, December 8 at 8:00 AM Mountain"
    assert spoken_time(at.replace(hour=12, minute=30), NY) == \
        "Tuesday, December 8 at 12:30 PM Eastern"


def test_callee_zone_from_state_then_number_then_fallback() -> None:
    assert callee_zone(state="ca", phone="+12125550123").key == "America/Los_Angeles"
    assert callee_zone(phone="+14155550123").key == "America/Los_Angeles"
    assert callee_zone(phone="+12125550123").key == "America/New_York"
    assert callee_zone(phone="+18005550199", fallback="America/Chicago").key == "America/Chicago"
    assert callee_zone(phone="not a phone", state="ZZ", fallback="").key == "America/New_York"


def test_emails_written_and_spoken() -> None:
    assert clean_email("Ann.Lee@Example.com") == "Ann.Lee@example.com"
    assert clean_email("john dot smith at gmail dot com") == "john.smith@gmail.com"
    for bad in ("", "not an email", "a@b", "x" * 400):
        with pytest.raises(BookingInputError):
            clean_email(bad)


def test_parse_start_offsets_and_naive_times() -> None:
    assert parse_start("2026-12-08T10:00:00-05:00", NY) == datetime(2026, 12, 8, 15, 0,
                                                                     tzinfo=UTC)
    assert parse_start("2026-12-08T10:00", LA) == datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
    assert parse_start("2026-12-08T15:00:00Z", LA) == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    for bad in ("", "tomorrow", "2026-13-01T10:00", "x" * 100):
        with pytest.raises(BookingInputError):
            parse_start(bad, NY)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120))
def test_any_text_is_a_value_or_a_booking_input_error(text: str) -> None:
    for fn in (lambda: parse_start(text, NY), lambda: clean_email(text),
               lambda: parse_day(text, now=NOW, zone=NY)):
        try:
            fn()
        except BookingInputError:
            pass


@pytest.mark.parametrize(("raw", "key"), [
    ({"working_hours": "9-5"}, "working_hours"),
    ({"working_hours": "17:00-09:00"}, "working_hours"),
    ({"days": ["mon", "funday"]}, "days"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"duration_min": 0}, "duration_min"),
    ({"provider": "google"}, "google"),
    ({"google": {"client_id": "x"}}, "client_id"),
    ({"google": {"calendar": "x"}}, "calendar"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_settings_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=key):
        msgspec.convert(raw, BookingSettings)


_ZONES = st.sampled_from(["America/New_York", "America/Los_Angeles", "Europe/London",
                          "Australia/Lord_Howe", "Asia/Kolkata", "America/Phoenix"])


@settings(max_examples=60, deadline=None)
@given(host=_ZONES, callee=_ZONES,
       now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1),
                        timezones=st.just(UTC)),
       busy=st.lists(st.tuples(st.integers(0, 14 * 24 * 4), st.integers(1, 16)), max_size=30),
       buffer_min=st.integers(0, 30))
def test_every_slot_obeys_every_rule(host: str, callee: str, now: datetime,
                                     busy: list[tuple[int, int]], buffer_min: int) -> None:
    r = rules(time_zone=host, buffer_min=buffer_min)
    spans = [Interval(now + timedelta(minutes=15 * a), now + timedelta(minutes=15 * (a + b)))
             for a, b in busy]
    zone = ZoneInfo(callee)
    slots = free_slots(r, spans, now=now, callee=zone, limit=1000)
    pad = timedelta(minutes=buffer_min)
    assert slots == sorted(set(slots))
    for s in slots:
        assert s.end - s.start == timedelta(minutes=30)
        assert now + timedelta(minutes=60) <= s.start < now + timedelta(days=14)
        assert not any(s.overlaps(b, pad) for b in spans)
        local = s.start.astimezone(ZoneInfo(host))
        assert local.weekday() < 5 and 9 * 60 <= local.hour * 60 + local.minute <= 16 * 60 + 30
        mine = s.start.astimezone(zone)
        ends = s.end.astimezone(zone)
        assert 8 * 60 <= mine.hour * 60 + mine.minute
        assert ends.date() == mine.date() and ends.hour * 60 + ends.minute <= 20 * 60
