"""A drip campaign as data: the TOML file format, its validation, and template rendering.

One file is one campaign (see `Campaign`). Validation happens once, at load time, and
names the bad key and the touch ("touch 2: unknown variable {fist_name}"), so an
operator finds a typo before any lead gets a text. The stored definition is the
validated structure (`to_definition`), so every process renders the same campaign.

Templates are `str.format` fields restricted to plain names (no attribute access or
indexing, which would let a template reach into Python objects): the built-in variables
below plus lead attributes the campaign declares in `attributes = [...]`, so an unknown
name is a load error, not a text that goes out with a hole in it.
"""

from __future__ import annotations

import hashlib
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

import msgspec

from agents.compliance.rules import load_rules, parse_hhmm

# Variables every template may use; lead attributes come on top (declared per campaign).
BUILTIN_VARIABLES = frozenset({
    "first_name", "last_name", "business_name", "booking_url", "phone", "email",
})
STOP_RULES = ("reply", "opt_out", "handoff", "booked")
CHANNELS = ("sms", "email")
# A drip longer than this is not a follow-up any more (the product's 3–5 touches over
# 14–21 days); longer files are refused rather than trimmed.
MAX_SPAN = timedelta(days=21)
MAX_TOUCHES = 10
MAX_VARIANTS = 5
MAX_SMS_TEMPLATE = 1600
MAX_EMAIL_TEMPLATE = 20_000
MAX_SUBJECT = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_DELAY = re.compile(r"^\s*(\d{1,4})\s*([mhd])\s*$")
_WINDOW = re.compile(r"^\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FORMATTER = string.Formatter()


class CampaignError(ValueError):
    """A campaign file that cannot be used; the message names the key and touch."""


class Variant(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    template: str
    weight: int = 1
    subject: str | None = None


class Touch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    channel: Literal["sms", "email"]
    delay: str
    template: str
    subject: str | None = None
    # The main template's share of the A/B split, against each variant's weight.
    weight: int = 1
    variants: tuple[Variant, ...] = ()
    # Ask the chat agent's LLM to rewrite the template for the lead (the template is the
    # brief, and the fallback when the model fails or strays).
    personalize: bool = False

    @property
    def delay_td(self) -> timedelta:
        return parse_delay(self.delay)

    def choices(self) -> list[tuple[str, str | None, int]]:
        """(template, subject, weight) for variant 0 (the main template), 1, 2, …"""
        main = [(self.template, self.subject, self.weight)]
        return main + [(v.template, v.subject or self.subject, v.weight) for v in self.variants]


class Campaign(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    touches: tuple[Touch, ...]
    business: str = "default"
    stop_on: tuple[str, ...] = STOP_RULES
    # Recipient-local "HH:MM-HH:MM" preference, applied inside the legal window.
    window: str | None = None
    # Weekdays the window applies to ("mon".."sun"); default every day the law allows.
    days: tuple[str, ...] = ()
    # Lead attributes the templates use (e.g. "vehicle"), beyond the built-in variables.
    attributes: tuple[str, ...] = ()

    def window_minutes(self) -> tuple[int, int] | None:
        if self.window is None:
            return None
        m = _WINDOW.match(self.window)
        assert m is not None  # validated at load
        return parse_hhmm(m.group(1)), parse_hhmm(m.group(2))

    def weekdays(self) -> frozenset[int]:
        return frozenset(_DAYS.index(d) for d in self.days) if self.days else frozenset(range(7))

    def to_definition(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def parse_delay(text: str) -> timedelta:
    """"0d", "36h", "2d", "90m" → timedelta; ValueError naming the text otherwise."""
    m = _DELAY.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"delay must look like 0d, 36h, 2d or 90m, got {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


def template_fields(template: str) -> list[str]:
    """The variable names a template uses; ValueError for anything but `{name}`."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template syntax ({exc}); write literal braces as {{{{ }}}}") \
            from None
    names: list[str] = []
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conv:
            raise ValueError(f"template field {{{field}}} must be a plain {{name}}")
        names.append(field)
    return names


def _where(path: str) -> str:
    m = re.search(r"\$\.touches\[(\d+)\](.*)", path)
    if m:
        rest = m.group(2).lstrip(".")
        return f"touch {int(m.group(1)) + 1}" + (f": {rest}" if rest else "")
    return path.replace("$.", "").replace("$", "campaign")


def parse_campaign(data: Mapping[str, Any]) -> Campaign:
    """A validated campaign from TOML data; CampaignError naming the key and touch."""
    try:
        campaign = msgspec.convert(dict(data), Campaign)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = re.search(r" - at `([^`]*)`$", text)
        where = _where(m.group(1)) if m else "campaign"
        what = text[: m.start()] if m else text
        raise CampaignError(f"{where}: {what}") from None
    validate(campaign)
    return campaign


def load_campaign_text(text: str, source: str = "campaign") -> Campaign:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{source}: not valid TOML: {exc}") from None
    return parse_campaign(data)


def validate(c: Campaign) -> None:
    if not _NAME.match(c.name):
        raise CampaignError(f"name: {c.name!r} must be 1-100 letters, digits, _ . -")
    if not c.business.strip():
        raise CampaignError("business: must not be empty")
    bad = [r for r in c.stop_on if r not in STOP_RULES]
    if bad:
        raise CampaignError(f"stop_on: unknown rule(s) {bad}; known: {', '.join(STOP_RULES)}")
    if "opt_out" not in c.stop_on:
        raise CampaignError("stop_on: opt_out cannot be left out (an opt-out always ends "
                            "marketing, on every channel)")
    bad_days = [d for d in c.days if d not in _DAYS]
    if bad_days:
        raise CampaignError(f"days: unknown day(s) {bad_days}; use {', '.join(_DAYS)}")
    if c.window is not None:
        m = _WINDOW.match(c.window)
        if m is None:
            raise CampaignError(f"window: {c.window!r} must look like 10:00-17:00")
        try:
            start, end = parse_hhmm(m.group(1)), parse_hhmm(m.group(2))
        except ValueError as exc:
            raise CampaignError(f"window: {exc}") from None
        federal = load_rules().federal
        if start >= end:
            raise CampaignError(f"window: {c.window!r} must start before it ends")
        if start < federal.start or end > federal.end:
            raise CampaignError(
                f"window: {c.window!r} is outside the legal "
                f"{federal.start // 60:02d}:{federal.start % 60:02d}-"
                f"{federal.end // 60:02d}:{federal.end % 60:02d} window")
    for attr in c.attributes:
        if not attr.isidentifier() or attr in BUILTIN_VARIABLES:
            raise CampaignError(f"attributes: {attr!r} must be a name that is not built in")
    known = BUILTIN_VARIABLES | set(c.attributes)
    if not 1 <= len(c.touches) <= MAX_TOUCHES:
        raise CampaignError(f"touches: between 1 and {MAX_TOUCHES} touches, got "
                            f"{len(c.touches)}")
    span = timedelta(0)
    for n, t in enumerate(c.touches, 1):
        where = f"touch {n}"
        try:
            span += t.delay_td
        except ValueError as exc:
            raise CampaignError(f"{where}: delay: {exc}") from None
        if span > MAX_SPAN:
            raise CampaignError(f"{where}: delay: the campaign would run {span.days} days "
                                f"{span.seconds // 3600} h, longer than {MAX_SPAN.days} days")
        if len(t.variants) > MAX_VARIANTS:
            raise CampaignError(f"{where}: variants: at most {MAX_VARIANTS}")
        if t.channel == "email" and not (t.subject or "").strip():
            raise CampaignError(f"{where}: subject: an email touch needs a subject")
        if t.channel == "sms" and (t.subject or any(v.subject for v in t.variants)):
            raise CampaignError(f"{where}: subject: only email touches have a subject")
        limit = MAX_SMS_TEMPLATE if t.channel == "sms" else MAX_EMAIL_TEMPLATE
        for i, (template, subject, weight) in enumerate(t.choices()):
            label = "template" if i == 0 else f"variants[{i - 1}]"
            if weight < 0 or weight > 1000:
                raise CampaignError(f"{where}: {label}: weight must be 0..1000")
            if not template.strip():
                raise CampaignError(f"{where}: {label}: template is empty")
            if len(template) > limit:
                raise CampaignError(f"{where}: {label}: template longer than {limit}")
            for text, key in ((template, "template"), (subject or "", "subject")):
                if key == "subject" and len(text) > MAX_SUBJECT:
                    raise CampaignError(f"{where}: {label}: subject longer than {MAX_SUBJECT}")
                try:
                    names = template_fields(text)
                except ValueError as exc:
                    raise CampaignError(f"{where}: {label}: {key}: {exc}") from None
                unknown = [f for f in names if f not in known]
                if unknown:
                    raise CampaignError(
                        f"{where}: {label}: {key}: unknown variable {{{unknown[0]}}}; known: "
                        f"{', '.join(sorted(known))} (declare lead attributes in "
                        "`attributes = [...]`)")
        if sum(w for _, _, w in t.choices()) <= 0:
            raise CampaignError(f"{where}: variants: the weights add up to 0")


def pick_variant(touch: Touch, enrollment_id: int, touch_no: int) -> int:
    """The variant this enrollment gets for this touch: a stable hash, so a re-run of a
    pass (or another process) picks the same one, spread by the weights."""
    weights = [w for _, _, w in touch.choices()]
    total = sum(weights)
    digest = hashlib.blake2b(f"{enrollment_id}:{touch_no}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % total
    for i, w in enumerate(weights):
        if point < w:
            return i
        point -= w
    return 0


class MissingVariable(ValueError):
    """The lead lacks a value a template needs (a declared attribute it does not have)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lead has no value for {{{name}}}")
        self.name = name


def variables_for(*, first_name: str | None, last_name: str | None, phone: str,
                  email: str | None, attributes: Mapping[str, Any], business_name: str,
                  booking_url: str, declared: Sequence[str]) -> dict[str, str | None]:
    """The values a template sees; a lead without a first name is greeted as "there"."""
    out: dict[str, str | None] = {
        "first_name": first_name or "there", "last_name": last_name or "",
        "business_name": business_name, "booking_url": booking_url, "phone": phone,
        "email": email or "",
    }
    for name in declared:
        value = attributes.get(name)
        out[name] = None if value is None or not str(value).strip() else str(value)
    return out


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill a validated template; MissingVariable when a used value is None."""
    parts: list[str] = []
    for literal, field, _, _ in _FORMATTER.parse(template):
        parts.append(literal)
        if field is None:
            continue
        value = values.get(field)
        if value is None:
            raise MissingVariable(field)
        parts.append(value)
    return "".join(parts)
