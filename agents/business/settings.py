"""The `[[businesses]]` config: one table per business this server answers for.

Each struct validates itself when the config is loaded (msgspec runs
`__post_init__` and reports the path, e.g. `$.businesses[1]`); the message names
the key, so "7 questions on FREE" or a typo in a time zone stops the load (and a
hot reload keeps the old config) instead of surfacing in a live call.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from agents.business.plans import Plan, gates
from agents.nlu.triage import INDUSTRIES
from store.phones import InvalidPhoneNumber, normalize_phone

Industry = Literal["plumbing", "hvac", "electrical", "medical", "dental", "legal", "general"]
EmergencyPolicy = Literal["take_message", "transfer", "alert_owner"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
# Capture answers are stored under `field`: a short identifier, not free text.
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_QUESTION_CHARS = 300
MAX_TEXT_CHARS = 4000

assert set(INDUSTRIES) == set(Industry.__args__)  # type: ignore[attr-defined]


class CaptureQuestion(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A lead-capture question the agent asks, in order, one per caller turn.

    `essential_for_emergency` ones are the only ones asked once the call is an
    emergency: the owner needs an address, not a budget, to act on a gas leak.
    """

    text: str
    field: str
    required: bool = False
    essential_for_emergency: bool = False

    def __post_init__(self) -> None:
        if not self.text.strip() or len(self.text) > MAX_QUESTION_CHARS:
            raise ValueError(f"questions.text must be 1..{MAX_QUESTION_CHARS} characters")
        if not _FIELD.fullmatch(self.field):
            raise ValueError(f"questions.field {self.field!r} must match {_FIELD.pattern}")


