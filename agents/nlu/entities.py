"""Phones, emails, dates, amounts, street addresses and names in what a caller said.

Callers speak: "four one five, five five five, two six seven one", "john dot smith
at gmail dot com", "tomorrow at 3", "about three grand". ASR writes that out in
words, so each extractor first turns the spoken form into the written one and then
hands it to a library that knows the written form well:

- phonenumbers (`PhoneNumberMatcher`, Google's libphonenumber metadata, already a
  dependency): finding and validating numbers, E.164 output. Our part is only the
  spoken-digit pass ("oh" as zero, "double five", "eight hundred").
- email-validator (already a dependency, `check_deliverability=False`: no DNS): the
  syntax check after "dot"/"at"/"underscore" are turned into symbols.
- dateparser (scrapinghub, maintained, rule data in the wheel): relative and
  calendar day expressions against `RELATIVE_BASE` with `PREFER_DATES_FROM:
  future`. Its own `search_dates` is too noisy on speech ("may I ask" is May,
  "hold on a second" is a second from now, "2671" is a year, and it drops the bare
  "at 3" of "tomorrow at 3"), so we find candidate spans ourselves with a strict
  pattern, give dateparser only the day part, and read the time of day ourselves.
- text2num (maintained, Rust core, no data download): "two hundred and fifty" →
  250. Chosen over word2number (unmaintained since 2017) and number-parser (last
  release 2023, slower); it also converts whole phrases inside text.
- price-parser (scrapinghub): the digits of an amount with either thousands or
  decimal separators ("1,200.50", "1.200,50").
- usaddress (datamade, a CRF trained on US addresses, model shipped in the wheel):
  labels the parts of a candidate we cut out around a house number and a street
  suffix; it parses an address, it does not find one in a sentence.
- agents.nlu.names: the caller's name, as everywhere else.

No model download and no network at run time. Every extractor is pure: text (and a
clock reading for dates) in, plain structs out; bad input yields empty lists.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
# Items kept per kind and turn: a caller names a handful; more is noise or an attack,
# and each date costs a dateparser call.
MAX_ITEMS = 16
DEFAULT_REGION = "US"
STATS: Counter[str] = Counter()  # refused input by reason, for /metrics


class Phone(msgspec.Struct, frozen=True):
    text: str
    value: str  # E.164


class Email(msgspec.Struct, frozen=True):
    text: str
    value: str


class DateMention(msgspec.Struct, frozen=True):
    """`value` is ISO 8601 with the zone's offset; midnight when no time was said."""

    text: str
    value: str
    has_time: bool


class Amount(msgspec.Struct, frozen=True):
    text: str
    value: float
    currency: str
    approximate: bool


class Address(msgspec.Struct, frozen=True):
    text: str
    value: str
    parts: dict[str, str]


class Name(msgspec.Struct, frozen=True):
    text: str
    value: str


class Entities(msgspec.Struct, frozen=True):
    text: str
    phones: list[Phone]
    emails: list[Email]
    dates: list[DateMention]
    amounts: list[Amount]
    addresses: list[Address]
    names: list[Name]


def extract_entities(text: str, *, now: datetime | None = None, zone: str = "UTC",
                     region: str = DEFAULT_REGION) -> Entities:
    """Every entity in one caller turn. Raises ValueError only for an unknown `zone`."""
    tz = _zone(zone)
    if not isinstance(text, str):
        STATS["not_text"] += 1
        log.warning("entities: not text: %r", type(text).__name__)
        text = ""
    clipped = text[:MAX_TEXT_CHARS]
    return Entities(
        text=text,
        phones=extract_phones(clipped, region=region),
        emails=extract_emails(clipped),
        dates=extract_dates(clipped, now=now, zone=tz.key),
        amounts=extract_amounts(clipped),
        addresses=extract_addresses(clipped),
        names=extract_names(clipped),
    )


def _zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        STATS["unknown_zone"] += 1
        log.warning("entities: unknown time zone %r", zone)
        raise ValueError(f"unknown time zone {zone!r}") from exc


# --- spoken digits ------------------------------------------------------------------

