"""The `sim call` Twilio stand-in, against a small server that speaks the protocol.

The Playout model is checked on a virtual clock (exact); the whole sim is then
run against an in-test aiohttp server that checks Twilio's signatures, greets,
answers, gets barged in on (and clears), and replies, so marks, clears, the WAV
and the timeline are all checked end to end with real eSpeak speech.
"""

from __future__ import annotations

import asyncio
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs import ulaw
from ops.dev.sim import (
    Playout,
    SimError,
    SimOptions,
    parse_stream_twiml,
    sim_call,
    stream_connect_url,
)
from telephony.twilio.signature import SIGNATURE_HEADER, SignatureChecker
from telephony.twilio.streams import Dtmf, Mark, Media, Outbound, Start, Stop, StreamProtocol
from telephony.twilio.twiml import connect_stream_twiml, say_hangup_twiml
from tests.audio import frames, speech_ulaw
from tests.helpers import serve_app

TOKEN = "test-auth-token"
PUBLIC_HTTPS = "https://leadline.example.invalid"
PUBLIC_WSS = "wss://leadline.example.invalid/twilio/stream"  # never resolves: the sim must not try
MARK_EVERY = 5  # frames (100 ms)

# --- Playout on a virtual clock --------------------------------------------------------


def test_marks_come_back_only_after_their_audio_played() -> None:
    p = Playout()
    p.advance(0.0)
    assert p.media(0.0, b"\x01" * 800) == ([], "response_start")  # 100 ms
    assert p.mark(0.0, "a") == []
    p.media(0.0, b"\x02" * 800)
    assert p.mark(0.0, "b") == []
    assert p.advance(0.099) == []
    assert p.advance(0.100) == ["a"]
    assert p.advance(0.150) == []
    assert p.advance(0.250) == ["b"]
    assert p.played == b"\x01" * 800 + b"\x02" * 800
    assert not p.busy


def test_mark_with_nothing_buffered_returns_at_once() -> None:
    p = Playout()
    assert p.mark(1.0, "now") == ["now"]


def test_clear_drops_audio_and_flushes_pending_marks() -> None:
    p = Playout()
    p.media(0.0, b"\x01" * 1600)  # 200 ms
    p.mark(0.0, "half")  # due at 200 ms
    p.media(0.0, b"\x02" * 1600)
    p.mark(0.0, "end")  # due at 400 ms
    due, flushed = p.clear(0.25)
    assert due == ["half"] and flushed == ["end"]
    assert p.played == b"\x01" * 1600 + b"\x02" * 400
    assert (p.played_bytes, p.cleared_bytes, p.received_bytes) == (2000, 1200, 3200)
    assert p.advance(5.0) == []  # nothing left to echo twice


def test_underrun_versus_new_response() -> None:
    p = Playout(response_gap_ms=400)
    assert p.media(0.0, b"\x01" * 160)[1] == "response_start"
    assert p.media(0.1, b"\x01" * 160)[1] == "underrun"  # dry for 80 ms mid-response
    assert p.media(1.0, b"\x01" * 160)[1] == "response_start"  # dry for 880 ms: new turn
    assert p.media(1.01, b"\x01" * 160)[1] is None  # still playing
    p.clear(1.02)
    assert p.media(1.03, b"\x01" * 160)[1] == "response_start"  # after a clear: new turn
    assert (p.underruns, p.responses) == (1, 3)


def test_idle_for() -> None:
    p = Playout()
    p.advance(0.0)
    assert p.idle_for(0.5) == pytest.approx(0.5)
    p.media(0.5, b"\x01" * 800)
    assert p.idle_for(0.55) == 0.0
    assert p.idle_for(0.9) == pytest.approx(0.3)