class OwnerContacts(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the owner is reached: alert calls and texts go to `phone`."""

    phone: str = ""
    email: str = ""

    def __post_init__(self) -> None:
        if self.phone:
            _check_phone(self.phone, "owner.phone")
        if self.email and ("@" not in self.email or any(c.isspace() for c in self.email)):
            raise ValueError(f"owner.email {self.email!r} is not an email address")


class BusinessSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One business. `numbers` are the Twilio numbers that ring it (any format that
    parses as a phone number; compared in E.164)."""

    name: str
    numbers: list[str] = msgspec.field(default_factory=list)
    default: bool = False
    industry: Industry = "general"
    timezone: str = "America/New_York"
    # day (mon..sun) -> "HH:MM-HH:MM" local time; a day not listed is closed.
    hours: dict[str, str] = msgspec.field(default_factory=dict)
    greeting: str = ""
    # For a caller we know; "{name}" is replaced with their name.
    returning_greeting: str = "Welcome back, {name}."
    instructions: str = ""
    # The agent's voice (an OpenAI Realtime voice, e.g. "marin"); "" = [openai] voice.
    voice: str = ""
    # The voice of TwiML <Say> (Twilio's names, e.g. "Polly.Joanna"); "" = Twilio's default.
    say_voice: str = ""
    language: str = "en-US"
    end_call_message: str = "Thank you for calling. Goodbye."
    emergency_policy: EmergencyPolicy = "take_message"
    owner: OwnerContacts = msgspec.field(default_factory=OwnerContacts)
    transfer_number: str = ""
    questions: list[CaptureQuestion] = msgspec.field(default_factory=list)
    plan: Plan = "FREE"
    # Call analysis (the realtime brain refines the call's priority); PRO only.
    analysis: bool = False
    # What a caller hears when the plan has no voice agent (then the owner is texted).
    no_voice_message: str = (
        "Thank you for calling {name}. We cannot take your call right now; "
        "the owner has been notified and will call you back. Goodbye."
    )

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 120:
            raise ValueError("name must be 1..120 characters")
        for number in self.numbers:
            _check_phone(number, "numbers")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        for day, span in self.hours.items():
            if day not in DAYS:
                raise ValueError(f"hours: unknown day {day!r} (use {', '.join(DAYS)})")
            match = _HOURS.fullmatch(span)
            if match is None or match.group(1, 2) >= match.group(3, 4):
                raise ValueError(f"hours.{day}: {span!r} is not an 'HH:MM-HH:MM' span")
        for key in ("greeting", "instructions", "end_call_message", "no_voice_message"):
            if len(getattr(self, key)) > MAX_TEXT_CHARS:
                raise ValueError(f"{key} is longer than {MAX_TEXT_CHARS} characters")
        if self.transfer_number:
            _check_phone(self.transfer_number, "transfer_number")
        fields = [q.field for q in self.questions]
        if len(set(fields)) != len(fields):
            raise ValueError("questions: two questions store the same field")
        plan = gates(self.plan)
        if not plan.allows_questions(len(self.questions)):
            raise ValueError(
                f"questions: plan {self.plan} allows at most {plan.max_questions} capture "
                f"questions, {len(self.questions)} configured")
        if self.emergency_policy == "alert_owner":
            if not plan.emergency_voice_alerts:
                raise ValueError(f"emergency_policy: plan {self.plan} has no emergency "
                                 "voice alerts (PRO)")
            if not self.owner.phone:
                raise ValueError("emergency_policy = 'alert_owner' needs owner.phone")
        if self.emergency_policy == "transfer" and not self.transfer_number:
            raise ValueError("emergency_policy = 'transfer' needs transfer_number")
        if self.analysis and not plan.analysis:
            raise ValueError(f"analysis: plan {self.plan} has no call analysis (PRO)")

    @property
    def voice_enabled(self) -> bool:
        """Whether calls to this business are answered by the voice agent."""
        return gates(self.plan).voice_agent


def _check_phone(number: str, key: str) -> None:
    try:
        normalize_phone(number)
    except InvalidPhoneNumber:
        raise ValueError(f"{key}: {number!r} is not a phone number") from None


def validate_businesses(businesses: list[BusinessSettings]) -> None:
    """Checks across the list: names and numbers unique, at most one default."""
    names: set[str] = set()
    numbers: dict[str, str] = {}
    defaults = 0
    for i, business in enumerate(businesses):
        if business.name in names:
            raise ValueError(f"businesses[{i}].name: {business.name!r} is used twice")
        names.add(business.name)
        defaults += business.default
        for raw in business.numbers:
            number = normalize_phone(raw)
            if number in numbers:
                raise ValueError(f"businesses[{i}].numbers: {number} already rings "
                                 f"{numbers[number]!r}")
            numbers[number] = business.name
    if defaults > 1:
        raise ValueError("businesses: more than one business has default = true")


class AlertSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[owner_alerts]`: how an URGENT call phones the owner (PRO, emergency_policy =
    "alert_owner"), and when it gives up and texts instead."""

    # Alert calls per urgent call before the text goes out.
    max_calls: int = 3
    # Pause before call 2, 3, …; the last value repeats.
    backoff_s: list[float] = msgspec.field(default_factory=lambda: [20.0, 60.0])
    ring_timeout_s: int = 25
    # Longest wait for one call's outcome (no status at all counts as no answer).
    outcome_wait_s: float = 90.0
    # After an answered call ends, how long an acknowledgement may still arrive.
    ack_grace_s: float = 3.0
    # How many times the message is said in one call.
    repeat: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.max_calls <= 10:
            raise ValueError("max_calls must be between 1 and 10")
        if not self.backoff_s or any(b < 0 or b > 3600 for b in self.backoff_s):
            raise ValueError("backoff_s must be a non-empty list of 0..3600 seconds")
        if not 5 <= self.ring_timeout_s <= 120:
            raise ValueError("ring_timeout_s must be between 5 and 120")
        if not 1 <= self.repeat <= 5:
            raise ValueError("repeat must be between 1 and 5")
        if self.outcome_wait_s <= 0 or self.ack_grace_s < 0:
            raise ValueError("outcome_wait_s must be positive and ack_grace_s not negative")