_UNITS = {"zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
          "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_REPEAT = {"double": 2, "triple": 3}
_TOKEN = re.compile(r"\d+|[^\W\d_]+|[^\w\s]")
_GLUE = {",", "-", ".", "uh", "um", "umm", "er", "and"}  # may sit inside a spoken number


def spoken_digits(text: str) -> tuple[str, list[tuple[int, int]]]:
    """`text` with runs of spoken digits written as digits, and for each output
    character the (start, end) of the input it came from.

    "four one five five five five two six seven one" → "4155552671"; "oh" and "o"
    are zero only next to other digits ("oh hi" stays); "double five" → "55";
    "twenty six" → "26"; "eight hundred" → "800".
    """
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    out: list[str] = []
    spans: list[tuple[int, int]] = []

    def emit(s: str, start: int, end: int) -> None:
        out.append(s)
        spans.extend([(start, end)] * len(s))

    i = 0
    prev_end = 0
    while i < len(tokens):
        run, j = _digit_run(tokens, i)
        if run is not None and j > i:
            start, end = tokens[i][1], tokens[j - 1][2]
            if prev_end < start:
                emit(text[prev_end:start], prev_end, start)
            emit(run, start, end)
            prev_end = end
            i = j
            continue
        word, start, end = tokens[i]
        gap = text[prev_end:start]
        if gap:
            emit(gap, prev_end, start)
        emit(word, start, end)
        prev_end = end
        i += 1
    if prev_end < len(text):
        emit(text[prev_end:], prev_end, len(text))
    return "".join(out), spans


def _digit_value(tokens: list[tuple[str, int, int]], i: int) -> tuple[str, int] | None:
    """Digits spoken at tokens[i:], and how many tokens they took."""
    word = tokens[i][0].lower()
    nxt = tokens[i + 1][0].lower() if i + 1 < len(tokens) else ""
    if word in _REPEAT and nxt in _UNITS and nxt not in ("o",):
        return str(_UNITS[nxt]) * _REPEAT[word], 2
    if word in _TENS:
        if nxt in _UNITS and _UNITS[nxt] > 0 and nxt not in ("oh", "o"):
            return str(_TENS[word] + _UNITS[nxt]), 2
        return str(_TENS[word]), 1
    if word in _TEENS:
        return str(_TEENS[word]), 1
    if word in _UNITS:
        if nxt == "hundred":
            return str(_UNITS[word]) + "00", 2
        return str(_UNITS[word]), 1
    return None


def _digit_run(tokens: list[tuple[str, int, int]], i: int) -> tuple[str | None, int]:
    """The longest run of spoken digits (at least three digits) starting at tokens[i]."""
    digits: list[str] = []
    j = i
    last_good = i
    while j < len(tokens):
        word = tokens[j][0].lower()
        got = _digit_value(tokens, j)
        if got is not None:
            digits.append(got[0])
            j += got[1]
            last_good = j
            continue
        if digits and (word in _GLUE or (word.isdigit() and len(word) <= 4)):
            if word.isdigit():
                digits.append(word)
                j += 1
                last_good = j
                continue
            j += 1
            continue
        break
    if not digits:
        return None, i
    run = "".join(digits)
    spoken = any(not tokens[k][0].isdigit() for k in range(i, last_good))
    words = [tokens[k][0].lower() for k in range(i, last_good)]
    # A lone "oh"/"o" or a short count ("two kids") is no spoken number.
    if not spoken or len(run) < 3 or all(w in ("oh", "o") for w in words if not w.isdigit()):
        return None, i
    return run, last_good


# --- phones -------------------------------------------------------------------------


def extract_phones(text: str, *, region: str = DEFAULT_REGION) -> list[Phone]:
    """Valid phone numbers, written or spoken, as E.164, in order, without repeats."""
    import phonenumbers

    written, spans = spoken_digits(text)
    # "area code 415 …" reads fine to people, not to the matcher's grouping rules: the
    # words become spaces of the same length, so the character map still holds.
    written = _AREA_CODE.sub(lambda m: " " * len(m.group(0)), written)
    found: list[Phone] = []
    seen: set[str] = set()
    for match in phonenumbers.PhoneNumberMatcher(written, region,
                                                 leniency=phonenumbers.Leniency.VALID):
        value = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if value in seen:
            continue
        seen.add(value)
        found.append(Phone(text=_original(text, spans, match.start, match.end), value=value))
    if not found:
        found = _collapsed_phone(written, text, spans, region)
    return found[:MAX_ITEMS]


_AREA_CODE = re.compile(r"\b(area code|area cod|the area code is|area code is)\b", re.I)


def _collapsed_phone(written: str, text: str, spans: list[tuple[int, int]],
                     region: str) -> list[Phone]:
    """A number said in odd groups ("41 55 55 26 71"): digits joined, then validated."""
    import phonenumbers

    out = []
    for m in re.finditer(r"\+?\d[\d\s().\-]{8,20}\d", written):
        digits = re.sub(r"\D", "", m.group(0))
        if not 10 <= len(digits) <= 11:
            continue
        try:
            number = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            out.append(Phone(text=_original(text, spans, m.start(), m.end()), value=value))
    return out[:MAX_ITEMS]


def _original(text: str, spans: list[tuple[int, int]], start: int, end: int) -> str:
    if not spans or start >= len(spans):
        return text[start:end]
    return text[spans[start][0]:spans[max(start, end - 1)][1]].strip()


# --- emails -------------------------------------------------------------------------

_TLDS = ("com|net|org|edu|gov|mil|io|co|us|uk|ca|au|de|fr|es|it|nl|info|biz|me|ai|app|dev|"
         "tv|ly|ie|nz|in|mx|br|jp|email|online|xyz|tech")
_LSEP = r"(?:\s*[._+\-]\s*|\s+(?:dot|period|underscore|under\s+score|dash|hyphen|minus|plus)\s+)"
_LATOM = r"[a-z0-9]+"
_SPELLED = r"(?:\b[a-z0-9]\s+)*"  # "j smith" → "jsmith": spelled letters glue on
_LOCAL = rf"{_SPELLED}{_LATOM}(?:{_LSEP}{_SPELLED}{_LATOM})*"
_DSEP = r"(?:\s*\.\s*|\s+dot\s+)"
_AT = re.compile(r"\s*@\s*|\s+at\s+", re.IGNORECASE)
_DOMAIN = re.compile(
    rf"[a-z0-9][a-z0-9\-]*(?:{_DSEP}[a-z0-9][a-z0-9\-]*)*{_DSEP}(?:{_TLDS})\b", re.IGNORECASE)
_LOCAL_BEFORE = re.compile(rf"(?<![\w@.'’])(?:{_LOCAL})$", re.IGNORECASE)
# How far around an "at" to look: the spoken forms nest quantifiers, so each search is
# kept to a window (a spoken address is far shorter) and costs the same on any input.
LOCAL_WINDOW = 64
DOMAIN_WINDOW = 100
_SPOKEN_SYMBOL = [
    (re.compile(r"\s+(?:dot|period)\s+|\s*\.\s*", re.I), "."),
    (re.compile(r"\s+(?:underscore|under\s+score)\s+|\s*_\s*", re.I), "_"),
    (re.compile(r"\s+(?:dash|hyphen|minus)\s+|\s*-\s*", re.I), "-"),
    (re.compile(r"\s+plus\s+|\s*\+\s*", re.I), "+"),
]


def extract_emails(text: str) -> list[Email]:
    """Email addresses, written or spelled out ("j smith underscore 1 at yahoo dot co dot uk")."""
    from email_validator import EmailNotValidError, validate_email

    out: list[Email] = []
    for at in _AT.finditer(text):
        found = _DOMAIN.match(text, at.end(), at.end() + DOMAIN_WINDOW)
        if found is None:
            continue
        before = _LOCAL_BEFORE.search(text, max(0, at.start() - LOCAL_WINDOW), at.start())
        if before is None:
            continue
        local, domain = before.group(0), found.group(0)
        for pattern, symbol in _SPOKEN_SYMBOL:
            local = pattern.sub(symbol, local)
            domain = pattern.sub(symbol, domain)
        candidate = (re.sub(r"\s+", "", local) + "@" + re.sub(r"\s+", "", domain)).lower()
        try:
            value = validate_email(candidate, check_deliverability=False).normalized
        except EmailNotValidError:
            STATS["bad_email"] += 1
            continue
        if value not in (e.value for e in out):
            out.append(Email(text=text[before.start():found.end()].strip(), value=value))
    return out[:MAX_ITEMS]


# --- dates --------------------------------------------------------------------------

_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|"
           "december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_ORD = (r"(?:\d{1,2}(?:st|nd|rd|th)|(?:twenty|thirty)[\s-]?(?:first|second|third|fourth|"
        r"fifth|sixth|seventh|eighth|ninth)|" + "|".join(_ORDINAL_WORDS) + ")")
_DAYNUM = rf"(?:{_ORD}|\d{{1,2}})"
_COUNT = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|couple of|few|\d{1,2})"
_DAY = (
    r"(?:the\s+day\s+after\s+tomorrow|today|tonight|tomorrow|tmrw|tomorow|"
    rf"(?:(?:this|next|coming|this\s+coming)\s+)?(?:{_WEEKDAYS})s?|"
    r"(?:this|next)\s+(?:week|weekend|month)|"
    rf"in\s+{_COUNT}\s+(?:days?|weeks?|months?)|"
    rf"{_COUNT}\s+(?:days?|weeks?)\s+from\s+(?:now|today)|"
    rf"(?:{_MONTHS})\.?\s+(?:the\s+)?{_DAYNUM}(?:,?\s+\d{{4}})?|"
    rf"(?:the\s+)?{_ORD}\s+of\s+(?:{_MONTHS})(?:,?\s+\d{{4}})?|"
    rf"the\s+{_ORD}|"
    r"\d{1,2}/\d{1,2}(?:/\d{2,4})?)"
)
_CLOCK = (r"(?:\d{1,2}(?::\d{2})?\s*(?:a\.?\s?m\.?|p\.?\s?m\.?)|\d{1,2}:\d{2}|"
          r"\d{1,2}\s+o['’]?\s?clock)")
# Hours and minutes in words, as ASR often writes them ("at three", "two thirty pm").
_HOUR_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
               "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty five": 45, "forty-five": 45, "forty": 40,
                 "twenty": 20, "ten": 10, "fifty": 50, "oh five": 5, "o five": 5}
