"""Bad peers end at most their own call; every fault is counted and visible in /metrics."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ops.dev.sim import SimOptions, sim_call
from ops.dev.twilio_side import TwilioSide
from telephony.twilio.signature import SignatureChecker
from tests.audio import speech_ulaw
from tests.ops.conftest import AUTH_TOKEN

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e


async def _connect(http: aiohttp.ClientSession, server) -> aiohttp.ClientWebSocketResponse:
    url = server.url.replace("http://", "ws://") + "/twilio/media"
    signature = SignatureChecker(AUTH_TOKEN).sign(url, {})
    return await http.ws_connect(url, headers={"X-Twilio-Signature": signature})


def _side(n: int) -> TwilioSide:
    return TwilioSide(f"MZbad{n:029d}", f"CAbad{n:029d}", "AC" + "0" * 32,
                      {"From": "+15005550006", "To": "+15005550001"})


async def _garbage_peer(server, n: int, messages: list, *, abrupt: bool = False) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await _connect(http, server)
        for message in messages:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
            await asyncio.sleep(0.01)
        if abrupt:  # drop the TCP connection without a close handshake
            ws._response.connection.transport.abort()  # type: ignore[union-attr]
            return
        await asyncio.sleep(0.3)
        await ws.close()


async def test_garbage_on_other_sockets_leaves_a_live_call_untouched(server):
    good = asyncio.create_task(sim_call(SimOptions(
        url=server.url, auth_token=AUTH_TOKEN, hangup_after_s=25,
        audio=speech_ulaw("Hello, can you tell me your opening hours?"),
    )))
    await asyncio.sleep(1.0)
    s1, s2, s3 = _side(1), _side(2), _side(3)
    media_frame = b"\xff" * 160
    peers = [
        # media before start, malformed JSON, unknown event, then an honest start...
        _garbage_peer(server, 1, [
            s1.connected(), s1.media(media_frame), "{not json", '{"event":"dance"}',
            s1.start(), s1.start(),  # ...and a second start
            s1.media(media_frame).replace(b'"payload":"', b'"payload":"!!!'),  # bad base64
            s1.media(b""),  # empty payload
            '{"event":"media","streamSid":"MZother","media":{"track":"inbound",'
            '"chunk":"1","timestamp":"0","payload":"/w=="}}',
        ]),
        # oversized message: aiohttp refuses it and ends only this socket
        _garbage_peer(server, 2, [s2.connected(), s2.start(), "x" * 70_000]),
        # a call that vanishes mid-stream
        _garbage_peer(server, 3, [s3.connected(), s3.start(), s3.media(media_frame)],
                      abrupt=True),
    ]
    await asyncio.gather(*peers)
    result = await good
    assert not result.closed_by_server
    assert result.protocol_errors == 0
    assert result.responses >= 2  # greeting and answer both arrived in full

    errors = server.runtime.twilio_stats.protocol_errors
    for kind in ("media_before_start", "malformed_json", "unknown_event", "duplicate_start",
                 "bad_base64", "odd_payload", "wrong_stream_sid", "oversized"):
        assert errors[kind] >= 1, kind
    for _ in range(50):
        if not server.runtime.calls.active:
            break
        await asyncio.sleep(0.1)
    assert not server.runtime.calls.active  # every bad call was cleaned up
    assert server.runtime.calls.started == 4

    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        text = await resp.text()
    assert 'leadline_protocol_errors_total{kind="malformed_json"}' in text
    assert "leadline_active_calls 0.0" in text


async def test_stop_before_start_and_error_flood_end_only_that_socket(server):
    s = _side(9)
    async with aiohttp.ClientSession() as http:
        ws = await _connect(http, server)
        await ws.send_bytes(s.connected())
        await ws.send_bytes(s.start())
        for _ in range(25):  # more consecutive faults than the budget allows
            await ws.send_str("][")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING)
    assert server.runtime.calls.ended >= 1
    assert server.runtime.calls.end_reasons.get("protocol error: malformed_json") == 1
