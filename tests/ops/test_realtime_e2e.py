"""The OpenAI Realtime brain end to end: the real server, the real `openai` SDK, the fake service.

Every call here is placed by `sim_call` (Twilio's side, real eSpeak speech)
against a server in this process whose brain talks, through the official SDK,
to `ops.dev.fake_realtime` on a local port. What the fake received is the
evidence of what leadline sent to "OpenAI"; what the sim played is what the
caller heard. The last test does the same with the installed commands only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agents.realtime.breaker import default_breaker
from media.codecs import ulaw
from ops.dev.fake_realtime import (
    FakeRealtime,
    FakeRealtimeRunner,
    Fault,
    Script,
    ScriptedToolCall,
    Turn,
    serve_fake_realtime,
)
from ops.dev.sim import SimOptions, SimResult, sim_call
from telephony.call import Call
from tests.audio import speech_ulaw
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import AUTH_TOKEN, Server, calls_closed, start_server

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "5a" * 16
HUMAN = "+15005550199"
GREETING = "Hi, thanks for calling."
CALLER = "What time do you open tomorrow?"
REPLY = "We open at nine."
BIN = Path(sys.executable).parent / "leadline"


@dataclass
class Rig:
    server: Server
    fake: FakeRealtime
    fake_runner: FakeRealtimeRunner
    rest: FakeTwilioRest


@pytest.fixture(autouse=True)
def fresh_breaker() -> Any:
    """The circuit breaker is process-wide: no test inherits another's failures."""
    default_breaker.reset()
    yield
    default_breaker.reset()


@asynccontextmanager
async def realtime_rig(tmp_path: Path, script: Script, env: Mapping[str, str] | None = None
                       ) -> AsyncIterator[Rig]:
    fake_runner = await serve_fake_realtime(0, script)
    rest = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    server, runner = await start_server({
        "LEADLINE_BRAIN_KIND": "openai",
        "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": fake_runner.websocket_base_url,
        "LEADLINE_OPENAI_TRANSFER_NUMBER": HUMAN,
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": rest.base_url,
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        **(env or {}),
    })
    try:
        yield Rig(server, fake_runner.fake, fake_runner, rest)
    finally:
        await runner.cleanup()
        await rest.stop()
        await fake_runner.cleanup()


async def call(server: Server, **options: Any) -> SimResult:
    defaults: dict[str, Any] = {"url": server.url, "auth_token": AUTH_TOKEN,
                                "hangup_after_s": 20.0, "quiet_s": 0.6}
    return await sim_call(SimOptions(**{**defaults, **options}))


def events(result: SimResult, name: str) -> list[dict[str, Any]]:
    return [e for e in result.timeline if e["event"] == name]


async def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(metrics: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, /,
           **labels: str) -> float:
    return metrics.get((metric, tuple(sorted(labels.items()))), 0.0)


def spoken(fake: FakeRealtime) -> bytes:
    """Every response item the fake streamed, as a caller hears it (whole 20 ms frames).

    Playout pads an item's last frame with silence; nothing else may differ.
    """
    items: dict[str, bytearray] = {}
    for e in fake.emitted_of("response.output_audio.delta"):
        items.setdefault(e["item_id"], bytearray()).extend(base64.b64decode(e["delta"]))
    return b"".join(bytes(a) + ulaw.SILENT_FRAME[: -len(a) % ulaw.FRAME_BYTES]
                    for a in items.values())


def said(fake: FakeRealtime) -> list[str]:
    return [e["transcript"] for e in fake.emitted_of("response.output_audio_transcript.done")]


