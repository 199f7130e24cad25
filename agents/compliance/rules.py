"""The law as data: contact windows and caps per state, and where a phone number is.

`rules.toml` holds the windows (federal and the stricter states) with their statutes;
this module parses it once and answers two questions the engine needs:

- which IANA zones and which US state a number belongs to (`number_facts`), and
- the strictest daily window for a set of states on a weekday (`Rules.window`).

Area code → state comes from phonenumbers' geocoder, not from a table of our own: its
US data is libphonenumber's, kept per exchange (not only per area code, so overlays and
split codes are right) and refreshed with every phonenumbers release, whereas a NANPA
area-code table shipped here would age silently. The geocoder names places either
"City, ST" or by state name; `[us_states]` in rules.toml maps the names to USPS codes.
A US number whose state cannot be told gets the federal window only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as pn_timezone

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Numbers that ring no particular place: their "zones" are the whole country or none,
# so no local time can be known (toll-free, premium, shared-cost, personal, pager, UAN,
# voicemail access).
NON_GEOGRAPHIC = frozenset({
    PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER, PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
})
UNKNOWN_ZONE = "Etc/Unknown"
# Regions whose numbers the US geocoder data describes with a state or territory.
_NANP_US = frozenset({"US", "PR", "GU", "VI", "AS", "MP"})


def parse_hhmm(text: str) -> int:
    """"HH:MM" → minutes after midnight; ValueError naming the text otherwise."""
    try:
        hh, mm = text.split(":")
        value = int(hh) * 60 + int(mm)
        if len(hh) != 2 or len(mm) != 2 or not (0 <= int(hh) <= 24 and 0 <= int(mm) < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"not a time of day HH:MM: {text!r}") from None
    if value > 24 * 60:
        raise ValueError(f"not a time of day HH:MM: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Window:
    """Allowed local minutes [start, end) of one day; start < end."""

    start: int
    end: int

    def intersect(self, other: Window | None) -> Window | None:
        if other is None:
            return self
        lo, hi = max(self.start, other.start), min(self.end, other.end)
        return Window(lo, hi) if lo < hi else None

    @property
    def start_time(self) -> time:
        return time(self.start // 60, self.start % 60)

    def contains(self, at: time) -> bool:
        minutes = at.hour * 60 + at.minute + (at.second + at.microsecond / 1e6) / 60
        return self.start <= minutes < self.end


def _window(pair: list[str], where: str) -> Window:
    if not isinstance(pair, list) or len(pair) != 2:
        raise ValueError(f"{where}: window must be [start, end]")
    start, end = parse_hhmm(pair[0]), parse_hhmm(pair[1])
    if start >= end:
        raise ValueError(f"{where}: window start must be before its end")
    return Window(start, end)


@dataclass(frozen=True, slots=True)
class StateRule:
    code: str
    # One window per weekday, Monday first.
    windows: tuple[Window, ...]
    cap_per_24h: int | None


@dataclass(frozen=True, slots=True)
class Rules:
    federal: Window
    states: Mapping[str, StateRule]
    state_names: Mapping[str, str]
    # Case-folded names and codes → code, for lead records typed by hand.
    lookup: Mapping[str, str] = field(default_factory=dict)

    def window(self, weekday: int, states: Iterable[str],
               business: Window | None = None) -> Window | None:
        """The strictest window of the federal rule, these states and the business's own
        on a weekday (0 = Monday); None when nothing of the day is left."""
        result: Window | None = self.federal.intersect(business)
        for code in states:
            rule = self.states.get(code)
            if rule is not None and result is not None:
                result = result.intersect(rule.windows[weekday])
        return result

    @property
    def capped_states(self) -> frozenset[str]:
        return frozenset(c for c, r in self.states.items() if r.cap_per_24h is not None)

    @property
    def min_cap(self) -> int:
        return min((r.cap_per_24h for r in self.states.values() if r.cap_per_24h), default=0)

    def state_code(self, text: str | None) -> str | None:
        """A USPS code from "FL", " fl ", or "Florida"; None when not a US state/territory."""
        if not text:
            return None
        return self.lookup.get(text.strip().casefold())


def parse_rules(raw: Mapping[str, object]) -> Rules:
    federal = _window(raw["federal"]["window"], "federal")  # type: ignore[index]
    states: dict[str, StateRule] = {}
    for code, spec in raw.get("states", {}).items():  # type: ignore[attr-defined]
        base = _window(spec["window"], f"states.{code}")
        days = dict(spec.get("days", {}))
        unknown = set(days) - set(DAY_NAMES)
        if unknown:
            raise ValueError(f"states.{code}.days: unknown day names {sorted(unknown)}")
        windows = tuple(
            _window(days[d], f"states.{code}.days.{d}") if d in days else base
            for d in DAY_NAMES
        )
        cap = spec.get("cap_per_24h")
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ValueError(f"states.{code}.cap_per_24h must be a positive integer")
        states[code] = StateRule(code, windows, cap)
    names = {str(k): str(v) for k, v in raw.get("us_states", {}).items()}  # type: ignore[attr-defined]
    lookup = {name.casefold(): code for name, code in names.items()}
    lookup.update({code.casefold(): code for code in names.values()})
    return Rules(federal, states, names, lookup)


@lru_cache(maxsize=1)
def load_rules() -> Rules:
    """The shipped rules.toml (parsed once per process)."""
    text = resources.files("agents.compliance").joinpath("rules.toml").read_text("utf-8")
    return parse_rules(tomllib.loads(text))


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What the numbering plan says about a phone number."""

    e164: str | None
    valid: bool
    region: str | None
    # Usable IANA zones; empty when the number rings no known place.
    zones: tuple[str, ...]
    # USPS code of a US number's state, when the geocoder knows it.
    state: str | None


@lru_cache(maxsize=512)
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=8192)
def number_facts(phone: str) -> NumberFacts:
    """Parse `phone` (E.164, or a US national number) and locate it. Never raises."""
    if not isinstance(phone, str) or not phone.strip() or len(phone) > 64:
        return NumberFacts(None, False, None, (), None)
    try:
        number = phonenumbers.parse(phone.strip(), "US")
    except phonenumbers.NumberParseException:
        return NumberFacts(None, False, None, (), None)
    if not phonenumbers.is_valid_number(number):
        return NumberFacts(None, False, None, (), None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    zones: tuple[str, ...] = ()
    if phonenumbers.number_type(number) not in NON_GEOGRAPHIC:
        found = tuple(pn_timezone.time_zones_for_number(number))
        if found and UNKNOWN_ZONE not in found:
            try:
                for name in found:
                    zone_info(name)
                zones = found
            except (ZoneInfoNotFoundError, ValueError):
                zones = ()
    state = None
    if region in _NANP_US:
        # Imported here: the geocoder's data takes ~0.5 s to load, and config
        # validation (every CLI start) needs the rules table but never a lookup.
        from phonenumbers import geocoder

        place = geocoder.description_for_number(number, "en")
        state = _state_from_place(place, load_rules())
    return NumberFacts(e164, True, region, zones, state)


def _state_from_place(place: str, rules: Rules) -> str | None:
    if not place:
        return None
    if ", " in place:
        tail = place.rsplit(", ", 1)[1].strip()
        if len(tail) == 2 and tail.isupper() and tail in rules.state_names.values():
            return tail
    return rules.state_names.get(place.strip())
