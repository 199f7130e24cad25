"""The texts the law makes us send: HELP answers and opt-out / opt-in confirmations.

Templates are data (`replies.toml`, CTIA and FCC 24-24 cited there). Inputs are
cleaned, not trusted: a business name or contact line from config or the database
is collapsed to one line and bounded, so a stray newline or a 500-character name cannot
turn a one-segment confirmation into three, and braces in it are never treated as
placeholders.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources

# Longest business name / contact line / frequency text put into a reply.
MAX_NAME = 40
MAX_CONTACT = 60
MAX_FREQUENCY = 40
DEFAULT_FREQUENCY = "Msg frequency varies"
# A HELP answer is one SMS segment: carriers and CTIA test it as a single message, and a
# split one can arrive out of order with the STOP instruction in the second half.
HELP_MAX_SEGMENTS = 1
# The template says how to opt out itself; a contact line that does too says it twice.
_OPT_OUT_WORDING = re.compile(r"\b(stop|unsubscribe|opt[ -]?out)\b", re.IGNORECASE)


@lru_cache(maxsize=1)
def _templates() -> dict[str, str]:
    text = resources.files("agents.compliance").joinpath("replies.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {key: str(data[key]) for key in ("help", "opt_out", "opt_in")}


def _clean(text: str | None, limit: int) -> str:
    one_line = " ".join(str(text or "").split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1].rstrip() + "."
    return one_line.rstrip(".")


def _prefix(business_name: str | None) -> str:
    name = _clean(business_name, MAX_NAME)
    return f"{name}: " if name else ""


def _render(key: str, **values: str) -> str:
    # str.format on the template only: braces inside the values stay literal.
    return _templates()[key].format(**values)


def help_reply(business_name: str | None, contact: str,
               frequency_text: str = DEFAULT_FREQUENCY) -> str:
    """The CTIA HELP answer: who we are, how to reach a person, frequency, rates, STOP."""
    return _render("help", prefix=_prefix(business_name),
                   contact=_clean(contact, MAX_CONTACT) or "reply to this message",
                   frequency=_clean(frequency_text, MAX_FREQUENCY) or DEFAULT_FREQUENCY)


def contact_line_problem(business_name: str | None, contact: str) -> str | None:
    """Why `contact` cannot be the HELP reply's contact line, or None when it can. A
    configured line is checked, never cut: a cut one would tell a lead half a phone
    number."""
    from agents.chat.segments import count_segments

    if contact != " ".join(contact.split()):
        return "must be one line without leading, trailing or repeated spaces"
    if len(contact) > MAX_CONTACT:
        return f"is {len(contact)} characters; the HELP reply's contact line holds {MAX_CONTACT}"
    if _OPT_OUT_WORDING.search(contact):
        return "must not say how to opt out: the HELP reply adds \"Reply STOP to opt out\""
    text = help_reply(business_name, contact)
    segments, encoding = count_segments(text)
    if segments > HELP_MAX_SEGMENTS:
        return (f"makes the HELP reply {len(text)} characters in {encoding}, "
                f"{segments} segments; it must fit {HELP_MAX_SEGMENTS} (shorten it or "
                "sms.business_name, and keep to plain ASCII)")
    return None


def opt_out_confirmation(business_name: str | None) -> str:
    """The single confirmation after an opt-out: no marketing, no link."""
    return _render("opt_out", prefix=_prefix(business_name))


def opt_in_confirmation(business_name: str | None,
                        frequency_text: str = DEFAULT_FREQUENCY) -> str:
    """The answer to START/UNSTOP: subscribed again, frequency, rates, HELP and STOP."""
    return _render("opt_in", prefix=_prefix(business_name),
                   frequency=_clean(frequency_text, MAX_FREQUENCY) or DEFAULT_FREQUENCY)


# The confirmation for a sender without a configured business name.
OPT_OUT_CONFIRMATION = opt_out_confirmation(None)
