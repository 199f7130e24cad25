"""Tunables of the text channel: the `[sms]` section.

Declared in agents/ because the SMS agent (agents/chat) and the SMS transport
(sms/) both read it, and sms/ may import agents/ but not the reverse.
"""

from __future__ import annotations

import msgspec

# Intents that get a templated reply when no LLM answers (or its answer is rejected).
# "handoff" stands in for interested/booking when there is no booking link to share.
TEMPLATE_INTENTS = (
    "question", "interested", "booking", "not_interested", "wrong_number", "unknown",
    "handoff",
)


def _default_templates() -> dict[str, str]:
    return {
        "question": (
            "Thanks for your question, {first_name}! Someone from {business_name} "
            "will get back to you shortly."
        ),
        "interested": (
            "Great to hear, {first_name}! You can pick a time that suits you here: "
            "{booking_url}"
        ),
        "booking": "Happy to set that up, {first_name}. Choose any open slot here: {booking_url}",
        "not_interested": (
            "No problem, {first_name}. Thanks for letting us know, and have a great day."
        ),
        "wrong_number": "Sorry about that! We'll update our records. Have a good day.",
        "handoff": (
            "Thanks, {first_name}! Someone from {business_name} will reach out shortly to "
            "find a time that works."
        ),
        "unknown": (
            "Thanks for your message, {first_name}. Someone from {business_name} will "
            "follow up soon."
        ),
    }


class SmsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Sender identity, LLM connection and the agent's fallback wording."""

    # Sender: a Messaging Service SID wins over a bare number when both are set.
    from_number: str = ""
    messaging_service_sid: str = ""
    booking_url: str = ""
    business_name: str = "our team"
    # Who is alerted by SMS when a conversation needs a person (handoff); empty: no alert.
    owner_phone: str = ""
    # How a lead reaches a person: the contact line of the HELP reply, e.g. "Call us at
    # (415) 555-0100 or reply here". The reply adds the business name, the frequency,
    # "Msg&data rates may apply" and "Reply STOP to opt out" (agents/compliance/replies.toml),
    # so this line must not say STOP, holds at most 60 characters and must keep the reply
    # one SMS segment; a longer value is a config error, never cut.
    help_text: str = "Reply here and a person will answer"
    # At start, inbound texts stored this many hours back but never processed (a crash hit
    # between their commit and their reply) are processed again; 0 turns recovery off.
    inbound_recovery_h: float = 24.0
    # Empty: no LLM, replies come from `templates`.
    llm_base_url: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str = ""
    llm_timeout_s: float = 8.0
    # Sends per second per sender number (long codes carry ~1 segment/s).
    max_mps: float = 1.0
    # Longer replies are cut at a sentence or word boundary: 320 chars = 2-3 segments.
    max_reply_chars: int = 320
    # What the business allows the agent to state (prices, hours…); nothing else is claimed.
    facts: str = ""
    # Fallback replies per intent; variables {first_name}, {business_name}, {booking_url}.
    templates: dict[str, str] = msgspec.field(default_factory=_default_templates)

    def __post_init__(self) -> None:
        if not 0 < self.llm_timeout_s <= 120:
            raise ValueError("sms.llm_timeout_s must be in (0, 120]")
        from agents.compliance.replies import contact_line_problem

        problem = contact_line_problem(self.business_name, self.help_text)
        if problem is not None:
            raise ValueError(f"sms.help_text {problem}")
        if not 0 <= self.inbound_recovery_h <= 24 * 30:
            raise ValueError("sms.inbound_recovery_h must be in [0, 720]")
        if not 0 < self.max_mps <= 1000:
            raise ValueError("sms.max_mps must be in (0, 1000]")
        if not 40 <= self.max_reply_chars <= 1600:
            raise ValueError("sms.max_reply_chars must be in [40, 1600]")
        unknown = sorted(set(self.templates) - set(TEMPLATE_INTENTS))
        if unknown:
            raise ValueError(f"sms.templates: unknown intent(s) {unknown}")

    def template(self, intent: str) -> str:
        """The configured wording for `intent`; a partial `templates` table keeps the defaults."""
        if intent in self.templates:
            return self.templates[intent]
        defaults = _default_templates()
        return defaults.get(intent, defaults["unknown"])
