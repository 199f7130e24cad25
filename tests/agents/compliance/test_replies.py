"""The CTIA/FCC-mandated texts: content the rules require, one segment, inputs tamed."""

from __future__ import annotations

import pytest

from agents.compliance.consent import classify_consent
from agents.compliance.replies import (
    OPT_OUT_CONFIRMATION,
    help_reply,
    opt_in_confirmation,
    opt_out_confirmation,
)

# GSM 03.38 basic character set (the characters that cost one septet each).
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_help_reply_has_every_ctia_element() -> None:
    text = help_reply("Acme Plumbing", "call (305) 555-0100", "Up to 4 msgs/month")
    for part in ("Acme Plumbing", "(305) 555-0100", "Up to 4 msgs/month",
                 "Msg&data rates may apply", "Reply STOP to opt out"):
        assert part in text
    assert set(text) <= GSM7 and len(text) <= 160


def test_opt_out_confirmation_is_one_plain_segment_without_links() -> None:
    text = opt_out_confirmation("Acme Plumbing")
    assert text.startswith("Acme Plumbing: ")
    assert "no more messages" in text and "START" in text
    assert "http" not in text and "www" not in text
    assert set(text) <= GSM7 and len(text) <= 160
    assert OPT_OUT_CONFIRMATION.startswith("You're unsubscribed")
    # Our own confirmation must not read as a new opt-out/opt-in if echoed back to us.
    assert classify_consent(text) != "opt_in"


def test_opt_in_confirmation() -> None:
    text = opt_in_confirmation("Acme", "Up to 2 msgs/week")
    for part in ("Acme: ", "Up to 2 msgs/week", "Msg&data rates may apply", "HELP", "STOP"):
        assert part in text
    assert set(text) <= GSM7 and len(text) <= 160


@pytest.mark.parametrize("name", ["Acme {business} {0}", "Acme\nPlumbing\r\n", "A" * 500, "",
                                  None, "  spaced   out  "])
def test_hostile_business_names(name: str | None) -> None:
    text = opt_out_confirmation(name)
    assert "\n" not in text and len(text) <= 160
    if name and "{" in name:
        assert "{business}" in text
    assert help_reply(name, "").endswith("Reply STOP to opt out.")
