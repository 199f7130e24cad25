"""The fixed texts as the SMS channel renders them from [sms]."""

from __future__ import annotations

from agents.chat.segments import count_segments
from agents.chat.settings import SmsSettings
from sms.compliance import EngineWording


def wording(**settings: str) -> EngineWording:
    cfg = SmsSettings(business_name="Acme Solar", **settings)  # type: ignore[arg-type]
    return EngineWording(lambda: cfg)


def test_help_uses_a_short_contact_line() -> None:
    text = wording(help_text="call us at 415-555-0123").help_reply()
    assert "call us at 415-555-0123" in text and text.count("STOP") == 1


def test_help_text_that_would_be_cut_is_replaced_not_truncated() -> None:
    text = wording().help_reply()  # the default help_text is a long sentence with STOP
    assert "reply to this message." in text
    assert text.count("STOP") == 1
    assert count_segments(text)[0] == 1


def test_confirmations_name_the_business_and_carry_no_link() -> None:
    w = wording()
    for text in (w.opt_out_confirmation(), w.opt_in_confirmation()):
        assert text.startswith("Acme Solar") and "http" not in text
