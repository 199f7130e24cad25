"""The fake Realtime service: GA events the SDK parses, the service's refusals, its tooling."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel, TypeAdapter

from ops.dev.fake_realtime import (
    FakeRealtimeRunner,
    Fault,
    Script,
    ScriptedToolCall,
    Turn,
    build_parser,
    load_script,
    serve_fake_realtime,
)
from tests.audio import frames, silence_pcm, speech_ulaw

SERVER_EVENTS = TypeAdapter(RealtimeServerEvent)
REPO = Path(__file__).resolve().parents[3]
MODEL = "gpt-realtime"
# Fields the live service sends beyond the SDK's declared models (session resource fields).
KNOWN_EXTRAS = {"session.object", "session.id", "session.expires_at"}


def undeclared(value: Any, path: str = "") -> list[str]:
    """Paths of fields an SDK model does not declare."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{k}".lstrip(".") for k in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += undeclared(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for x in value:
            found += undeclared(x, path)
    return found


def check_emitted(events: typing.Iterable[dict[str, Any]]) -> set[str]:
    """Every emitted event parses with the SDK's server-event union, as its own type."""
    kinds = set()
    for event in events:
        model = SERVER_EVENTS.validate_python(event)
        assert model.type == event["type"], event["type"]
        extras = set(undeclared(model)) - KNOWN_EXTRAS
        assert not extras, (event["type"], extras)
        kinds.add(event["type"])
    return kinds


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeRunner]:
    runner = await serve_fake_realtime(0, Script(
        greeting="Hello there.",
        turns=(
            Turn(transcript="What time is it?", reply="It is noon."),
            Turn(transcript="Look it up.", reply="Checking.",
                 tool_calls=(ScriptedToolCall("lookup", {"q": "x"}),),
                 after_tool_reply="Found it."),
            Turn(reply="This will fail.", fault=Fault("error", after_chunks=1)),
        ),
        speed=0,
    ))
    yield runner
    await runner.cleanup()


async def connect(runner: FakeRealtimeRunner) -> Any:
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=runner.websocket_base_url)
    return await client.realtime.connect(model=MODEL).enter()


async def until(conn: Any, kind: str, limit_s: float = 10.0) -> list[Any]:
    """Events (parsed by the SDK) up to and including the first of `kind`."""
    events = []
    async with asyncio.timeout(limit_s):
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == kind:
                return events


def session_update(turn_detection: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": turn_detection,
                            "transcription": {"model": "gpt-4o-mini-transcribe"}},
                  "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "tools": [{"type": "function", "name": "lookup", "description": "Look up.",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    }}


async def append(conn: Any, audio: bytes) -> None:
    for frame in frames(audio, 160):
        await conn.send({"type": "input_audio_buffer.append",
                         "audio": base64.b64encode(frame).decode()})


async def test_every_emitted_event_parses_with_the_sdk_types(fake: FakeRealtimeRunner) -> None:
    conn = await connect(fake)
    try:
        (created,) = await until(conn, "session.created")
        assert created.session.type == "realtime"
        await conn.send(session_update())
        await until(conn, "session.updated")
        # Greeting.
        await conn.send({"type": "response.create"})
        greeting = await until(conn, "response.done")
        audio = b"".join(base64.b64decode(e.delta) for e in greeting
                         if e.type == "response.output_audio.delta")
        assert len(audio) > 4_000
        # Turn 1: commit → transcript and reply.
        await append(conn, speech_ulaw("what time is it"))
        await conn.send({"type": "input_audio_buffer.commit"})
        await conn.send({"type": "response.create"})
        turn = await until(conn, "response.done")
        (transcribed,) = [e for e in turn if e.type ==
                          "conversation.item.input_audio_transcription.completed"]
        assert transcribed.transcript == "What time is it?"
        reply_item = next(e.item_id for e in turn if e.type == "response.output_audio.delta")
        (said,) = [e for e in turn if e.type == "response.output_audio_transcript.done"]
        assert said.transcript == "It is noon."
        # Truncate and delete the reply items.
        await conn.send({"type": "conversation.item.truncate", "item_id": reply_item,
                         "content_index": 0, "audio_end_ms": 100})
        await until(conn, "conversation.item.truncated")
        await conn.send({"type": "conversation.item.delete", "item_id": reply_item})
        await until(conn, "conversation.item.deleted")
        # Turn 2: a function call, its output, the follow-up.
        await append(conn, speech_ulaw("look it up"))
        await conn.send({"type": "input_audio_buffer.commit"})
        await conn.send({"type": "response.create"})
        turn = await until(conn, "response.done")
        (call,) = [e for e in turn if e.type == "response.function_call_arguments.done"]
        assert (call.name, call.arguments) == ("lookup", '{"q":"x"}')
        await conn.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call.call_id, "output": "42"}})
        await conn.send({"type": "response.create"})
        after = await until(conn, "response.done")
        assert any(e.type == "response.output_audio_transcript.done" and
                   e.transcript == "Found it." for e in after)
        # Turn 3: the scripted error fault, then a cancel with nothing active.
        await append(conn, speech_ulaw("and now"))
        await conn.send({"type": "input_audio_buffer.commit"})
        await conn.send({"type": "response.create"})
        failed = await until(conn, "response.done")
        assert failed[-1].response.status == "failed"
        assert any(e.type == "error" for e in failed)
        await conn.send({"type": "response.cancel"})
        await until(conn, "error")
        await conn.send({"type": "input_audio_buffer.clear"})
        await until(conn, "input_audio_buffer.cleared")
    finally:
        await conn.close()
    kinds = check_emitted(fake.fake.emitted)
    assert {
        "session.created", "session.updated", "response.created", "response.done",
        "response.output_item.added", "response.output_item.done",
        "response.content_part.added", "response.content_part.done",
        "response.output_audio.delta", "response.output_audio.done",
        "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "conversation.item.added", "conversation.item.done", "conversation.item.truncated",
        "conversation.item.deleted", "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.input_audio_transcription.completed", "rate_limits.updated",
        "error",
    } <= kinds


