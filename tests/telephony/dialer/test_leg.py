"""`calls.create` through the official SDK against the fake Twilio: what is sent, and how
Twilio's refusals and failures are sorted for the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio, Fault
from telephony.dialer.leg import DialFailed, DialRequest, TwilioCallPlacer, callback_urls

ACCOUNT = "AC" + "1" * 32
TOKEN = "leg-test-token"
REQUEST = DialRequest(to="+14155552671", from_="+14155550100",
                      parameters={"DialKey": "bull:q:1:0", "JobId": "1"},
                      ring_timeout_s=25, time_limit_s=600)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = await FakeTwilio(ACCOUNT, TOKEN,
                              script=CalleeScript(default=Callee(answer="busy"))).start()
    try:
        yield twilio
    finally:
        await twilio.stop()


@pytest.fixture
async def placer(fake: FakeTwilio) -> AsyncIterator[TwilioCallPlacer]:
    p = TwilioCallPlacer(ACCOUNT, TOKEN, base_url=fake.base_url, timeout_s=1.0)
    try:
        yield p
    finally:
        await p.aclose()


def test_callback_urls_keep_the_given_scheme() -> None:
    assert callback_urls("https://a.example.com/pre") == (
        "wss://a.example.com/pre/twilio/media", "https://a.example.com/pre/twilio/call-status",
        "https://a.example.com/pre/twilio/amd")
    assert callback_urls("http://127.0.0.1:8080")[0] == "ws://127.0.0.1:8080/twilio/media"


async def test_create_sends_what_twilio_needs(fake: FakeTwilio, placer: TwilioCallPlacer) -> None:
    sid = await placer.place(REQUEST, "https://leadline.example.com")
    call = fake.calls[sid]
    form = call.form
    assert form["To"] == "+14155552671" and form["From"] == "+14155550100"
    assert form["StatusCallback"] == "https://leadline.example.com/twilio/call-status"
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == "DetectMessageEnd" and form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == "https://leadline.example.com/twilio/amd"
    assert form["Timeout"] == "25" and form["TimeLimit"] == "600"
    assert '<Stream url="wss://leadline.example.com/twilio/media">' in form["Twiml"]
    assert '<Parameter name="Direction" value="outbound-api"' in form["Twiml"]
    assert '<Parameter name="DialKey" value="bull:q:1:0"' in form["Twiml"]


@pytest.mark.parametrize(("fault", "permanent"), [
    (Fault(400, 21211, "Invalid 'To' Phone Number"), True),
    (Fault(403, 21215, "Geo permission"), True),
    (Fault(429, 20429, "Too Many Requests"), False),
    (Fault(500, 20500, "Internal Server Error"), False),
    (Fault(503, 20503, "Service Unavailable"), False),
])
async def test_refusals_are_sorted(fake: FakeTwilio, placer: TwilioCallPlacer, fault: Fault,
                                   permanent: bool) -> None:
    fake.faults.append(fault)
    with pytest.raises(DialFailed) as exc:
        await placer.place(REQUEST, "https://x.example.com")
    assert exc.value.permanent is permanent and exc.value.status == fault.status
    assert str(fault.code) in str(exc.value)


async def test_timeout_is_transient(fake: FakeTwilio, placer: TwilioCallPlacer) -> None:
    fake.faults.append(Fault(hang_s=3.0))
    with pytest.raises(DialFailed) as exc:
        await placer.place(REQUEST, "https://x.example.com")
    assert not exc.value.permanent and exc.value.status is None


async def test_wrong_credentials_are_permanent(fake: FakeTwilio) -> None:
    bad = TwilioCallPlacer(ACCOUNT, "wrong", base_url=fake.base_url, timeout_s=1.0)
    try:
        with pytest.raises(DialFailed) as exc:
            await bad.place(REQUEST, "https://x.example.com")
        assert exc.value.permanent and exc.value.code == 20003
    finally:
        await bad.aclose()


async def test_a_create_that_timed_out_is_found(fake: FakeTwilio,
                                                placer: TwilioCallPlacer) -> None:
    from datetime import UTC, datetime

    since = datetime.now(UTC)
    fake.faults.append(Fault(hang_s=3.0, created=True))
    with pytest.raises(DialFailed):
        await placer.place(REQUEST, "https://x.example.com")
    assert fake.creates == 1 and len(fake.calls) == 1
    found = await placer.find(REQUEST.to, REQUEST.from_, since)
    assert found == next(iter(fake.calls))
    assert await placer.find("+14155552699", REQUEST.from_, since) is None
