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


class SilentTwilio:
    """An HTTP server that takes every request and never answers (Twilio stuck)."""

    def __init__(self) -> None:
        self.requests = 0

    async def start(self) -> SilentTwilio:
        import asyncio

        from aiohttp import web

        async def hold(request: web.Request) -> web.Response:
            self.requests += 1
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hold)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()


async def test_every_request_is_bounded_when_twilio_never_answers() -> None:
    """The SDK's async client ignores its own timeout: each REST call is cut at
    `timeout_s` with an error that says which request and how long."""
    import time

    from telephony.dialer.leg import DialFailed, DialRequest, TwilioCallPlacer

    silent = await SilentTwilio().start()
    client = TwilioCallPlacer(ACCOUNT, TOKEN, base_url=silent.base_url, timeout_s=0.3)
    request = DialRequest(to="+14155552671", from_="+14155550100", parameters={},
                          ring_timeout_s=20, time_limit_s=60)
    try:
        started = time.monotonic()
        with pytest.raises(TwilioRestError, match=r"did not answer the update of call "
                           r"CA[0-9a-f]+ within 0\.3 s"):
            await client.hangup(CALL_SID)
        with pytest.raises(TwilioRestError, match=r"within 0\.3 s"):
            await client.transfer(CALL_SID, "+14155550123")
        with pytest.raises(DialFailed, match=r"did not answer calls\.create within 0\.3 s") \
                as created:
            await client.place(request, "https://x.example.com")
        assert not created.value.permanent and created.value.status is None
        from datetime import UTC, datetime

        with pytest.raises(DialFailed, match=r"did not answer calls\.list within 0\.3 s"):
            await client.find(request.to, request.from_, datetime.now(UTC))
        assert time.monotonic() - started < 10  # four bounded waits, not four hangs
        assert silent.requests == 4
    finally:
        await client.aclose()
        await silent.stop()