async def test_server_vad_events_parse_and_interrupt(fake: FakeRealtimeRunner) -> None:
    conn = await connect(fake)
    try:
        await conn.send(session_update({"type": "server_vad", "silence_duration_ms": 300}))
        await until(conn, "session.updated")
        await conn.send({"type": "response.create"})
        await until(conn, "response.created")
        # The caller talks over the greeting: the service interrupts it.
        await append(conn, speech_ulaw("what time is it"))
        events = await until(conn, "input_audio_buffer.speech_started")
        interrupted = await until(conn, "response.done")
        assert interrupted[-1].response.status == "cancelled"
        assert interrupted[-1].response.status_details.reason == "turn_detected"
        await append(conn, ulaw_silence(600))
        events = await until(conn, "response.done")
        kinds = [e.type for e in events]
        assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index(
            "input_audio_buffer.committed") < kinds.index("response.created")
    finally:
        await conn.close()
    assert {"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"} <= \
        check_emitted(fake.fake.emitted)


def ulaw_silence(ms: int) -> bytes:
    from media.codecs import ulaw

    return ulaw.encode(silence_pcm(ms))


REFUSALS = [
    ({"type": "session.update", "session": {"modalities": ["audio"],
                                            "input_audio_format": "g711_ulaw"}},
     "invalid_value"),
    ({"type": "session.update", "session": {"type": "realtime",
                                            "input_audio_format": "g711_ulaw"}},
     "unknown_parameter"),
    ({"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}},
     "unknown_parameter"),
    ({"type": "response.cancel"}, "response_cancel_not_active"),
    ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
    ({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0,
      "audio_end_ms": 10}, "item_not_found"),
    ({"type": "conversation.item.delete", "item_id": "item_nope"}, "item_not_found"),
    ({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_nope", "output": "x"}},
     "invalid_tool_call_id"),
    ({"type": "response.audio.delta", "delta": "AAAA"}, "invalid_value"),
    ({"type": "input_audio_buffer.append", "audio": "%%% not base64"}, "invalid_value"),
    ({"type": "conversation.item.create", "item": {
        "type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}]}},
     "invalid_value"),
]


@pytest.mark.parametrize(("event", "code"), REFUSALS)
async def test_refuses_what_the_service_refuses(fake: FakeRealtimeRunner, event: dict[str, Any],
                                                code: str) -> None:
    conn = await connect(fake)
    try:
        await until(conn, "session.created")
        await conn.send_raw(msgspec.json.encode({**event, "event_id": "evt_1"}).decode())
        (error,) = (await until(conn, "error"))[-1:]
        assert error.error.code == code
        assert error.error.event_id == "evt_1"
    finally:
        await conn.close()
    check_emitted(fake.fake.emitted)


async def test_truncate_past_the_audio_sent_is_refused(fake: FakeRealtimeRunner) -> None:
    conn = await connect(fake)
    try:
        await conn.send(session_update())
        await conn.send({"type": "response.create"})
        events = await until(conn, "response.done")
        deltas = [e for e in events if e.type == "response.output_audio.delta"]
        sent_ms = sum(len(base64.b64decode(e.delta)) for e in deltas) // 8
        await conn.send({"type": "conversation.item.truncate", "item_id": deltas[0].item_id,
                         "content_index": 0, "audio_end_ms": sent_ms + 1})
        (error,) = (await until(conn, "error"))[-1:]
        assert error.error.code == "invalid_value" and "shorter than" in error.error.message
        assert fake.fake.truncate_rejections == 1
        await conn.send({"type": "conversation.item.truncate", "item_id": deltas[0].item_id,
                         "content_index": 0, "audio_end_ms": sent_ms})
        (done,) = (await until(conn, "conversation.item.truncated"))[-1:]
        assert done.audio_end_ms == sent_ms
    finally:
        await conn.close()


async def test_one_response_at_a_time(fake: FakeRealtimeRunner) -> None:
    conn = await connect(fake)
    try:
        await conn.send(session_update())
        await conn.send({"type": "response.create"})
        await conn.send({"type": "response.create"})
        events = await until(conn, "error")
        assert events[-1].error.code == "conversation_already_has_active_response"
        await conn.send({"type": "response.cancel"})
        done = (await until(conn, "response.done"))[-1]
        assert done.response.status == "cancelled"
    finally:
        await conn.close()


async def test_handshake_needs_a_key_and_a_model(fake: FakeRealtimeRunner) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{fake.http_url}/v1/realtime?model={MODEL}")
        assert info.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{fake.http_url}/v1/realtime",
                                  headers={"Authorization": "Bearer sk-x"})
        assert info.value.status == 400


async def test_debug_endpoints(fake: FakeRealtimeRunner, tmp_path: Path) -> None:
    conn = await connect(fake)
    try:
        await conn.send(session_update())
        await append(conn, speech_ulaw("hello"))
        await until(conn, "session.updated")
    finally:
        await conn.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.http_url}/debug/received") as resp:
            events = msgspec.json.decode(await resp.read())
        assert [e["type"] for e in events] == ["session.update", "input_audio_buffer.append"]
        assert events[1]["audio_bytes"] == len(frames(speech_ulaw("hello"), 160)) * 160
        async with http.get(f"{fake.http_url}/debug/received",
                            params={"type": "session.update"}) as resp:
            assert len(msgspec.json.decode(await resp.read())) == 1
        async with http.get(f"{fake.http_url}/debug/emitted",
                            params={"type": "session.created"}) as resp:
            check_emitted(msgspec.json.decode(await resp.read()))
        dump = tmp_path / "received.json"
        async with http.post(f"{fake.http_url}/debug/dump", params={"path": str(dump)}) as resp:
            assert resp.status == 200
        assert msgspec.json.decode(dump.read_bytes()) == events
        async with http.post(f"{fake.http_url}/debug/reset") as resp:
            assert resp.status == 200
        assert list(fake.fake.received) == []


def test_scripts_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        'greeting = "Hi!"\nspeed = 0\n'
        '[[turns]]\ntranscript = "Book it."\nreply = "Done."\n'
        '[[turns.tool_calls]]\nname = "book"\narguments = {day = "mon"}\n'
        '[turns.fault]\nkind = "slow_first_delta"\ndelay_ms = 300\n'
    )
    script = load_script(toml)
    assert script.turns[0].tool_calls[0].arguments == {"day": "mon"}
    assert script.turns[0].fault == Fault("slow_first_delta", delay_ms=300)
    js = tmp_path / "s.json"
    js.write_bytes(msgspec.json.encode(script))
    assert load_script(js) == script
    bad = tmp_path / "bad.json"
    bad.write_text('{"turns": [{"reply": "x", "unknown": 1}]}')
    with pytest.raises(msgspec.ValidationError):
        load_script(bad)
    assert build_parser().parse_args(["--port", "9", "--script", str(js)]).port == 9


async def test_slow_first_delta(tmp_path: Path) -> None:
    runner = await serve_fake_realtime(0, Script(
        greeting_fault=Fault("slow_first_delta", delay_ms=400), speed=0))
    try:
        conn = await connect(runner)
        await conn.send(session_update())
        await conn.send({"type": "response.create"})
        loop = asyncio.get_running_loop()
        created_at = None
        async with asyncio.timeout(10):
            while True:
                event = await conn.recv()
                if event.type == "response.created":
                    created_at = loop.time()
                if event.type == "response.output_audio.delta":
                    first_delta_at = loop.time()
                    break
        assert created_at is not None and first_delta_at - created_at >= 0.35
        await conn.close()
    finally:
        await runner.cleanup()


async def test_runs_as_a_program_and_dumps_at_exit(tmp_path: Path, unused_tcp_port: int) -> None:
    dump = tmp_path / "dump.json"
    script = tmp_path / "script.json"
    script.write_bytes(msgspec.json.encode(Script(greeting="Hi from the program.", speed=0)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.dev.fake_realtime", "--port", str(unused_tcp_port),
        "--script", str(script), "--dump", str(dump),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO, env={**os.environ, "PYTHONPATH": "."},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
        assert f":{unused_tcp_port}/v1" in line.decode()
        client = AsyncOpenAI(api_key="sk-test",
                             websocket_base_url=f"ws://127.0.0.1:{unused_tcp_port}/v1")
        conn = await client.realtime.connect(model=MODEL).enter()
        await conn.send(session_update())
        await conn.send({"type": "response.create"})
        events = await until(conn, "response.done")
        assert any(e.type == "response.output_audio_transcript.done" and
                   e.transcript == "Hi from the program." for e in events)
        await conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    assert [e["type"] for e in msgspec.json.decode(dump.read_bytes())] == [
        "session.update", "response.create"]