ops = st.lists(
    st.tuples(
        st.sampled_from(["media", "mark", "clear", "advance"]),
        st.floats(min_value=0, max_value=0.3),  # time step
        st.integers(min_value=0, max_value=2000),  # audio bytes
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_playout_invariants(script: list[tuple[str, float, int]]) -> None:
    p = Playout()
    now = 0.0
    audio_sent = 0
    marks: dict[str, int] = {}  # name -> byte position it waits for
    echoed: list[str] = []
    for i, (op, step, size) in enumerate(script):
        now += step
        if op == "media":
            due, _ = p.media(now, bytes([i % 256]) * size)
            audio_sent += size
        elif op == "mark":
            name = f"m{i}"
            marks[name] = audio_sent
            due = p.mark(now, name)
        elif op == "clear":
            played, flushed = p.clear(now)
            due = played + flushed
            for name in flushed:  # flushed marks: their audio will never play
                marks[name] = -1
        else:
            due = p.advance(now)
        for name in due:
            if marks[name] >= 0:
                assert p.played_bytes + p.cleared_bytes >= marks[name]
        echoed += due
        assert p.received_bytes == audio_sent
        assert 0 <= p.received_bytes - p.played_bytes - p.cleared_bytes
        assert p.busy == (p.received_bytes > p.played_bytes + p.cleared_bytes)
        assert p.played_bytes <= round(now * 8000) + 1
    echoed += p.clear(now + 1000)[0] + p.clear(now + 1000)[1]
    assert sorted(echoed, key=lambda n: int(n[1:])) == echoed  # in order sent
    assert set(echoed) == set(marks) and len(echoed) == len(marks)  # each exactly once


# --- small helpers ----------------------------------------------------------------------


def test_parse_stream_twiml() -> None:
    xml = connect_stream_twiml(PUBLIC_WSS, {"a": "1", "b": "<2>"}, None)
    assert parse_stream_twiml(xml) == (PUBLIC_WSS, {"a": "1", "b": "<2>"})
    assert parse_stream_twiml(say_hangup_twiml("bye")) is None
    with pytest.raises(SimError):
        parse_stream_twiml("<Response><Connect>")
    with pytest.raises(SimError):
        parse_stream_twiml("<html></html>")


def test_stream_connect_url() -> None:
    assert stream_connect_url("http://127.0.0.1:8080", PUBLIC_WSS) == (
        "ws://127.0.0.1:8080/twilio/stream"
    )
    assert stream_connect_url("https://10.0.0.5", "wss://x.example/a/b") == "wss://10.0.0.5/a/b"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        SimOptions(dtmf="12x")
    with pytest.raises(ValueError):
        SimOptions(hangup_after_s=0)


# --- a small server that speaks the protocol ---------------------------------------------


@dataclass
class Utterance:
    tag: str
    audio: bytes
    sent_at: float = 0.0
    marks: dict[str, int] = field(default_factory=dict)  # name -> bytes before it


@dataclass
class FakeServer:
    """Greets, answers the caller, is barged in on (clear), replies; checks signatures."""

    greeting: bytes
    answer: bytes
    reply: bytes
    webhook_url: str | None = None  # URL to check the webhook signature on (None: as seen)
    close_after_greeting: bool = False
    hole_s: float = 0.0  # pause in the middle of the greeting (an underrun)
    twiml: str | None = None  # answer the webhook with this instead
    checker: SignatureChecker = field(default_factory=lambda: SignatureChecker(TOKEN))
    form: dict[str, str] = field(default_factory=dict)
    webhook_signed: bool = False
    stream_signed: bool = False
    start: Start | None = None
    protocol: StreamProtocol | None = None
    utterances: list[Utterance] = field(default_factory=list)
    echoes: dict[str, float] = field(default_factory=dict)
    clear_sent_at: float | None = None
    dtmf: str = ""
    stopped: bool = False
    text_frames_only: bool = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twilio/voice", self.voice)
        app.router.add_get("/twilio/stream", self.stream)
        return app

    async def voice(self, request: web.Request) -> web.Response:
        form = await request.post()
        url = self.webhook_url or str(request.url)
        if not self.checker.valid(url, form, request.headers.get(SIGNATURE_HEADER)):  # type: ignore[arg-type]
            return web.Response(status=403, text="bad signature")
        self.webhook_signed = True
        self.form = {k: str(v) for k, v in form.items()}
        twiml = self.twiml or connect_stream_twiml(
            PUBLIC_WSS, {"lead_id": "L-7", "caller": self.form["From"]}, None
        )
        return web.Response(text=twiml, content_type="text/xml")

    async def say(self, ws: web.WebSocketResponse, out: Outbound, tag: str, audio: bytes) -> None:
        """Send an utterance in one burst, a mark every 100 ms (Twilio buffers it)."""
        u = Utterance(tag, audio, asyncio.get_running_loop().time())
        self.utterances.append(u)
        for i, frame in enumerate(frames(audio, ulaw.FRAME_BYTES), 1):
            await ws.send_str(out.media(frame).decode())
            if i % MARK_EVERY == 0:
                name = f"{tag}{i // MARK_EVERY}"
                u.marks[name] = i * ulaw.FRAME_BYTES
                await ws.send_str(out.mark(name).decode())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if not self.checker.valid(PUBLIC_WSS, {}, request.headers.get(SIGNATURE_HEADER)):
            return web.Response(status=403)
        self.stream_signed = True
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.protocol = p = StreamProtocol()
        loop = asyncio.get_running_loop()
        out: Outbound | None = None
        phase = "greeting"
        loud = quiet = 0
        async for msg in ws:
            self.text_frames_only &= msg.type is WSMsgType.TEXT
            ev = p.receive(msg.data)
            if isinstance(ev, Start):
                self.start = ev
                out = Outbound(ev.stream_sid)
                if self.hole_s:
                    half = len(self.greeting) // 2 // ulaw.FRAME_BYTES * ulaw.FRAME_BYTES
                    await self.say(ws, out, "g", self.greeting[:half])
                    await asyncio.sleep(half / 8000 + self.hole_s)
                    await self.say(ws, out, "h", self.greeting[half:])
                else:
                    await self.say(ws, out, "g", self.greeting)
                if self.close_after_greeting:
                    await asyncio.sleep(len(self.greeting) / 8000 + 0.3)
                    await ws.close()
                    break
            elif isinstance(ev, Media) and out is not None:
                speaking = ulaw.rms(ulaw.decode(ev.audio)) > 300
                if phase == "greeting" and speaking:
                    phase = "answering"
                    await self.say(ws, out, "a", self.answer)
                elif phase == "answering":
                    loud += speaking
                    if loud >= 30:  # 600 ms of caller speech over the agent: barge-in
                        phase = "barged"
                        self.clear_sent_at = loop.time()
                        await ws.send_str(out.clear().decode())
                elif phase == "barged":
                    quiet = 0 if speaking else quiet + 1
                    if quiet >= 40:  # caller done: reply
                        phase = "done"
                        await self.say(ws, out, "r", self.reply)
            elif isinstance(ev, Mark):
                assert ev.name not in self.echoes, "mark echoed twice"
                self.echoes[ev.name] = loop.time()
            elif isinstance(ev, Dtmf):
                self.dtmf += ev.digit
            elif isinstance(ev, Stop):
                self.stopped = True
        return ws


@pytest.fixture(scope="module")
def voices() -> dict[str, bytes]:
    return {
        "greeting": speech_ulaw("Thanks for calling Acme Dental."),
        "answer": speech_ulaw(
            "We have openings on Monday at nine, Tuesday at eleven, and Friday afternoon."
        ),
        "reply": speech_ulaw("Great, see you then."),
        "caller": speech_ulaw("Hello I would like to book a cleaning for next Tuesday morning"),
    }


async def run_server(server: FakeServer) -> tuple[web.AppRunner, str]:
    runner, port = await serve_app(server.app())
    return runner, f"http://127.0.0.1:{port}"


# --- end to end -------------------------------------------------------------------


@pytest.mark.e2e
async def test_full_call(voices: dict[str, bytes], tmp_path: Path) -> None:
    server = FakeServer(
        voices["greeting"],
        voices["answer"],
        voices["reply"],
        webhook_url=PUBLIC_HTTPS + "/twilio/voice",
    )
    runner, url = await run_server(server)
    events: list[dict[str, Any]] = []
    wav_path = tmp_path / "agent.wav"
    try:
        result = await sim_call(
            SimOptions(
                url=url,
                public_url=PUBLIC_HTTPS,
                from_number="+15551230000",
                to_number="+15557654321",
                audio=voices["caller"],
                dtmf="12",
                record=str(wav_path),
                auth_token=TOKEN,
                call_sid="CA" + "f" * 32,
                hangup_after_s=25,
                wait_for_agent_s=3,
                quiet_s=0.4,
                json_events=True,
                on_event=events.append,
            )
        )
    finally:
        await runner.cleanup()

    # webhook and upgrade were signed like Twilio's and carried Twilio's fields
    assert server.webhook_signed and server.stream_signed
    assert server.form["CallSid"] == "CA" + "f" * 32 == result.call_sid
    assert server.form["From"] == "+15551230000" and server.form["To"] == "+15557654321"
    assert server.form["CallStatus"] == "ringing" and server.form["Direction"] == "inbound"
    assert server.form["ApiVersion"] == "2010-04-01"
    assert server.form["AccountSid"].startswith("AC") and len(server.form["AccountSid"]) == 34
    # the stream: TwiML parameters arrived as customParameters; clean protocol both ways
    assert server.start is not None and server.protocol is not None
    assert server.start.custom_parameters == {"lead_id": "L-7", "caller": "+15551230000"}
    assert server.start.stream_sid == result.stream_sid
    assert server.protocol.error_total == 0 and server.text_frames_only
    assert server.dtmf == "12" and server.stopped
    assert result.protocol_errors == 0 and not result.closed_by_server

    greeting, answer, reply = server.utterances
    assert [u.tag for u in server.utterances] == ["g", "a", "r"]
    assert server.clear_sent_at is not None
    # every mark came back exactly once; played ones never before their audio had played
    sent_marks = {name: (u, pos) for u in server.utterances for name, pos in u.marks.items()}
    assert set(server.echoes) == set(sent_marks)
    assert result.marks_echoed == len(sent_marks)
    flushed = {
        e["name"] for e in result.timeline if e["event"] == "mark_sent_back" and e["flushed"]
    }
    assert flushed and result.marks_flushed == len(flushed)
    for name, (u, pos) in sent_marks.items():
        if name in flushed:
            assert u is answer and server.echoes[name] >= server.clear_sent_at
        else:
            assert server.echoes[name] - u.sent_at >= pos / 8000 - 1e-3, name
    # the answer was cut: some of its marks played, the rest were flushed by the clear
    answer_marks = set(answer.marks)
    assert flushed <= answer_marks and answer_marks - flushed
    assert set(greeting.marks) | set(reply.marks) <= set(server.echoes) - flushed

    # the WAV holds exactly what was played: all of greeting and reply, the answer up to the clear
    with wave.open(str(wav_path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        pcm = w.readframes(w.getnframes())
    sent_g = len(frames(greeting.audio, 160)) * 160
    sent_a = len(frames(answer.audio, 160)) * 160
    sent_r = len(frames(reply.audio, 160)) * 160
    heard_a = len(pcm) // 2 - sent_g - sent_r
    assert 0 < heard_a < sent_a
    assert pcm == ulaw.decode(
        greeting.audio[:sent_g] + answer.audio[:heard_a] + reply.audio[:sent_r]
    )
    assert result.agent_audio_ms == (sent_g + heard_a + sent_r) // 8
    assert result.clears == 1 and result.underruns == 0 and result.responses == 3

    # the timeline, printed as it happened
    names = [e["event"] for e in result.timeline]
    assert events == result.timeline
    for expected in (
        "sent_start",
        "caller_speech_start",
        "caller_speech_end",
        "clear_received",
        "mark_sent_back",
        "stop",
    ):
        assert expected in names, expected
    assert names.count("agent_audio_start") == 3 and names.count("dtmf_sent") == 2
    assert names[0] == "sent_start" and names[-1] == "stop"
    order = [
        names.index(n)
        for n in (
            "sent_start",
            "caller_speech_start",
            "clear_received",
            "caller_speech_end",
            "dtmf_sent",
            "stop",
        )
    ]
    assert order == sorted(order)
    times = [e["t"] for e in result.timeline]
    assert times == sorted(times)


@pytest.mark.e2e
async def test_server_hangs_up_and_an_underrun_is_counted(
    voices: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(
        voices["greeting"],
        voices["answer"],
        voices["reply"],
        close_after_greeting=True,
        hole_s=0.2,
    )
    runner, url = await run_server(server)
    try:
        result = await sim_call(
            SimOptions(
                url=url,
                auth_token=TOKEN,
                hangup_after_s=15,
                wait_for_agent_s=10,
                json_events=True,
            )
        )
    finally:
        await runner.cleanup()
    assert result.closed_by_server
    assert result.underruns == 1 and result.responses == 1
    assert not server.stopped
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == result.timeline
    names = [e["event"] for e in lines]
    assert "underrun" in names and names[-1] == "server_closed" and "stop" not in names


@pytest.mark.e2e
async def test_hangup_after_max_seconds(voices: dict[str, bytes]) -> None:
    server = FakeServer(b"", b"", b"")
    runner, url = await run_server(server)
    try:
        result = await sim_call(
            SimOptions(url=url, auth_token=TOKEN, hangup_after_s=0.5, wait_for_agent_s=10)
        )
    finally:
        await runner.cleanup()
    names = [e["event"] for e in result.timeline]
    assert names[-2:] == ["hangup_timeout", "stop"]
    assert server.stopped and result.agent_audio_ms == 0


@pytest.mark.parametrize("token", ["", "wrong-token"])
async def test_unsigned_or_badly_signed_call_is_refused(token: str) -> None:
    server = FakeServer(b"", b"", b"")
    runner, url = await run_server(server)
    try:
        with pytest.raises(SimError, match="403"):
            await sim_call(SimOptions(url=url, auth_token=token, hangup_after_s=2))
    finally:
        await runner.cleanup()
    assert not server.webhook_signed and server.start is None


async def test_twiml_without_stream() -> None:
    server = FakeServer(b"", b"", b"", twiml=say_hangup_twiml("We are closed."))
    runner, url = await run_server(server)
    try:
        result = await sim_call(SimOptions(url=url, auth_token=TOKEN))
    finally:
        await runner.cleanup()
    assert [e["event"] for e in result.timeline] == ["twiml_without_stream"]
    assert "<Say>We are closed.</Say>" in result.twiml and not server.stream_signed


async def test_unreachable_server() -> None:
    runner, port = await serve_app(web.Application())
    url = f"http://127.0.0.1:{port}"
    await runner.cleanup()
    with pytest.raises(SimError):
        await sim_call(SimOptions(url=url))
