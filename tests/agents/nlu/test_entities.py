"""Entities in caller turns: spoken phones and emails, relative dates, amounts, addresses."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.nlu import entities
from agents.nlu.entities import (
    extract_addresses,
    extract_amounts,
    extract_dates,
    extract_emails,
    extract_entities,
    extract_phones,
    spoken_digits,
)

ZONE = "America/New_York"
# Tuesday 1 December 2026, 9:00 in New York.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo(ZONE))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("um my number is four one five five five five two six seven one", ["+14155552671"]),
        ("area code 415 555 2671", ["+14155552671"]),
        ("it's area code four one five, five five five, two six seven one", ["+14155552671"]),
        ("four one five, double five five, two six seven oh", ["+14155552670"]),
        ("eight one eight five five five oh one nine nine", ["+18185550199"]),
        ("it's one eight hundred five five five one two one two", ["+18005551212"]),
        ("call me at (415) 555-2671 or 415.555.2672", ["+14155552671", "+14155552672"]),
        ("my cell is +1 212-555-0199", ["+12125550199"]),
        ("four one five five five five twenty six seventy one", ["+14155552671"]),
        ("it's 41 55 55 26 71", ["+14155552671"]),  # odd grouping: joined, then validated
        ("I have two kids and one dog", []),
        ("oh hi, one moment", []),
        ("it's 555 2671", []),  # seven digits: no area code, not a dialable E.164 number
        ("my account number is 1234", []),
    ],
)
def test_phones(text: str, want: list[str]) -> None:
    got = extract_phones(text)
    assert [p.value for p in got] == want
    for phone in got:
        assert phone.text in text


def test_spoken_digits_keep_a_map_to_the_original() -> None:
    text = "call four one five now"
    written, spans = spoken_digits(text)
    assert written == "call 415 now"
    assert len(spans) == len(written)
    start = written.index("415")
    assert text[spans[start][0]:spans[start + 2][1]] == "four one five"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("my email is john dot smith at gmail dot com", ["john.smith@gmail.com"]),
        ("it's j smith underscore 1 at yahoo dot co dot uk", ["jsmith_1@yahoo.co.uk"]),
        ("send it to maria.lopez@example.com please", ["maria.lopez@example.com"]),
        ("Mary dash Ann at Outlook dot com", ["mary-ann@outlook.com"]),
        ("bob plus quotes at fastmail dot fm", []),  # .fm is not a spoken TLD we accept
        ("it's bob at home dot", []),
        ("I'm at the house", []),
        ("we're at work dot com now", []),  # a contraction is no local part
    ],
)
def test_emails(text: str, want: list[str]) -> None:
    assert [e.value for e in extract_emails(text)] == want


@pytest.mark.parametrize(
    ("text", "want", "has_time"),
    [
        ("can you come tomorrow at 3", "2026-12-02T15:00:00-05:00", True),
        ("tomorrow at 10 am works", "2026-12-02T10:00:00-05:00", True),
        ("next Tuesday morning", "2026-12-08T09:00:00-05:00", True),
        ("how about the 14th", "2026-12-14T00:00:00-05:00", False),
        ("in two weeks please", "2026-12-15T00:00:00-05:00", False),
        ("friday at 10:30 am", "2026-12-04T10:30:00-05:00", True),
        ("tonight at 8", "2026-12-01T20:00:00-05:00", True),
        ("at 3 pm", "2026-12-01T15:00:00-05:00", True),
        ("at 8 am", "2026-12-02T08:00:00-05:00", True),  # 8 am today is gone: tomorrow
        ("december 25th at noon", "2026-12-25T12:00:00-05:00", True),
        ("january 5", "2027-01-05T00:00:00-05:00", False),  # next January, not last
        ("the twenty first of december", "2026-12-21T00:00:00-05:00", False),
        ("this weekend", "2026-12-05T00:00:00-05:00", False),
        ("uh the day after tomorrow in the afternoon", "2026-12-03T14:00:00-05:00", True),
        ("see you 12/24", "2026-12-24T00:00:00-05:00", False),
        ("how about 2 o'clock", "2026-12-01T14:00:00-05:00", True),
        ("july 4th", "2027-07-04T00:00:00-04:00", False),  # summer time offset
        ("tomorrow at three", "2026-12-02T15:00:00-05:00", True),  # hours in words
        ("tomorrow at three thirty pm", "2026-12-02T15:30:00-05:00", True),
        ("ten am tomorrow", "2026-12-02T10:00:00-05:00", True),
        ("at nine on monday", "2026-12-07T09:00:00-05:00", True),
        ("at seven tonight", "2026-12-01T19:00:00-05:00", True),
        ("noon tomorrow", "2026-12-02T12:00:00-05:00", True),
    ],
)
def test_dates(text: str, want: str, has_time: bool) -> None:
    got = extract_dates(text, now=NOW, zone=ZONE)
    assert [(d.value, d.has_time) for d in got] == [(want, has_time)], got
    assert got[0].text.lower() in text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "I have 2 kids", "may I ask who's calling", "hold on a second", "wait one second",
        "I'm 45 years old", "March was a rough month", "we've been here 3 years",
        "it has been two weeks since the leak", "I was born in 1985", "it's on the 2nd floor",
        "that's the third time I called", "my kid is in 2nd grade", "I live at 5 main street",
        "about 3 grand", "I sat down", "in the morning", "call me at 4155552671",
        "the second one", "a second opinion", "I'd like to mark it down",
        "at one point he said", "we met at two places", "at ten percent", "I have three kids",
    ],
)
def test_date_false_positives(text: str) -> None:
    assert extract_dates(text, now=NOW, zone=ZONE) == []


def test_dates_follow_the_zone_and_a_naive_now_is_wall_time() -> None:
    utc_now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 9:00 in New York
    ny = extract_dates("tomorrow at 3", now=utc_now, zone=ZONE)
    assert ny[0].value == "2026-12-02T15:00:00-05:00"
    la = extract_dates("tomorrow at 3", now=utc_now, zone="America/Los_Angeles")
    assert la[0].value == "2026-12-02T15:00:00-08:00"
    naive = extract_dates("tomorrow at 3", now=datetime(2026, 12, 1, 9, 0), zone=ZONE)
    assert naive[0].value == "2026-12-02T15:00:00-05:00"


def test_no_invented_year() -> None:
    """A day said without a year resolves within the coming year, never decades away."""
    for text in ("the 14th", "march 3rd", "friday", "in two months", "next month"):
        for got in extract_dates("on " + text, now=NOW, zone=ZONE):
            year = int(got.value[:4])
            assert year in (2026, 2027), (text, got)


def test_unknown_zone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        extract_entities("tomorrow", now=NOW, zone="Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "value", "approximate"),
    [
        ("$250", 250.0, False),
        ("it was two hundred dollars", 200.0, False),
        ("about 3 grand", 3000.0, True),
        ("like twenty five hundred bucks", 2500.0, True),
        ("$1,200.50 total", 1200.5, False),
        ("a hundred bucks", 100.0, False),
        ("five k", 5000.0, False),
        ("the quote was 3,500 dollars", 3500.0, False),
        ("$2.5k", 2500.0, False),
        ("two hundred and fifty dollars", 250.0, False),
    ],
)
def test_amounts(text: str, value: float, approximate: bool) -> None:
    got = extract_amounts(text)
    assert [(a.value, a.approximate, a.currency) for a in got] == [(value, approximate, "USD")]
    assert got[0].text in text


@pytest.mark.parametrize("text", ["I have 2 kids", "I paid 300 for the visit", "one moment",
                                  "call me at 415 555 2671", "a grandkid"])
def test_amount_false_positives(text: str) -> None:
    assert extract_amounts(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("123 Main Street apartment 4B, Springfield and call me",
         "123 Main Street Apt 4B, Springfield"),
        ("I'm at 45 oak avenue springfield illinois 62704 thanks",
         "45 Oak Avenue, Springfield Illinois 62704"),
        ("one two three main street", "123 Main Street"),
        ("the office is at 1600 Pennsylvania Ave NW Washington DC 20500",
         "1600 Pennsylvania Ave NW, Washington DC 20500"),
        ("unit 5 at 88 Elm St.", "88 Elm St"),
        ("um my address is 742 Evergreen Terrace Springfield",
         "742 Evergreen Terrace, Springfield"),
    ],
)
def test_addresses(text: str, value: str) -> None:
    got = extract_addresses(text)
    assert [a.value for a in got] == [value]
    assert got[0].text in text
    assert got[0].parts["number"] and got[0].parts["street"]


@pytest.mark.parametrize("text", ["I live on Main Street", "I have 2 kids on the way",
                                  "it's been 3 days", "room 12 is cold"])
def test_address_false_positives(text: str) -> None:
    assert extract_addresses(text) == []


def test_one_turn_with_everything() -> None:
    text = ("hi my name is Maria Lopez, I'm at 12 Oak Street, my number is four one five "
            "five five five two six seven one, email maria dot lopez at gmail dot com, "
            "can someone come tomorrow at 3, I was quoted about two hundred dollars")
    got = extract_entities(text, now=NOW, zone=ZONE)
    assert [n.value for n in got.names] == ["Maria Lopez"]
    assert [p.value for p in got.phones] == ["+14155552671"]
    assert [e.value for e in got.emails] == ["maria.lopez@gmail.com"]
    assert [d.value for d in got.dates] == ["2026-12-02T15:00:00-05:00"]
    assert [a.value for a in got.amounts] == [200.0]
    assert [a.value for a in got.addresses] == ["12 Oak Street"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_lists_of_spans_from_it(text: str) -> None:
    got = extract_entities(text, now=NOW, zone=ZONE)
    for kind in (got.phones, got.emails, got.dates, got.amounts, got.addresses):
        for item in kind:
            assert item.text.lower() in text.lower()
            assert item.value is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(
    ["zero", "oh", "one", "two", "double", "five", "hundred", "at", "dot", "com", "the", "14th",
     "tomorrow", "$", "3", "grand", "street", "main", "uh", ",", "twenty"]), max_size=30))
def test_word_soup_never_breaks(words: list[str]) -> None:
    text = " ".join(words)
    got = extract_entities(text, now=NOW, zone=ZONE)
    for phone in got.phones:
        assert phone.value.startswith("+")


@pytest.mark.parametrize("text", ["a " * 1000, "a at " * 400, "one hundred and " * 120,
                                  "x at " + "a dot " * 300 + "com", "$" * 2000])
def test_pathological_input_stays_bounded(text: str) -> None:
    """Nested spoken-form patterns must not backtrack without bound on hostile text;
    what is found stays within the per-kind cap."""
    got = extract_entities(text, now=NOW, zone=ZONE)
    for kind in (got.phones, got.emails, got.dates, got.amounts, got.addresses):
        assert len(kind) <= entities.MAX_ITEMS


def test_dates_are_capped_per_turn() -> None:
    got = extract_dates("tomorrow at 3, " * 100, now=NOW, zone=ZONE)
    assert len(got) == entities.MAX_ITEMS


def test_long_input_is_cut() -> None:
    text = "call me at 415 555 2671 " + "blah " * 2000 + " or 212 555 0199"
    assert [p.value for p in extract_entities(text).phones] == ["+14155552671"]
    assert entities.MAX_TEXT_CHARS == 2000