def heard(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


# --- a call answered ---------------------------------------------------------------


async def test_greeting_then_the_scripted_reply_through_the_sdk(tmp_path: Path) -> None:
    script = Script(greeting=GREETING, turns=(Turn(transcript=CALLER, reply=REPLY),))
    async with realtime_rig(tmp_path, script) as rig:
        record = tmp_path / "heard.wav"
        result = await call(rig.server, audio=speech_ulaw(CALLER), record=str(record),
                            wait_for_agent_s=3.0)
        await calls_closed(rig.server)
        metrics = await scrape(rig.server)

    assert result.protocol_errors == 0 and result.clears == 0 and result.underruns == 0
    assert not result.closed_by_server
    # The agent spoke first (the sim waits 3 s before talking over silence) ...
    starts = [e["t"] for e in events(result, "agent_audio_start")]
    assert starts and starts[0] < events(result, "caller_speech_start")[0]["t"]
    # ... and answered the caller's turn.
    speech_end = events(result, "caller_speech_end")[0]["t"]
    assert [t for t in starts if t > speech_end]
    assert result.responses == 2
    # What the caller heard is exactly what the fake streamed for the greeting and
    # the scripted reply, byte for byte (decoded μ-law): nothing cut, nothing added.
    assert said(rig.fake) == [GREETING, REPLY]
    assert heard(record) == ulaw.decode(spoken(rig.fake))

    # What "OpenAI" received: a GA session in μ-law, our turn detection, the
    # caller's audio, then commit followed by response.create.
    fake = rig.fake
    (update,) = fake.received_of("session.update")
    audio = update["session"]["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcmu"}
    assert audio["output"]["format"]["type"] == "audio/pcmu"
    assert audio["input"]["turn_detection"] is None
    kinds = [e["type"] for e in fake.received]
    commit = kinds.index("input_audio_buffer.commit")
    assert kinds[commit + 1] == "response.create"
    assert kinds.count("response.create") == 2  # greeting, answer
    appended = sum(e["audio_bytes"] for e in list(fake.received)[:commit]
                   if e["type"] == "input_audio_buffer.append")
    assert appended >= len(speech_ulaw(CALLER)) // 2
    assert not fake.refused and fake.errors_sent == 0

    # The latency figures of the turn, the greeting and the connect are in /metrics,
    # beside the brain's own counters (tokens from response.done, rate limits).
    for name in ("leadline_turn_latency_seconds_count",
                 "leadline_turn_latency_brain_seconds_count",
                 "leadline_turn_latency_ours_seconds_count",
                 "leadline_greeting_latency_seconds_count",
                 "leadline_brain_connect_seconds_count"):
        assert sample(metrics, name, brain="openai") >= 1, name
    ours = sample(metrics, "leadline_turn_latency_ours_seconds_sum", brain="openai")
    total = sample(metrics, "leadline_turn_latency_seconds_sum", brain="openai")
    assert 0 < ours < total
    assert sample(metrics, "leadline_realtime_tokens_total",
                  direction="output", modality="audio") > 0
    assert sample(metrics, "leadline_realtime_rate_limit_remaining", name="requests") == 9_999
    assert sample(metrics, "leadline_realtime_connects_total", outcome="ok") >= 1
    assert sample(metrics, "leadline_realtime_connect_seconds_count") >= 1


# --- barge-in ------------------------------------------------------------------------


async def test_barge_in_cancels_clears_and_truncates_to_the_acknowledged_marks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What reached the server, in its own order: the sim's mark echoes and our clear.
    # (A mark the sim sends back while our clear is on its way is heard, but not yet
    # known to us: the truncate must not count it, and cannot.)
    order: list[str] = []
    played, send_clear = Call.played, Call.send_clear
    monkeypatch.setattr(Call, "played", lambda self, item_id, ms: (
        order.append(f"{item_id}:{ms}"), played(self, item_id, ms))[1])
    monkeypatch.setattr(Call, "send_clear",
                        lambda self: (order.append("<clear>"), send_clear(self))[1])
    # Real-time pacing: the greeting is still streaming when the caller talks over it.
    script = Script(
        greeting="Hello and welcome. Our office hours are nine to five on weekdays, "
                 "and ten to two on Saturdays. Let me know how I can help you today.",
        turns=(Turn(transcript=CALLER, reply=REPLY),), speed=1.0)
    async with realtime_rig(tmp_path, script) as rig:
        result = await call(rig.server, audio=speech_ulaw("Sorry, I need a person please."),
                            barge_in_after_s=1.5)
        await calls_closed(rig.server)
        metrics = await scrape(rig.server)
    fake = rig.fake

    assert result.clears >= 1
    clear_at = events(result, "clear_received")[0]["t"]
    assert clear_at > events(result, "caller_speech_start")[0]["t"]
    kinds = [e["type"] for e in fake.received]
    cancel = kinds.index("response.cancel")
    (truncate,) = fake.received_of("conversation.item.truncate")
    assert kinds.index("conversation.item.truncate") > cancel
    # audio_end_ms is the last mark of that item the sim acknowledged before our clear.
    item = truncate["item_id"]
    echoed = [e["name"] for e in events(result, "mark_sent_back")
              if not e["flushed"] and e["t"] <= clear_at and e["name"].startswith(item + ":")]
    known = [n for n in order[: order.index("<clear>")] if n.startswith(item + ":")]
    assert known and known == echoed[: len(known)]
    assert len(echoed) - len(known) <= 1  # at most one was in flight
    assert truncate["audio_end_ms"] == max(int(n.rsplit(":", 1)[1]) for n in known) > 0
    # The service accepted it (never past the audio it sent), and the turn was answered.
    assert fake.truncate_rejections == 0 and not fake.refused
    (greeting,) = [e for e in fake.emitted_of("response.done")
                   if e["response"]["status"] == "cancelled"]
    assert greeting["response"]["output"][0]["id"] == item
    assert any(e["t"] > clear_at for e in events(result, "agent_audio_start"))
    assert sample(metrics, "leadline_barge_ins_total") >= 1


# --- tools -----------------------------------------------------------------------------


async def test_end_call_tool_hangs_up_after_the_goodbye_played(tmp_path: Path) -> None:
    goodbye = "Goodbye, have a nice day."
    script = Script(greeting=GREETING, turns=(Turn(
        transcript="That is all, thanks.", reply="",
        tool_calls=(ScriptedToolCall("end_call", {"reason": "caller is done"}),),
        after_tool_reply=goodbye),))
    async with realtime_rig(tmp_path, script) as rig:
        record = tmp_path / "heard.wav"
        result = await call(rig.server, audio=speech_ulaw("That is all, thanks."),
                            record=str(record))
        await calls_closed(rig.server)
        reasons = dict(rig.server.runtime.calls.end_reasons)
    fake = rig.fake

    # The server ended the call (the sim did not hang up) ...
    assert result.closed_by_server
    assert reasons == {"caller is done": 1}
    # ... once every byte of the goodbye had played and its final mark came back.
    assert said(fake) == [GREETING, goodbye]
    assert heard(record) == ulaw.decode(spoken(fake))
    closed_at = events(result, "server_closed")[0]["t"]
    marks = events(result, "mark_sent_back")
    assert marks and all(m["t"] <= closed_at for m in marks)
    assert not any(m["flushed"] for m in marks)
    # The tool's result went back to the model, which then spoke the goodbye.
    (output,) = [e for e in fake.received_of("conversation.item.create")
                 if e["item"]["type"] == "function_call_output"]
    kinds = [e["type"] for e in fake.received]
    assert kinds[kinds.index("conversation.item.create") + 1] == "response.create"
    assert "end" in output["item"]["output"].lower()


async def test_transfer_call_tool_dials_the_human_through_twilio_rest(tmp_path: Path) -> None:
    script = Script(greeting=GREETING, turns=(Turn(
        transcript="Can I talk to a person?", reply="",
        tool_calls=(ScriptedToolCall("transfer_call", {"reason": "wants a human"}),),
        after_tool_reply="Connecting you now."),))
    async with realtime_rig(tmp_path, script) as rig:
        result = await call(rig.server, audio=speech_ulaw("Can I talk to a person?"))
        await calls_closed(rig.server)
    rest = rig.rest

    assert not rest.rejected
    (update,) = rest.updates
    assert update.call_sid == result.call_sid
    twiml = update.twiml
    assert twiml is not None and twiml.tag == "Response"
    dial = twiml.find("Dial")
    assert dial is not None
    assert [n.text for n in dial.findall("Number")] == [HUMAN]
    # The model told the caller before the transfer took over.
    assert result.responses == 2


# --- resilience --------------------------------------------------------------------------


async def test_dropped_socket_reconnects_and_restores_the_conversation(tmp_path: Path) -> None:
    script = Script(greeting=GREETING, turns=(Turn(
        transcript=CALLER, reply=REPLY, fault=Fault("disconnect", after_chunks=0)),))
    # Process-wide counter: earlier tests in this process may have moved it.
    failed_before = REGISTRY.get_sample_value("leadline_realtime_brain_failed_total") or 0.0
    async with realtime_rig(tmp_path, script) as rig:
        record = tmp_path / "heard.wav"
        await call(rig.server, audio=speech_ulaw(CALLER), record=str(record))
        await calls_closed(rig.server)
        metrics = await scrape(rig.server)
    fake = rig.fake

    assert fake.faults_fired == ["turn:0"]
    assert {e["connection"] for e in fake.received} == {1, 2}
    # The second connection got the session again and the conversation so far: the
    # greeting the caller heard and the caller's turn (its transcript), in order.
    restored = [e for e in fake.received if e["connection"] == 2]
    assert restored[0]["type"] == "session.update"
    items = [e["item"] for e in restored if e["type"] == "conversation.item.create"]
    texts = [(i["role"], c.get("text")) for i in items for c in i["content"]]
    assert texts == [("assistant", GREETING), ("user", CALLER)]
    assert [e["type"] for e in restored].count("response.create") == 1
    # The caller heard the answer, whole, after the greeting; no fallback happened.
    assert said(fake) == [GREETING, REPLY]
    assert heard(record) == ulaw.decode(spoken(fake))
    assert sample(metrics, "leadline_realtime_disconnects_total") >= 1
    assert sample(metrics, "leadline_realtime_restores_total", outcome="ok") >= 1
    assert sample(metrics, "leadline_realtime_brain_failed_total") == failed_before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_service_opens_the_circuit_and_the_keyless_brain_speaks(
        tmp_path: Path) -> None:
    script = Script(greeting=GREETING)
    env = {"LEADLINE_OPENAI_BASE_URL": f"ws://127.0.0.1:{_closed_port()}/v1",
           "LEADLINE_OPENAI_BREAKER_FAILURES": "2",
           "LEADLINE_OPENAI_CONNECT_TIMEOUT_S": "1"}
    async with realtime_rig(tmp_path, script, env) as rig:
        short = {"hangup_after_s": 2.5, "wait_for_agent_s": 2.0}
        # Two calls find the service down: each falls back to the keyless brain.
        first = await asyncio.gather(call(rig.server, **short), call(rig.server, **short))
        assert default_breaker.state.name == "OPEN"
        failures = sample(await scrape(rig.server), "leadline_realtime_connects_total",
                          outcome="error")
        # The next call does not even try: it starts on the keyless brain at once.
        third = await call(rig.server, **short)
        await calls_closed(rig.server)
        metrics = await scrape(rig.server)

    for result in (*first, third):
        assert result.agent_audio_ms > 500  # nobody heard dead air
        assert not result.closed_by_server
    assert failures >= 2
    assert sample(metrics, "leadline_realtime_connects_total", outcome="error") == failures
    assert sample(metrics, "leadline_realtime_breaker_state") == 2
    assert sample(metrics, "leadline_realtime_breaker_trips_total") >= 1
    assert sample(metrics, "leadline_greeting_latency_seconds_count", brain="scripted") >= 3
    assert not rig.fake.received  # the fake was never reached


# --- the "Done when", from the command line ------------------------------------------------


def _free_port() -> int:
    return _closed_port()


def _wait_http(url: str, proc: subprocess.Popen[bytes], limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"{proc.args} exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_cli_fake_realtime_serve_and_sim_call_hear_the_scripted_reply(tmp_path: Path) -> None:
    script_file = tmp_path / "script.toml"
    script_file.write_text(
        f'greeting = "{GREETING}"\n[[turns]]\ntranscript = "{CALLER}"\nreply = "{REPLY}"\n')
    fake_port, server_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADLINE_", "TWILIO_", "OPENAI_"))}
    env.update({"LEADLINE_SERVER_PORT": str(server_port), "LEADLINE_SERVER_HOST": "127.0.0.1",
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "LEADLINE_BRAIN_KIND": "openai",
                "LEADLINE_OPENAI_BASE_URL": f"ws://127.0.0.1:{fake_port}/v1",
                "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages")})
    fake = subprocess.Popen(
        [str(BIN), "dev", "fake-realtime", "--port", str(fake_port), "--script",
         str(script_file)], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = subprocess.Popen([str(BIN), "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_http(f"http://127.0.0.1:{fake_port}/health", fake)
        url = f"http://127.0.0.1:{server_port}"
        _wait_http(url + "/health", server)
        sim = subprocess.run(
            [str(BIN), "sim", "call", "--url", url, "--say", CALLER, "--json",
             "--max-seconds", "20"],
            env=env, capture_output=True, timeout=40, check=False)
        assert sim.returncode == 0, sim.stderr.decode()
        lines = [json.loads(line) for line in sim.stdout.decode().splitlines()]
        summary = lines[-1]
        assert summary["event"] == "summary" and summary["protocol_errors"] == 0
        assert summary["responses"] == 2
        speech_end = next(e["t"] for e in lines if e["event"] == "caller_speech_end")
        assert any(e["event"] == "agent_audio_start" and e["t"] > speech_end for e in lines)
        # It was the fake that answered: it got the turn and spoke the scripted reply.
        with urllib.request.urlopen(f"http://127.0.0.1:{fake_port}/debug/emitted"
                                    "?type=response.output_audio_transcript.done") as resp:
            said = [e["transcript"] for e in json.loads(resp.read())]
        assert said == [GREETING, REPLY]
        with urllib.request.urlopen(url + "/metrics") as resp:
            text = resp.read().decode()
        counts = {(s.name, s.labels.get("brain")): s.value
                  for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert counts[("leadline_turn_latency_seconds_count", "openai")] == 1
    finally:
        _stop(server)
        _stop(fake)
    assert server.returncode == 0, server.stderr.read().decode()[-2000:] if server.stderr else ""
