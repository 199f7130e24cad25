"""The fixed texts as the SMS channel renders them from [sms]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.chat.segments import count_segments
from agents.chat.settings import SmsSettings
from agents.compliance.replies import HELP_MAX_SEGMENTS, MAX_CONTACT, contact_line_problem
from ops.config import ConfigError, load
from sms.compliance import EngineWording


def wording(**settings: str) -> EngineWording:
    cfg = SmsSettings(business_name="Acme Solar", **settings)  # type: ignore[arg-type]
    return EngineWording(lambda: cfg)


def test_help_reply_carries_the_contact_line_and_the_carrier_required_parts() -> None:
    contact = "Call us at (415) 555-0100 or reply here"
    text = wording(help_text=contact).help_reply()
    assert text.startswith("Acme Solar:")
    assert contact in text
    assert "Reply STOP" in text and text.count("STOP") == 1
    assert "Msg&data rates may apply" in text
    assert count_segments(text) == (HELP_MAX_SEGMENTS, "GSM-7")


def test_the_default_contact_line_fits_and_is_used() -> None:
    default = SmsSettings().help_text
    assert contact_line_problem("our team", default) is None
    text = wording().help_reply()
    assert default in text and count_segments(text)[0] == HELP_MAX_SEGMENTS


@pytest.mark.parametrize(("settings", "needle"), [
    ({"help_text": "x" * (MAX_CONTACT + 1)}, "61 characters"),
    ({"help_text": "Reply STOP to opt out. Call 415-555-0100"}, "opt out"),
    ({"help_text": "Text UNSUBSCRIBE to leave, or call us"}, "opt out"),
    ({"help_text": "Call us\nat 415-555-0100"}, "one line"),
    ({"help_text": "Call us \u2019round the clock at 415-555-0100"}, "UCS-2"),
    ({"help_text": "Call us at (415) 555-0100 or reply here, any day",
      "business_name": "Acme Solar and Roofing of Northern Cal"}, "segments"),
])
def test_a_contact_line_that_does_not_fit_is_a_config_error_naming_the_key(
        tmp_path: Path, settings: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SmsSettings(**settings)  # type: ignore[arg-type]
    path = tmp_path / "leadline.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("[sms]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sms\.help_text"):
        load(path, environ={})


def test_confirmations_name_the_business_and_carry_no_link() -> None:
    w = wording()
    for text in (w.opt_out_confirmation(), w.opt_in_confirmation()):
        assert text.startswith("Acme Solar") and "http" not in text