_HW = "|".join(_HOUR_WORDS)
_MW = "|".join(sorted(_MINUTE_WORDS, key=len, reverse=True))
_MERIDIEM = r"(?:a\.?\s?m\.?|p\.?\s?m\.?|o['’]?\s?clock)"
# A worded hour counts only when what follows reads as a time: "at three, tomorrow",
# "at ten am", never "at one point" or "at two places".
_WORD_TIME_END = (r"(?=\s*(?:[,.!?;]|$)|\s+(?:or\s+so|ish|sharp|tomorrow|today|tonight|on|"
                  r"this|next|then|please|works|work|if|and|is|would|okay|ok|good|in\s+the|"
                  + _WEEKDAYS + r"))")
_TIME = (
    rf"(?:(?:at|around|about|by|after|before|like)\s+)?(?:{_HW})(?:\s+(?:{_MW}))?\s*{_MERIDIEM}|"
    rf"(?:at|around|by|after|before)\s+(?:{_HW})(?:\s+(?:{_MW}))?{_WORD_TIME_END}|"
    rf"(?:(?:at|around|about|by|after|before|like)\s+)?{_CLOCK}|"
    r"(?:at|around|by|after|before)\s+\d{1,2}(?:\s+or\s+so)?(?![\w:])(?!\s+(?:[a-z]+\s+)?"
    r"(?:street|st|avenue|ave|road|rd|drive|dr|lane|ln|way|court|ct|main|blvd|people|kids|"
    r"minutes|hours|days|weeks|months|years|dollars|bucks|grand|k|thousand|hundred|percent|"
    r"times|of|more|less|degrees|feet|inches|miles))|"
    r"(?:at\s+)?(?:noon|midday|midnight)|(?:in\s+the\s+)?(?:morning|afternoon|evening)"
)
_DATE = re.compile(
    rf"\b(?:(?P<day1>{_DAY})(?:\s*,?\s*(?:at\s+|around\s+|in\s+the\s+)?(?P<time1>{_TIME}))?"
    rf"|(?P<time2>{_TIME})(?:\s*,?\s*(?:on\s+)?(?P<day2>{_DAY}))?)\b",
    re.IGNORECASE,
)
_ORDINAL_LEADS = {"", "do", "with", "be", "on", "for", "by", "until", "till", "before", "after",
                  "from", "about",
                  "maybe", "say", "or", "and", "is", "uh", "um", "like", "probably"}
