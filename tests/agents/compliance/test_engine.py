"""The contact-time engine against an oracle written from the statutes, not from rules.toml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as pn_timezone

from agents.compliance.engine import (
    CompliancePolicy,
    ContactRequest,
    Decision,
    cap_clears_at,
    decide,
)
from agents.compliance.settings import ComplianceSettings

# The law, restated independently of the data file: (start, end) minutes, per weekday.
FED = (8 * 60, 21 * 60)
STATE_WINDOWS: dict[str, dict[int, tuple[int, int]]] = {
    "FL": {d: (480, 1200) for d in range(7)},
    "OK": {d: (480, 1200) for d in range(7)},
    "MD": {d: (480, 1200) for d in range(7)},
    "WA": {d: (480, 1200) for d in range(7)},
    "CT": {d: (540, 1200) for d in range(7)},
    "TX": {**{d: (540, 1260) for d in range(6)}, 6: (720, 1260)},
}
# (number, state the number is in per its exchange, expected zone count)
NUMBERS = [
    ("+13055550123", "FL", 1),  # Miami
    ("+18505550123", "FL", 1),  # Florida panhandle
    ("+12145550123", "TX", 1),  # Dallas
    ("+19155550123", "TX", 1),  # El Paso (Mountain time)
    ("+12035550123", "CT", 1),
    ("+14105550123", "MD", 1),
    ("+14055550123", "OK", 1),
    ("+12065550123", "WA", 1),
    ("+12125550123", "NY", 1),
    ("+12085550123", "ID", 2),  # Idaho: Boise and Los Angeles
    ("+19282830123", "AZ", 2),  # Arizona: Phoenix and the Navajo Nation (Denver)
    ("+19075550123", "AK", 2),  # Alaska: Anchorage and Adak
    ("+17012010123", "ND", 2),
    ("+447911123456", None, 4),  # UK mobile: London and the Crown Dependencies
    ("+442071838750", None, 1),
    ("+4915112345678", None, 1),
    ("+61412345678", None, 8),  # Australian mobile: every Australian zone
    ("+61291234567", None, 1),  # Sydney landline
]
LEAD_STATES = [None, "FL", "CT", "TX", "WA", "NY", "Florida", "md", "XX"]


def zones_of(phone: str) -> list[str]:
    return list(pn_timezone.time_zones_for_number(phonenumbers.parse(phone)))


def oracle(phone: str, state: str | None, lead_state: str | None, at: datetime) -> bool:
    lead = {"Florida": "FL", "md": "MD"}.get(lead_state or "", lead_state)
    for zone in zones_of(phone):
        local = at.astimezone(ZoneInfo(zone))
        lo, hi = FED
        for s in (state, lead):
            if s in STATE_WINDOWS:
                slo, shi = STATE_WINDOWS[s][local.weekday()]
                lo, hi = max(lo, slo), min(hi, shi)
        minute = local.hour * 60 + local.minute + local.second / 60
        if not lo <= minute < hi:
            return False
    return True


def ask(phone: str, at: datetime, **kw: object) -> Decision:
    kw.setdefault("channel", "sms")
    kw.setdefault("purpose", "marketing")
    return decide(ContactRequest(phone=phone, at=at, **kw))  # type: ignore[arg-type]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# DST transitions of the zones above, so generated instants crowd around them.
TRANSITIONS = [
    "2026-03-08T08:00:00+00:00", "2026-11-01T07:00:00+00:00", "2027-03-14T08:00:00+00:00",
    "2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00", "2026-04-05T16:00:00+00:00",
    "2026-10-03T16:00:00+00:00", "2026-03-08T11:00:00+00:00", "2026-11-01T09:00:00+00:00",
]
_instants = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31),
                 timezones=st.just(UTC)),
    st.builds(lambda base, off: utc(base) + timedelta(seconds=off),
              st.sampled_from(TRANSITIONS), st.integers(-36 * 3600, 36 * 3600)),
)


@settings(max_examples=400, deadline=None)
@given(number=st.sampled_from(NUMBERS), lead_state=st.sampled_from(LEAD_STATES), at=_instants,
       channel=st.sampled_from(["sms", "voice"]))
def test_allowed_exactly_inside_every_window(
    number: tuple[str, str | None, int], lead_state: str | None, at: datetime, channel: str
) -> None:
    phone, state, _ = number
    # No cap in play: recent_contacts empty.
    decision = ask(phone, at, lead_state=lead_state, channel=channel)
    expected = oracle(phone, state, lead_state, at)
    assert decision.allowed is expected, (decision, at.isoformat())
    assert decision.reason == ("allowed" if expected else "quiet_hours")


@settings(max_examples=120, deadline=None)
@given(number=st.sampled_from(NUMBERS), lead_state=st.sampled_from(LEAD_STATES), at=_instants)
def test_next_allowed_at_is_the_first_allowed_minute(
    number: tuple[str, str | None, int], lead_state: str | None, at: datetime
) -> None:
    phone, state, _ = number
    decision = ask(phone, at, lead_state=lead_state)
    if decision.allowed:
        assert decision.next_allowed_at is None
        return
    nxt = decision.next_allowed_at
    assert nxt is not None and nxt.tzinfo is not None and nxt > at
    assert nxt.second == 0 and nxt.microsecond == 0
    assert oracle(phone, state, lead_state, nxt)
    assert ask(phone, nxt, lead_state=lead_state).allowed
    minute = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < nxt:
        assert not oracle(phone, state, lead_state, minute), minute
        minute += timedelta(minutes=1)


def test_number_facts_of_the_spread() -> None:
    for phone, state, zone_count in NUMBERS:
        decision = ask(phone, utc("2026-06-10T16:00:00+00:00"), channel="email")
        assert len(decision.zones) == zone_count, phone
        assert decision.zones == zones_of(phone)
        assert (decision.states or [None]) == [state], phone


@pytest.mark.parametrize(
    ("phone", "at", "allowed", "nxt"),
    [
        # Federal: 08:00 inclusive, 21:00 exclusive (New York number).
        ("+12125550123", "2026-06-10T07:59:00-04:00", False, "2026-06-10T08:00:00-04:00"),
        ("+12125550123", "2026-06-10T08:00:00-04:00", True, None),
        ("+12125550123", "2026-06-10T20:59:59-04:00", True, None),
        ("+12125550123", "2026-06-10T21:00:00-04:00", False, "2026-06-11T08:00:00-04:00"),
        # Florida ends at 20:00.
        ("+13055550123", "2026-06-10T19:59:00-04:00", True, None),
        ("+13055550123", "2026-06-10T20:00:00-04:00", False, "2026-06-11T08:00:00-04:00"),
        # Connecticut starts at 09:00.
        ("+12035550123", "2026-06-10T08:30:00-04:00", False, "2026-06-10T09:00:00-04:00"),
        # Texas: Sunday from noon; Saturday 20:30 is fine; after 21:00 Saturday → Sunday noon.
        ("+12145550123", "2026-06-14T11:59:00-05:00", False, "2026-06-14T12:00:00-05:00"),
        ("+12145550123", "2026-06-13T20:30:00-05:00", True, None),
        ("+12145550123", "2026-06-13T21:00:00-05:00", False, "2026-06-14T12:00:00-05:00"),
        ("+12145550123", "2026-06-15T08:59:00-05:00", False, "2026-06-15T09:00:00-05:00"),
        # El Paso is on Mountain time.
        ("+19155550123", "2026-06-10T08:30:00-06:00", False, "2026-06-10T09:00:00-06:00"),
        # Two zones (Boise and Los Angeles): both must be past 08:00.
        ("+12085550123", "2026-06-10T08:30:00-06:00", False, "2026-06-10T08:00:00-07:00"),
        # Spring forward (US, 2026-03-08 02:00 → 03:00): 08:00 is EDT already.
        ("+12125550123", "2026-03-08T01:30:00-05:00", False, "2026-03-08T08:00:00-04:00"),
        ("+12125550123", "2026-03-07T21:30:00-05:00", False, "2026-03-08T08:00:00-04:00"),
        # Fall back (US, 2026-11-01 02:00 → 01:00): 08:00 is EST.
        ("+12125550123", "2026-11-01T01:30:00-04:00", False, "2026-11-01T08:00:00-05:00"),
        ("+12125550123", "2026-11-01T01:30:00-05:00", False, "2026-11-01T08:00:00-05:00"),
        ("+12125550123", "2026-10-31T21:15:00-04:00", False, "2026-11-01T08:00:00-05:00"),
        # UK spring forward 2026-03-29.
        ("+442071838750", "2026-03-29T07:00:00+01:00", False, "2026-03-29T08:00:00+01:00"),
        # Germany: 21:00 local is past the window.
        ("+4915112345678", "2026-06-10T21:00:00+02:00", False, "2026-06-11T08:00:00+02:00"),
    ],
)
def test_windows_at_their_edges(phone: str, at: str, allowed: bool, nxt: str | None) -> None:
    decision = ask(phone, utc(at))
    assert decision.allowed is allowed
    assert decision.next_allowed_at == (utc(nxt) if nxt else None)
    if nxt:
        assert decision.next_allowed_at.tzinfo is UTC  # type: ignore[union-attr]


def test_lead_state_adds_its_window_to_the_numbers() -> None:
    at = utc("2026-06-10T20:30:00-04:00")  # New York number, evening
    assert ask("+12125550123", at).allowed
    refused = ask("+12125550123", at, lead_state="FL")
    assert (refused.allowed, refused.reason, refused.states) == (False, "quiet_hours",
                                                                 ["FL", "NY"])
    morning = utc("2026-06-10T08:30:00-04:00")
    assert not ask("+13055550123", morning, lead_state="Connecticut").allowed


def test_unknown_and_non_geographic_numbers() -> None:
    at = utc("2026-06-10T12:00:00-04:00")
    toll_free = ask("+18005550123", at)
    assert (toll_free.allowed, toll_free.reason, toll_free.zones,
            toll_free.next_allowed_at) == (False, "zone_unknown", [], None)
    for bad in ("+15555550123", "not a number", "", "+1" + "9" * 80):
        decision = ask(bad, at)
        assert (decision.allowed, decision.reason) == (False, "invalid_number")
    assert ask("+13055550123", at, invalid=True).reason == "invalid_number"


def test_opt_out_and_dnc_block_every_channel_and_purpose() -> None:
    at = utc("2026-06-10T12:00:00-04:00")
    for channel in ("sms", "voice", "email"):
        for purpose in ("marketing", "conversation", "help", "follow_up", "transactional"):
            for flags, reason in (({"opted_out": True}, "opted_out"), ({"dnc": True}, "dnc"),
                                  ({"opted_out": True, "dnc": True}, "opted_out")):
                decision = ask("+13055550123", at, channel=channel, purpose=purpose,
                               last_inbound_at=at - timedelta(minutes=1), **flags)
                assert (decision.allowed, decision.reason) == (False, reason)
                assert decision.next_allowed_at is None


def test_one_opt_out_confirmation_even_at_night() -> None:
    night = utc("2026-06-10T23:30:00-04:00")
    first = ask("+13055550123", night, purpose="opt_out_confirmation", opted_out=True)
    assert (first.allowed, first.reason) == (True, "allowed_opt_out_confirmation")
    again = ask("+13055550123", night, purpose="opt_out_confirmation", opted_out=True,
                opt_out_confirmation_sent=True)
    assert (again.allowed, again.reason) == (False, "opted_out")
    dnc = ask("+13055550123", night, purpose="opt_out_confirmation", dnc=True)
    assert dnc.reason == "allowed_opt_out_confirmation"


def test_conversation_replies_skip_quiet_hours_only_inside_the_window() -> None:
    night = utc("2026-06-10T23:30:00-04:00")
    fresh = ask("+13055550123", night, purpose="conversation",
                last_inbound_at=night - timedelta(minutes=15))
    assert (fresh.allowed, fresh.reason) == (True, "allowed_conversation")
    stale = ask("+13055550123", night, purpose="conversation",
                last_inbound_at=night - timedelta(minutes=15, seconds=1))
    assert (stale.allowed, stale.reason) == (False, "quiet_hours")
    never = ask("+13055550123", night, purpose="conversation")
    assert never.reason == "quiet_hours"
    future = ask("+13055550123", night, purpose="conversation",
                 last_inbound_at=night + timedelta(minutes=5))
    assert future.reason == "quiet_hours"
    assert ask("+13055550123", night, purpose="help").reason == "allowed_conversation"
    assert ask("+18005550123", night, purpose="help").allowed  # no zone needed for a reply
    assert ask("+13055550123", night, purpose="follow_up").reason == "quiet_hours"
    assert ask("+13055550123", night, purpose="transactional").reason == "quiet_hours"


def test_email_has_no_quiet_hours_but_obeys_opt_out() -> None:
    night = utc("2026-06-10T03:00:00-04:00")
    assert ask("+13055550123", night, channel="email").reason == "allowed"
    assert ask("+18005550123", night, channel="email").allowed
    assert ask("+13055550123", night, channel="email", opted_out=True).reason == "opted_out"


def test_frequency_cap_defers_the_fourth_contact() -> None:
    at = utc("2026-06-10T15:00:00-04:00")
    contacts = [at - timedelta(hours=20, minutes=30, seconds=10), at - timedelta(hours=5),
                at - timedelta(hours=1)]
    decision = ask("+13055550123", at, recent_contacts=contacts)
    assert (decision.allowed, decision.reason) == (False, "frequency_cap")
    # The oldest is 24 h old at 18:29:50 → the next whole minute, inside the window.
    assert decision.next_allowed_at == utc("2026-06-10T18:30:00-04:00")
    assert not ask("+13055550123", utc("2026-06-10T18:29:00-04:00"),
                   recent_contacts=contacts).allowed
    assert ask("+13055550123", utc("2026-06-10T18:30:00-04:00"),
               recent_contacts=contacts).allowed
    # Two contacts leave room for a third.
    assert ask("+13055550123", at, recent_contacts=contacts[1:]).allowed
    # New York has no cap, unless the lead lives in Maryland.
    assert ask("+12125550123", at, recent_contacts=contacts).allowed
    assert ask("+12125550123", at, recent_contacts=contacts,
               lead_state="MD").reason == "frequency_cap"
    # Replies are not held by caps.
    assert ask("+13055550123", at, recent_contacts=contacts, purpose="conversation",
               last_inbound_at=at - timedelta(minutes=2)).allowed


def test_cap_clearing_after_the_window_waits_for_the_next_morning() -> None:
    at = utc("2026-06-10T19:00:00-04:00")
    contacts = [utc("2026-06-09T21:30:00-04:00"), at - timedelta(hours=2), at]
    decision = ask("+13055550123", at, recent_contacts=contacts)
    assert decision.reason == "frequency_cap"
    # Clears at 21:30, but Florida's window closed at 20:00.
    assert decision.next_allowed_at == utc("2026-06-11T08:00:00-04:00")


def test_cap_clears_at_counts_a_rolling_day() -> None:
    at = utc("2026-06-10T12:00:00+00:00")
    five = [at - timedelta(hours=h) for h in (30, 23, 10, 5, 1)]
    # Inside 24 h: 23, 10, 5, 1 h ago; the 4th must wait until only 2 remain.
    assert cap_clears_at(at, five, 3) == at - timedelta(hours=10) + timedelta(hours=24)
    assert cap_clears_at(at, five[:2], 3) is None
    assert cap_clears_at(at, [at - timedelta(hours=24)] * 5, 3) is None


def test_business_window_narrows_never_widens() -> None:
    policy = CompliancePolicy.from_settings(
        ComplianceSettings(window_start="10:00", window_end="17:30"))
    at = utc("2026-06-10T09:30:00-04:00")
    decision = decide(ContactRequest(phone="+12125550123", channel="sms", purpose="marketing",
                                     at=at), policy)
    assert decision.next_allowed_at == utc("2026-06-10T10:00:00-04:00")
    late = decide(ContactRequest(phone="+12125550123", channel="sms", purpose="marketing",
                                 at=utc("2026-06-10T17:30:00-04:00")), policy)
    assert late.next_allowed_at == utc("2026-06-11T10:00:00-04:00")
    # A lower cap and an extra capped state from config.
    strict = CompliancePolicy.from_settings(ComplianceSettings(
        cap_per_24h=1, frequency_cap_states=("FL", "MD", "OK", "NY")))
    one = [utc("2026-06-10T11:00:00-04:00")]
    noon = utc("2026-06-10T12:00:00-04:00")
    refused = decide(ContactRequest(phone="+12125550123", channel="sms", purpose="marketing",
                                    at=noon, recent_contacts=one), strict)
    assert (refused.reason, refused.next_allowed_at) == ("frequency_cap",
                                                         utc("2026-06-11T11:00:00-04:00"))


@pytest.mark.parametrize(
    "kwargs",
    [{"window_start": "07:00"}, {"window_end": "21:30"}, {"window_start": "12:00",
                                                           "window_end": "12:00"},
     {"window_start": "8am"}, {"cap_per_24h": 4}, {"cap_per_24h": 0},
     {"frequency_cap_states": ("FL", "OK")}, {"frequency_cap_states": ("FL", "OK", "MD", "ZZ")},
     {"conversation_window_min": -1}],
)
def test_settings_refuse_anything_looser_than_the_law(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ComplianceSettings(**kwargs)  # type: ignore[arg-type]


def test_requests_must_be_well_formed() -> None:
    with pytest.raises(ValueError):
        ContactRequest(phone="+13055550123", channel="fax", purpose="marketing",  # type: ignore[arg-type]
                       at=utc("2026-06-10T12:00:00+00:00"))
    with pytest.raises(ValueError):
        ContactRequest(phone="+13055550123", channel="sms", purpose="marketing",
                       at=datetime(2026, 6, 10, 12))
    with pytest.raises(ValueError):
        ContactRequest(phone="+13055550123", channel="sms", purpose="",
                       at=utc("2026-06-10T12:00:00+00:00"))


CAPPED = [("+13055550123", "FL"), ("+14055550123", "OK"), ("+14105550123", "MD")]


def cap_oracle(at: datetime, contacts: list[datetime]) -> bool:
    return sum(1 for c in contacts if at - timedelta(hours=24) < c) < 3


@settings(max_examples=120, deadline=None)
@given(number=st.sampled_from(CAPPED), at=_instants,
       ages=st.lists(st.integers(0, 30 * 3600), max_size=6))
def test_cap_and_window_together(number: tuple[str, str], at: datetime, ages: list[int]) -> None:
    phone, state = number
    contacts = [at - timedelta(seconds=a) for a in ages]
    decision = ask(phone, at, recent_contacts=contacts)

    def ok(t: datetime) -> bool:
        return oracle(phone, state, None, t) and cap_oracle(t, contacts)

    assert decision.allowed is ok(at)
    if decision.allowed:
        return
    assert decision.reason == ("quiet_hours" if not oracle(phone, state, None, at)
                               else "frequency_cap")
    nxt = decision.next_allowed_at
    assert nxt is not None and ok(nxt)
    assert ask(phone, nxt, recent_contacts=contacts).allowed
    minute = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < nxt:
        assert not ok(minute), minute
        minute += timedelta(minutes=1)


@settings(max_examples=300, deadline=None)
@given(phone=st.one_of(st.text(max_size=30), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)),
       channel=st.sampled_from(["sms", "voice", "email"]),
       purpose=st.sampled_from(["marketing", "conversation", "help", "opt_out_confirmation",
                                "follow_up", "x"]),
       at=_instants, state=st.one_of(st.none(), st.text(max_size=12)),
       flags=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_any_input_gets_a_stable_reason(phone: str, channel: str, purpose: str, at: datetime,
                                        state: str | None,
                                        flags: tuple[bool, bool, bool]) -> None:
    from agents.compliance.engine import REASONS

    decision = ask(phone, at, channel=channel, purpose=purpose, lead_state=state,
                   opted_out=flags[0], dnc=flags[1], invalid=flags[2])
    assert decision.reason in REASONS
    assert decision.allowed == decision.reason.startswith("allowed")
    if decision.next_allowed_at is not None:
        assert not decision.allowed and decision.next_allowed_at > at


def test_geocoder_places_to_states() -> None:
    from agents.compliance.rules import _state_from_place, load_rules

    rules = load_rules()
    assert _state_from_place("Miami, FL", rules) == "FL"
    assert _state_from_place("Washington State", rules) == "WA"
    assert _state_from_place("Washington D.C.", rules) == "DC"
    assert _state_from_place("Texas", rules) == "TX"
    assert _state_from_place("", rules) is None
    assert _state_from_place("Springfield", rules) is None
    assert _state_from_place("Paris, ZZ", rules) is None
    assert rules.state_code(" florida ") == "FL" and rules.state_code("tx") == "TX"
    assert rules.state_code("Narnia") is None and rules.state_code("") is None


def test_a_number_without_a_known_state_gets_the_federal_window() -> None:
    # Vancouver, Canada: NANP but not a US state; 20:30 local is inside 08:00-21:00.
    decision = ask("+16045550123", utc("2026-06-10T20:30:00-07:00"))
    assert (decision.allowed, decision.states, decision.zones) == (
        True, [], ["America/Vancouver"])
    assert not ask("+16045550123", utc("2026-06-10T21:00:00-07:00")).allowed


@pytest.mark.parametrize("channel", ["sms", "voice", "email"])
def test_owner_notices_go_out_at_night_but_never_past_an_opt_out_or_dnc(channel) -> None:
    night = utc("2026-06-10T03:10:00-04:00")  # 3:10 a.m. in Miami, FL (cap state too)
    alert = ask("+13055550123", night, purpose="owner_notice", channel=channel,
                recent_contacts=(night - timedelta(hours=1),) * 5)
    assert (alert.allowed, alert.reason) == (True, "allowed_owner_notice")
    assert alert.next_allowed_at is None
    marketing = ask("+13055550123", night, purpose="marketing", channel=channel)
    assert marketing.allowed is (channel == "email")
    stopped = ask("+13055550123", night, purpose="owner_notice", channel=channel,
                  opted_out=True)
    assert (stopped.allowed, stopped.reason) == (False, "opted_out")
    listed = ask("+13055550123", night, purpose="owner_notice", channel=channel, dnc=True)
    assert (listed.allowed, listed.reason) == (False, "dnc")
    if channel != "email":
        bad = ask("+1415555", night, purpose="owner_notice", channel=channel)
        assert (bad.allowed, bad.reason) == (False, "invalid_number")
