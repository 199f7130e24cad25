"""What a call comes to, from the callee's words and the carrier's statuses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from telephony.dialer.outcome import Conversation, returnvalue, status_outcome


def said(*lines: str) -> Conversation:
    conv = Conversation()
    for line in lines:
        conv.heard(line)
    return conv


def test_dont_call_us_again_is_do_not_call_and_wins() -> None:
    conv = Conversation()
    assert conv.heard("Hello?") is None
    assert conv.heard("Don't call us again.") == "do_not_call"
    conv.heard("sure, tuesday at 3 works")
    assert conv.outcome("human") == "do_not_call"


@pytest.mark.parametrize(("lines", "outcome"), [
    (["Hello, front desk.", "Sure, Tuesday at 3 works."], "meeting_booked"),
    (["Can you call me back later? I'm driving."], "callback_requested"),
    (["No thanks, we're not interested."], "declined"),
    (["Hello?"], "declined"),
    ([], "declined"),
])
def test_outcomes(lines: list[str], outcome: str) -> None:
    assert said(*lines).outcome("human") == outcome


def test_decline_reason_and_objections() -> None:
    conv = said("Honestly it's too expensive and we already have a provider.",
                "No thanks, not interested.")
    detail = conv.detail("human")
    assert conv.outcome("human") == "declined"
    assert detail["declineReason"] == "No thanks, not interested."
    assert detail["objections"] == ["price", "competitor"]
    assert said().detail("human")["declineReason"] == "no response"


def test_machine_outcomes() -> None:
    left = Conversation()
    left.voicemail_left = True
    assert left.outcome("machine_end_beep") == "voicemail_left"
    assert Conversation().outcome("machine_end_silence") == "failed"  # message never played


def test_statuses() -> None:
    assert status_outcome("busy") == "busy"
    assert status_outcome("no-answer") == "no_answer"
    assert status_outcome("canceled") == "failed"
    assert status_outcome("completed") is None


def test_returnvalue_shape() -> None:
    record = SimpleNamespace(outcome=None, status="no-answer", call_sid="CA1", duration_s=0,
                             detail={})
    assert returnvalue(record) == {
        "outcome": "no_answer", "callSid": "CA1", "durationS": 0, "transcriptUrl": None,
        "meeting": None, "declineReason": None, "objections": []}


def test_bad_transcripts_are_ignored() -> None:
    conv = Conversation()
    assert conv.heard("") is None and conv.heard(None) is None  # type: ignore[arg-type]
    assert conv.turns == 0


def test_a_menu_and_nothing_else_is_ivr_failed() -> None:
    menu = "Thank you for calling. For appointments press 1. For the front desk press 2."
    assert said(menu, "Sorry, that is not a valid option.", menu).outcome("unknown") == \
        "ivr_failed"
    passed = said(menu, "Front desk, this is Sam.", "Sure, Tuesday at 3 works.")
    assert passed.outcome("human") == "meeting_booked"
    assert said("Para espanol, oprima dos.", "Hello?").outcome("human") == "declined"