_ORDINAL_TAILS = {"", "of", "at", "in", "works", "work", "is", "or", "then", "please", "would",
                  "could", "maybe", "and", "if", "around", "after", "before", "morning",
                  "afternoon", "evening", "good", "okay", "ok", "thanks", "for", "that", "instead",
                  "possibly", "perhaps", "sounds", "too"}
_PARTS_OF_DAY = {"morning": time(9), "afternoon": time(14), "evening": time(18),
                 "tonight": time(19), "noon": time(12), "midday": time(12),
                 "midnight": time(0)}


def extract_dates(text: str, *, now: datetime | None = None,
                  zone: str = "UTC") -> list[DateMention]:
    """Day and time expressions resolved against `now` in `zone`, future preferred.

    A bare time ("at 3") is the next such time; an hour from 1 to 7 without am/pm is
    taken as afternoon, because callers book during the day, not at 3 a.m.
    """
    tz = _zone(zone)
    if now is None:
        base = datetime.now(tz)
    elif now.tzinfo is None:
        base = now.replace(tzinfo=tz)  # a naive clock reading is the business's wall time
    else:
        base = now.astimezone(tz)
    out: list[DateMention] = []
    days: dict[str, Any] = {}  # one dateparser call per distinct day phrase
    numbers: list[tuple[int, int]] | None = None
    for m in _DATE.finditer(text):
        if len(out) >= MAX_ITEMS:
            break
        day_text = (m.group("day1") or m.group("day2") or "").lower() or None
        time_text = (m.group("time1") or m.group("time2") or "").lower() or None
        if time_text is not None:
            if numbers is None:
                numbers = _digit_runs(text)
            group = "time1" if m.group("time1") else "time2"
            if _inside(m.span(group), numbers):
                # "call me at four one five, five five five …": the hour word starts a
                # phone number, it is no time.
                time_text = None
                if day_text is None:
                    continue
        if day_text is not None and re.fullmatch(rf"the\s+{_ORD}", day_text.strip()):
            # "the 14th" is a day only after a word that introduces one ("on the 14th",
            # "how about the 14th") or alone; "the 2nd floor", "the third time" are not.
            before = text[max(0, m.start() - 40):m.start()].lower().split()[-1:] or [""]
            after = re.findall(r"[a-z]+", text[m.end():m.end() + 40].lower())[:1] or [""]
            if before[0] not in _ORDINAL_LEADS or after[0] not in _ORDINAL_TAILS:
                continue
        if day_text is None and time_text is not None and re.fullmatch(
                r"(?:in\s+the\s+)?(?:morning|afternoon|evening)", time_text.strip()):
            continue  # "in the morning" alone is too vague to book
        resolved = _resolve(day_text, time_text, base, days)
        if resolved is None:
            continue
        when, has_time = resolved
        out.append(DateMention(text=m.group(0).strip(), value=when.isoformat(),
                               has_time=has_time))
    return out


