"""Which business a call belongs to: by the number called, or by name for outbound work.

Built from the config's `[[businesses]]` list; the server keeps one per config
object, so a hot reload swaps the whole table at once and a call already in
progress keeps the business it was answered for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agents.business.plans import branding_line, gates
from agents.business.settings import BusinessSettings
from agents.memory import CallerMemory, Known, issue_sentence
from store.phones import InvalidPhoneNumber, normalize_phone

log = logging.getLogger(__name__)


class BusinessRegistry:
    """Numbers → business, with a default for numbers no business claims.

    The default is the business marked `default = true`, else the first one; with
    no businesses configured every lookup answers None and calls behave as they
    did before businesses existed.
    """

    def __init__(self, businesses: Sequence[BusinessSettings]) -> None:
        self.businesses = tuple(businesses)
        self._by_number: dict[str, BusinessSettings] = {}
        self._by_name = {b.name: b for b in self.businesses}
        for business in self.businesses:
            for raw in business.numbers:
                self._by_number[normalize_phone(raw)] = business
        marked = [b for b in self.businesses if b.default]
        self.default: BusinessSettings | None = (
            marked[0] if marked else (self.businesses[0] if self.businesses else None))

    def for_number(self, called: str) -> BusinessSettings | None:
        """The business whose number was called; the default for any other number
        (including one that does not parse: a caller is never turned away for it)."""
        if not called:
            return self.default
        try:
            number = normalize_phone(called)
        except InvalidPhoneNumber:
            log.warning("called number does not parse; using the default business",
                        extra={"to": called[:40]})
            return self.default
        return self._by_number.get(number, self.default)

    def by_name(self, name: str | None) -> BusinessSettings | None:
        """The business an outbound job or campaign names; the default when unnamed
        or unknown (logged: a job naming a business we do not have is a config slip)."""
        if not name:
            return self.default
        business = self._by_name.get(name)
        if business is None:
            log.warning("unknown business named by outbound work; using the default",
                        extra={"business": name[:120]})
            return self.default
        return business


def greeting(business: BusinessSettings, memory: CallerMemory, fallback: str) -> str:
    """The business's first words: its returning-caller line for a known caller, then
    its greeting (or `fallback` when it has none). A caller whose last issue we know
    hears it said back between the two ("Last time you called about a water leak.")."""
    text = business.greeting.strip() or fallback
    if isinstance(memory, Known) and business.returning_greeting.strip():
        welcome = business.returning_greeting.replace("{name}", memory.name[:60])
        return " ".join(p for p in (welcome, issue_sentence(memory), text) if p)
    return text


def end_call_message(business: BusinessSettings) -> str:
    """The goodbye, with the system branding line when the plan carries it."""
    if gates(business.plan).branding:
        return f"{business.end_call_message} {branding_line()}".strip()
    return business.end_call_message


def no_voice_message(business: BusinessSettings) -> str:
    """What a caller hears when the business's plan has no voice agent; the system
    branding line after it on a plan that carries one (FREE): for a FREE business this
    message is the only thing a caller hears, so it is where the line goes."""
    text = business.no_voice_message.replace("{name}", business.name)
    if gates(business.plan).branding:
        return f"{text} {branding_line()}".strip()
    return text


def owner_missed_call_text(business: BusinessSettings, caller: str) -> str:
    """The owner's text about a call the plan could not answer by voice."""
    who = caller or "an unknown number"
    return (f"{business.name}: missed call from {who}. Your plan has no voice agent, so "
            "the caller heard a message saying you will call back.")
