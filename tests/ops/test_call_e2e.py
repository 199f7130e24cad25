"""End to end: the real server, driven by `sim call` speaking real (eSpeak) speech."""

from __future__ import annotations

import asyncio
import wave

import aiohttp
import pytest

from ops.dev.sim import SimError, SimOptions, sim_call
from tests.audio import speech_ulaw
from tests.helpers import AUTH_TOKEN, calls_closed, start_server

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e


def _events(result, name):
    return [e for e in result.timeline if e["event"] == name]


async def test_call_greets_answers_turn_and_records(server, tmp_path):
    out = tmp_path / "agent.wav"
    result = await sim_call(SimOptions(
        url=server.url, auth_token=AUTH_TOKEN, record=str(out), hangup_after_s=30,
        audio=speech_ulaw("Hello, I would like to book an appointment for Tuesday."),
    ))
    assert not result.closed_by_server
    assert result.protocol_errors == 0
    # Greeting, then a reply to the caller's turn.
    assert result.responses >= 2
    assert result.agent_audio_ms > 3000
    starts = [e["t"] for e in _events(result, "agent_audio_start")]
    speech_end = _events(result, "caller_speech_end")[0]["t"]
    assert any(t > speech_end for t in starts), "no reply after the caller's turn"
    # Every mark came back; Twilio only echoes marks once the audio played.
    assert result.marks_echoed > 10
    assert result.clears == 0
    assert result.underruns == 0
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() > 3.0

    await calls_closed(server)
    engine = server.runtime.engine
    assert engine.end_of_turns >= 1
    assert engine.frames_out > 150
    # Recording (both directions) was written.
    recordings = list((tmp_path / "rec").glob("*.wav"))
    assert [r.name for r in recordings] == [f"{result.call_sid}.wav"]
    for _ in range(50):
        with wave.open(str(recordings[0])) as w:
            if w.getnframes() > 8000:
                break
        await asyncio.sleep(0.1)
    with wave.open(str(recordings[0])) as w:
        assert w.getnchannels() == 2
        assert w.getnframes() / w.getframerate() > 4.0


async def test_forged_signature_gets_403_and_no_stream(server):
    with pytest.raises(SimError, match="403"):
        await sim_call(SimOptions(url=server.url, auth_token="not-the-token",
                                  hangup_after_s=3))
    # The WebSocket upgrade is checked too, without a signature or with a bad one.
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Twilio-Signature": "bm9wZQ=="}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(server.url.replace("http", "ws") + "/twilio/media",
                                      headers=headers)
            assert err.value.status == 403
    assert server.runtime.twilio_stats.forged_signatures >= 3
    assert server.runtime.calls.started == 0


async def test_signature_checks_can_be_switched_off_explicitly_and_health_says_so(tmp_path):
    srv, runner = await start_server({"LEADLINE_TWILIO_VALIDATE_SIGNATURES": "false"})
    try:
        result = await sim_call(SimOptions(url=srv.url, auth_token="", hangup_after_s=8,
                                           audio=speech_ulaw("Hi there.")))
        assert result.responses >= 1
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/health") as resp:
            body = await resp.json()
        assert body["security"]["signatureValidation"] is False
    finally:
        await runner.cleanup()


async def test_barge_in_clears_playout_and_truncates_to_what_was_heard(server, monkeypatch):
    truncations: list[tuple[str, int, int]] = []
    from agents.scripted import ScriptedBrain

    original = ScriptedBrain.truncate

    def spy(self, item_id, audio_end_ms):
        sent = server.runtime.calls.active[self._context.call_sid].media.playout.sent_ms(item_id)
        truncations.append((item_id, audio_end_ms, sent))
        return original(self, item_id, audio_end_ms)

    monkeypatch.setattr(ScriptedBrain, "truncate", spy)
    result = await sim_call(SimOptions(
        url=server.url, auth_token=AUTH_TOKEN, hangup_after_s=20, barge_in_after_s=1.0,
        audio=speech_ulaw("Sorry to interrupt, I need to talk to someone about my bill."),
    ))
    assert result.clears >= 1
    speech = _events(result, "caller_speech_start")[0]["t"]
    clear = _events(result, "clear_received")[0]["t"]
    assert clear > speech
    # The server truncated the greeting to what the sim had acknowledged by marks.
    assert truncations, "brain was not told to truncate"
    item, heard, sent = truncations[0]
    assert item.startswith("scripted")
    echoed = [e for e in result.timeline
              if e["event"] == "mark_sent_back" and not e["flushed"]
              and e["name"].startswith(item + ":")]
    assert echoed
    assert heard == max(int(e["name"].rsplit(":", 1)[1]) for e in echoed)
    assert 0 < heard <= sent
    assert server.runtime.engine.barge_ins >= 1
    # After the interruption the caller's turn was answered.
    assert any(e["t"] > clear for e in _events(result, "agent_audio_start"))