# Digits in a row (spoken or written, with the glue people put between groups) that
# make a phone number rather than a time: at least this many.
_PHONE_RUN_DIGITS = 7
_RUN = re.compile(r"\+?\d[\d\s,.\-()]*\d")


def _digit_runs(text: str) -> list[tuple[int, int]]:
    """Spans of `text` holding a run of at least seven digits, spoken or written."""
    written, spans = spoken_digits(text)
    runs = []
    for m in _RUN.finditer(written):
        if sum(c.isdigit() for c in m.group(0)) >= _PHONE_RUN_DIGITS:
            start, end = m.start(), m.end() - 1
            if spans and end < len(spans):
                runs.append((spans[start][0], spans[end][1]))
            else:
                runs.append((start, end + 1))
    return runs


def _inside(span: tuple[int, int], runs: list[tuple[int, int]]) -> bool:
    """The time's words overlap a digit run (its hour word is the run's first digit)."""
    start, end = span
    return any(s < end and start < e for s, e in runs)


def _resolve(day_text: str | None, time_text: str | None, base: datetime,
             days: dict[str, Any]) -> tuple[datetime, bool] | None:
    tod = _time_of_day(time_text, day_text)
    if day_text is None:
        if tod is None:
            return None
        when = base.replace(hour=tod.hour, minute=tod.minute, second=0, microsecond=0)
        if when <= base:
            when += timedelta(days=1)
        return when, True
    if day_text not in days:
        days[day_text] = _day(day_text, base)
    day = days[day_text]
    if day is None:
        return None
    explicit_year = re.search(r"\b(19|20)\d\d\b", day_text) is not None
    if not explicit_year and not (base.date() - timedelta(days=1) <= day
                                  <= base.date() + timedelta(days=366)):
        STATS["date_out_of_range"] += 1
        return None  # an invented year: the caller said no year
    at = tod or time(0)
    when = datetime.combine(day, at, tzinfo=base.tzinfo)
    return when, tod is not None


