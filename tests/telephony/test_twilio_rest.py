"""The Twilio REST client (hang up, transfer) against the fake Twilio API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telephony.twilio.rest import TwilioRest, TwilioRestError, transfer_twiml
from tests.fakes.twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "f" * 32
TOKEN = "secret-token"
CALL_SID = "CA" + "0123456789abcdef" * 2


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioRest]:
    fake = await FakeTwilioRest(ACCOUNT, TOKEN, live_calls={CALL_SID}).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def rest(twilio: FakeTwilioRest) -> AsyncIterator[TwilioRest]:
    client = TwilioRest(ACCOUNT, TOKEN, base_url=twilio.base_url)
    yield client
    await client.aclose()


async def test_hangup_sends_hangup_twiml(twilio: FakeTwilioRest, rest: TwilioRest) -> None:
    await rest.hangup(CALL_SID)
    (update,) = twilio.updates
    assert update.call_sid == CALL_SID
    assert update.twiml is not None and [c.tag for c in update.twiml] == ["Hangup"]


async def test_transfer_sends_dial_twiml(twilio: FakeTwilioRest, rest: TwilioRest) -> None:
    await rest.transfer(CALL_SID, "+1 (415) 555-0123", caller_id="+14155550100",
                        announce="Connecting you now.")
    (update,) = twilio.updates
    assert update.twiml is not None
    say_el, dial = list(update.twiml)
    assert (say_el.tag, say_el.text) == ("Say", "Connecting you now.")
    assert dial.tag == "Dial" and dial.get("callerId") == "+14155550100"
    assert [(n.tag, n.text) for n in dial] == [("Number", "+14155550123")]


async def test_rest_errors(twilio: FakeTwilioRest) -> None:
    wrong = TwilioRest(ACCOUNT, "wrong-token", base_url=twilio.base_url)
    try:
        with pytest.raises(TwilioRestError) as info:
            await wrong.hangup(CALL_SID)
        assert info.value.status == 401 and info.value.code == 20003
    finally:
        await wrong.aclose()
    rest = TwilioRest(ACCOUNT, TOKEN, base_url=twilio.base_url)
    try:
        with pytest.raises(TwilioRestError) as info:
            await rest.hangup("CA" + "1" * 32)  # not a live call
        assert info.value.status == 404
        with pytest.raises(ValueError):
            await rest.hangup("not-a-sid")
        with pytest.raises(ValueError):
            await rest.transfer(CALL_SID, "call my manager")
    finally:
        await rest.aclose()
    assert twilio.updates == []


def test_transfer_to_sip_and_required_credentials() -> None:
    assert "<Sip>sip:desk@pbx.example.com</Sip>" in transfer_twiml("sip:desk@pbx.example.com")
    with pytest.raises(ValueError):
        TwilioRest("", TOKEN)
