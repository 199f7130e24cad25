"""What an outgoing SMS reply may look like: cleaning, length, templates, and the fact guard.

A language model writes fluent text but will happily promise "$99 a month" or a
phone number nobody gave it. A text message is a written statement from the
business, so every concrete claim a reply makes — a price or amount, a
percentage, a phone number, a link — must appear in what the business allowed
us to say (its `facts` and its booking link). A reply that states anything else
is rejected and the templated reply goes out instead. Pure functions: no I/O.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping

import phonenumbers

# Speaker labels models prepend ("Assistant: Hi!"); the business name is added per call.
ROLE_PREFIXES = ("assistant", "ai", "agent", "bot", "sms", "reply", "response", "system")
_QUOTES = "\"'“”‘’«»`"

_MONEY = re.compile(
    r"(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?[kKmM]\b)?)"
    r"|(?:\b\d[\d,]*(?:\.\d+)?\s?(?:dollars?|bucks|usd|eur|euros?|pounds?|gbp|cents?)\b)",
    re.IGNORECASE,
)
# "99/mo", "40 per hour", "120 a month": a number priced per something is an amount.
_RATE = re.compile(
    r"\b\d[\d,]*(?:\.\d+)?\s?(?:/\s?(?:mo|month|hr|hour|yr|year|week|wk|day|visit|session)\b"
    r"|(?:per|a|an|each)\s(?:month|hour|year|week|day|visit|session|night|person)\b)",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"\b\d+(?:\.\d+)?\s?(?:%|percent\b|pct\b)", re.IGNORECASE)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"']+"
    r"|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|us|biz|info|app|ly|me)\b"
    r"(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_TRAILING = ".,;:!?)]}'\""


def _number(raw: str) -> str:
    """A numeric claim in a comparable form: "1,200.00" and "1200" are the same amount."""
    digits = re.sub(r"[^\d.]", "", raw).strip(".")
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return digits


def _url_key(raw: str) -> str:
    url = raw.lower().rstrip(_TRAILING)
    url = re.sub(r"^https?://", "", url)
    url = re.sub(r"^www\.", "", url)
    return url.rstrip("/")


def _phones(text: str) -> set[str]:
    found = set()
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        found.add(phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
    return found


def _allowed_numbers(sources: str) -> set[str]:
    return {_number(m) for m in re.findall(r"\d[\d,]*(?:\.\d+)?", sources)}


def fact_violations(reply: str, allowed: Iterable[str]) -> list[str]:
    """Claims in `reply` that none of the `allowed` texts contain; empty means the reply is OK.

    Numbers compare by value ("$1,200" is allowed by "1200 dollars"), links by host and
    path (scheme, "www." and a trailing slash ignored), phones as E.164.
    """
    sources = "\n".join(a for a in allowed if a)
    numbers = _allowed_numbers(sources)
    urls = {_url_key(m.group(0)) for m in _URL.finditer(sources)}
    phones = _phones(sources)
    bad: list[str] = []
    for pattern, kind in ((_MONEY, "amount"), (_RATE, "amount"), (_PERCENT, "percentage")):
        for match in pattern.finditer(reply):
            value = re.search(r"\d[\d,]*(?:\.\d+)?", match.group(0))
            if value is not None and _number(value.group(0)) not in numbers:
                bad.append(f"{kind} {match.group(0).strip()!r}")
    for match in _URL.finditer(reply):
        key = _url_key(match.group(0))
        # The link itself or a shorter form of an allowed one; never an invented path.
        if key and not any(key == u or u.startswith(key + "/") for u in urls):
            bad.append(f"link {match.group(0).rstrip(_TRAILING)!r}")
    for phone in _phones(reply) - phones:
        bad.append(f"phone {phone}")
    return bad


def clean_reply(text: str, *, business_name: str = "", max_chars: int = 320) -> str:
    """The model's text as an SMS: no quotes or speaker label, one line, at most `max_chars`."""
    out = " ".join(text.split())
    prefixes = [*ROLE_PREFIXES]
    if business_name.strip():
        prefixes.append(business_name.strip().lower())
    for _ in range(3):  # "Assistant: "Hi"" — quotes and labels can nest
        before = out
        out = out.strip().strip(_QUOTES).strip()
        low = out.lower()
        for prefix in prefixes:
            if low.startswith(prefix):
                rest = out[len(prefix):].lstrip()
                if rest[:1] in (":", "-", "—", ">"):
                    out = rest[1:].strip()
                    break
        if out == before:
            break
    return truncate(out, max_chars)


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars`, at the last sentence end that keeps half of it, else a word."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= max_chars // 2:
        return head[:ends[-1]].rstrip()
    space = head.rfind(" ")
    cut = head[:space] if space >= max_chars // 2 else head[:max_chars - 1]
    return cut.rstrip(" ,;:-") + "…"


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_template(template: str, values: Mapping[str, str]) -> str:
    """A configured template with {first_name}, {business_name}, {booking_url} filled in.

    Unknown variables stay as written and a malformed template ("{" alone) is sent as
    typed: a config slip must never stop a reply.
    """
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError:
        return " ".join(template.split())
    if any(not n.isidentifier() for n in names):
        return " ".join(template.split())
    return " ".join(template.format_map(_Missing(values)).split())