def _day(day_text: str, base: datetime) -> Any:
    import dateparser

    phrase = re.sub(r"\s+", " ", day_text.strip())
    for word, n in sorted(_ORDINAL_WORDS.items(), key=lambda kv: -len(kv[0])):
        phrase = re.sub(rf"\b(twenty|thirty)[\s-]?{word}\b",
                        lambda m, n=n: f"{(20 if m.group(1) == 'twenty' else 30) + n}th", phrase)
        phrase = re.sub(rf"\b{word}\b", f"{n}th", phrase)
    phrase = re.sub(r"\b(tmrw|tomorow)\b", "tomorrow", phrase)
    phrase = re.sub(r"\bcouple of\b", "two", phrase)
    phrase = re.sub(r"\bfew\b", "three", phrase)
    phrase = re.sub(r"\bthis coming\b|\bcoming\b", "next", phrase)
    phrase = re.sub(r"^(the day after tomorrow)$", "in 2 days", phrase)
    weekday = re.fullmatch(rf"(?:(this|next) )?({_WEEKDAYS})s?", phrase)
    if weekday:
        # "Tuesday" and "this Tuesday" are the next Tuesday after today; "next Tuesday"
        # the same unless that is within the next two days, then the week after.
        target = _WEEKDAYS.split("|").index(weekday.group(2))
        ahead = (target - base.weekday()) % 7 or 7
        if weekday.group(1) == "next" and ahead <= 2:
            ahead += 7
        return (base + timedelta(days=ahead)).date()
    if re.fullmatch(r"(this|next) weekend", phrase):
        ahead = (5 - base.weekday()) % 7 or 7
        if phrase.startswith("next") and ahead <= 2:
            ahead += 7
        return (base + timedelta(days=ahead)).date()
    if phrase == "tonight":
        return base.date()
    nth = re.fullmatch(r"the (\d{1,2})(?:st|nd|rd|th)", phrase)
    if nth:
        # The next date with that day of the month, today included.
        day = base.date()
        for _ in range(62):
            if day.day == int(nth.group(1)):
                return day
            day += timedelta(days=1)
        return None
    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": base.replace(tzinfo=None),
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
        "DATE_ORDER": "MDY",
    }
    try:
        parsed = dateparser.parse(phrase, languages=["en"], settings=settings)
    except (ValueError, OverflowError, TypeError, AttributeError):
        STATS["date_parse_error"] += 1
        return None
    return parsed.date() if parsed is not None else None


def _words_to_clock(t: str) -> str:
    """"two thirty pm" → "2:30 pm", "at three" → "at 3"."""
    m = re.search(rf"\b({_HW})(?:\s+({_MW}))?\b", t)
    if m is None:
        return t
    clock = str(_HOUR_WORDS[m.group(1)])
    if m.group(2):
        clock += f":{_MINUTE_WORDS[m.group(2)]:02d}"
    return t[:m.start()] + clock + t[m.end():]


def _time_of_day(time_text: str | None, day_text: str | None) -> time | None:
    if day_text and day_text.strip() == "tonight" and time_text is None:
        return _PARTS_OF_DAY["tonight"]
    if time_text is None:
        return None
    t = time_text.strip()
    for word, at in _PARTS_OF_DAY.items():
        if re.search(rf"\b{word}\b", t):
            return at
    t = _words_to_clock(t)
    m = re.search(r"(\d{1,2})(?::(\d{2}))?\s*(a\.?\s?m\.?|p\.?\s?m\.?)?", t)
    if m is None:
        return None
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    meridiem = (m.group(3) or "").replace(".", "").replace(" ", "")
    if hour > 23 or minute > 59 or (meridiem and not 1 <= hour <= 12):
        return None
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    elif not meridiem and (1 <= hour <= 7 or (hour < 12 and day_text is not None
                                               and "tonight" in day_text)):
        hour += 12
    return time(hour, minute)


# --- amounts ------------------------------------------------------------------------

