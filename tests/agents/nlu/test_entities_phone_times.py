"""Spoken phone numbers are never read as times: "at four" that starts "four one five, …"
is the number's first digit. Real times next to a number still count."""

from __future__ import annotations

from datetime import datetime

import pytest

from agents.nlu.entities import extract_dates, extract_entities

NOW = datetime(2026, 12, 2, 9, 0)  # a naive clock reading: the business's wall time


@pytest.mark.parametrize(("text", "phone"), [
    ("reach me at four one five, five five five, zero one nine nine", "+14155550199"),
    ("call me at six one seven, five five five, zero one two three", "+16175550123"),
    ("you can get me at four one five five five five oh one nine nine", "+14155550199"),
    ("at four one five double five five zero one nine nine", "+14155550199"),
    ("at four one five triple five, zero one four four", "+14155550144"),
    ("best at area code four one five, five five five, zero one nine nine",
     "+14155550199"),
    ("at 4 1 5 5 5 5 0 1 9 9", "+14155550199"),
    ("try me at two one two, five five five, zero one four seven, thanks", "+12125550147"),
    ("at eight zero zero, five five five, zero one nine nine", None),
    ("at five five five, one two three, four five six seven", None),
    ("um at four, uh, one five, five five five, zero one nine nine", "+14155550199"),
])
def test_spoken_phone_digits_are_no_time(text: str, phone: str | None) -> None:
    e = extract_entities(text, now=NOW)
    assert e.dates == [], e.dates
    if phone is not None:
        assert [p.value for p in e.phones] == [phone]


@pytest.mark.parametrize(("text", "when"), [
    ("my number is four one five five five five zero one nine nine, at four pm works",
     "2026-12-02T16:00:00+00:00"),
    ("its 415 555 0144, call me at four", "2026-12-02T16:00:00+00:00"),
    ("at four, my number is four one five five five five zero one nine nine",
     "2026-12-02T16:00:00+00:00"),
    ("see you at four tomorrow, number 415-555-0199", "2026-12-03T16:00:00+00:00"),
    ("call me at four", "2026-12-02T16:00:00+00:00"),
])
def test_times_beside_a_number_still_count(text: str, when: str) -> None:
    dates = extract_dates(text, now=NOW)
    assert [d.value for d in dates] == [when]


def test_a_day_before_spoken_digits_keeps_the_day_not_the_time() -> None:
    [d] = extract_dates("tomorrow at four one five five five five zero one nine nine",
                        now=NOW)
    assert d.value.startswith("2026-12-03") and d.has_time is False