_NUMBER_WORDS = (
    r"(?:(?:a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|thousand|million|and)(?:[\s-]+|\b)){1,10}"
)  # bounded: "two hundred and fifty thousand five hundred" is seven words
_NUM = rf"(?:\d{{1,3}}(?:[,\s]\d{{3}})+(?:\.\d{{1,2}})?|\d+(?:\.\d{{1,2}})?|{_NUMBER_WORDS})"
_MULT = r"(?:k|grand|thousand|million|mil)"
_CUR = r"(?:dollars?|bucks|usd|us dollars)"
_APPROX = (r"(?:about|around|roughly|approximately|approx|like|maybe|almost|nearly|close to|"
           r"under|over|up to|at least|at most|less than|more than)")
_AMOUNT = re.compile(
    rf"(?:(?P<approx>{_APPROX})\s+)?(?:"
    rf"\$\s?(?P<n1>{_NUM})\s*(?P<m1>{_MULT})?\b|"
    rf"(?P<n2>{_NUM})\s*(?P<m2>{_MULT})?\s*{_CUR}\b|"
    rf"(?P<n3>{_NUM})\s*(?P<m3>grand|k)\b)",
    re.IGNORECASE,
)
_MULTIPLIERS = {"k": 1000, "grand": 1000, "thousand": 1000, "million": 1_000_000,
                "mil": 1_000_000}


def extract_amounts(text: str) -> list[Amount]:
    """Money amounts: "$250", "two hundred dollars", "about 3 grand" (US dollars)."""
    out: list[Amount] = []
    for m in _AMOUNT.finditer(text):
        raw = m.group("n1") or m.group("n2") or m.group("n3")
        mult = (m.group("m1") or m.group("m2") or m.group("m3") or "").lower()
        value = _number(raw.strip())
        if value is None or value <= 0:
            continue
        if mult:
            value *= _MULTIPLIERS[mult]
        span = text[m.start():m.end()].strip()
        out.append(Amount(text=span, value=float(value), currency="USD",
                          approximate=m.group("approx") is not None))
    return out[:MAX_ITEMS]


def _number(raw: str) -> Decimal | None:
    if re.search(r"\d", raw):
        from price_parser import Price

        amount = Price.fromstring(raw.replace(" ", ",")).amount
        return Decimal(amount) if amount is not None else None
    from text_to_num import text2num

    words = re.sub(r"[\s-]+", " ", raw.lower()).strip()
    words = re.sub(r"\band$", "", words).strip()
    words = re.sub(r"^a\b", "one", words)
    if not words or words in ("and", "a"):
        return None
    try:
        return Decimal(text2num(words, "en"))
    except (ValueError, InvalidOperation):
        return None


# --- addresses ----------------------------------------------------------------------

_SUFFIXES = (
    "street|st|avenue|ave|av|road|rd|drive|dr|lane|ln|boulevard|blvd|court|ct|way|place|pl|"
    "circle|cir|terrace|ter|parkway|pkwy|highway|hwy|trail|trl|square|sq|loop|pike|row|alley|"
    "crescent|run|path|point|pt"
)
_ADDRESS_START = re.compile(
    rf"\b\d{{1,6}}[a-z]?\s+(?:[nsew]\.?\s+|north\s+|south\s+|east\s+|west\s+)?"
    rf"(?:(?!(?:at|and|on|in|to|for|is|my|or|but|of|from|by|near)\b)[a-z0-9][\w'.-]*\s+){{0,3}}?"
    rf"(?:{_SUFFIXES})\b\.?",
    re.IGNORECASE,
)
_ADDRESS_STOP = {
    "and", "but", "so", "because", "please", "thanks", "thank", "call", "my", "i", "im",
    "its", "is", "we", "you", "can", "could", "will", "if", "when", "or", "the", "that",
    "which", "where", "near", "by", "next", "across", "behind", "right", "okay", "ok",
    "yeah", "uh", "um", "in", "on", "at", "to", "for", "it", "there", "he", "she", "they",
    "today", "tomorrow", "tonight", "yesterday", "now", "asap", "apartment", "apt",
    "unit", "suite", "with", "from", "about", "was", "are", "be", "has", "have",
}
_ADDRESS_LABELS = {
    "AddressNumber": "number", "AddressNumberPrefix": "number", "AddressNumberSuffix": "number",
    "StreetNamePreDirectional": "street", "StreetNamePreModifier": "street",
    "StreetNamePreType": "street", "StreetName": "street", "StreetNamePostType": "street",
    "StreetNamePostDirectional": "street", "StreetNamePostModifier": "street",
    "OccupancyType": "unit", "OccupancyIdentifier": "unit", "SubaddressType": "unit",
    "SubaddressIdentifier": "unit", "BuildingName": "unit",
    "PlaceName": "city", "StateName": "state", "ZipCode": "zip",
}
_DIRECTIONALS = {"n", "s", "e", "w", "ne", "nw", "se", "sw"}
_UNIT = re.compile(r"\s*,?\s*(?:apartment|apt|unit|suite|ste|number|no|#)\.?\s*#?\s*[\w-]{1,6}\b",
                   re.IGNORECASE)


def extract_addresses(text: str) -> list[Address]:
    """US street addresses with a house number and a street type ("123 Main Street apt 4B")."""
    import usaddress

    written, spans = spoken_digits(text)
    out: list[Address] = []
    for m in _ADDRESS_START.finditer(written):
        unit = _UNIT.match(written, m.end())
        unit_end = unit.end() if unit else m.end()
        end = _place_tail(written, unit_end)
        candidate = written[m.start():unit_end].strip(" ,.")
        tail = written[unit_end:end].strip(" ,.")
        if tail:  # a comma before the place helps the CRF tell a city from a unit
            candidate = f"{candidate}, {tail}"
        try:
            tagged = usaddress.parse(candidate)
        except Exception:  # usaddress raises its own RepeatedLabelError and CRF errors
            STATS["address_parse_error"] += 1
            continue
        parts: dict[str, list[str]] = {}
        for token, label in tagged:
            key = _ADDRESS_LABELS.get(label)
            if key is None:
                break
            parts.setdefault(key, []).append(token.strip(","))
        if "number" not in parts or "street" not in parts:
            continue
        joined = {k: " ".join(v) for k, v in parts.items()}
        street = " ".join(w.upper() if w.lower().strip(".") in _DIRECTIONALS else w.title()
                          for w in joined["street"].split())
        value = " ".join(x for x in (joined["number"], street,
                                     _unit_text(joined.get("unit"))) if x)
        place = " ".join(x for x in (joined.get("city", "").title(),
                                     joined.get("state", "").upper() if len(joined.get("state", ""))
                                     <= 2 else joined.get("state", "").title(),
                                     joined.get("zip", "")) if x)
        if place:
            value = f"{value}, {place}"
        span = _original(text, spans, m.start(), end).strip(" ,.")
        out.append(Address(text=span, value=value, parts=joined))
    return out[:MAX_ITEMS]


def _place_tail(written: str, end: int) -> int:
    """Extend past ", City[, State] [ZIP]": up to five words, stopping at a stop word
    or at the end of the sentence."""
    pos = end
    for _ in range(5):
        word = _TAIL_WORD.match(written, pos)
        if word is None:
            break
        token = word.group(1)
        if token.lower() in _ADDRESS_STOP:
            break
        pos = word.end()
        if token[0].isdigit():
            break  # the ZIP code ends an address
    return pos


_TAIL_WORD = re.compile(r"[\s,]*([A-Za-z][\w'-]*|\d{5}(?:-\d{4})?)(?!\w)")


def _unit_text(unit: str | None) -> str:
    if not unit:
        return ""
    m = re.match(r"(?:apartment|apt|unit|suite|ste|number|no|#)\.?\s*#?\s*(\S+)", unit, re.I)
    return f"Apt {m.group(1).upper()}" if m else unit


# --- names --------------------------------------------------------------------------


def extract_names(text: str) -> list[Name]:
    from agents.nlu.names import extract_name

    name = extract_name(text)
    if name is None:
        return []
    bare = name.split(" ", 1)[1] if name.split(" ", 1)[0] in ("Mr.", "Mrs.", "Ms.", "Dr.",
                                                               "Miss") else name
    m = re.search(re.escape(bare.split()[0]) + r".{0,60}?" + re.escape(bare.split()[-1])
                  if " " in bare else r"\b" + re.escape(bare) + r"\b", text, re.IGNORECASE)
    return [Name(text=m.group(0) if m else name, value=name)]


def warm_up() -> None:
    """Load dateparser's language data now (the first parse costs ~0.7 s), e.g. at start-up,
    so the first caller who names a day does not pay for it mid-call."""
    import dateparser

    dateparser.parse("tomorrow", languages=["en"])
