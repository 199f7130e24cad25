"""RealtimeBrain through the real `openai` SDK against the fake Realtime service."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from agents.brain import CallContext
from agents.realtime.brain import RealtimeBrain, RealtimeUnavailable, _fast_send
from agents.realtime.breaker import BreakerState, CircuitBreaker
from agents.settings import OpenAISettings
from agents.tools import ToolRegistry, build_registry, tool
from ops.dev.fake_realtime import Fault, Script, ScriptedToolCall, Turn
from tests.agents.realtime.conftest import (
    CALL_SID,
    RecordingOutput,
    eventually,
    say,
    settings_for,
)
from tests.audio import frames, speech_ulaw

GREETING = "Hello, thanks for calling Acme. How can I help?"


def received(runner: Any, kind: str, connection: int | None = None) -> list[dict[str, Any]]:
    return [e for e in runner.fake.received_of(kind)
            if connection is None or e["connection"] == connection]


def script(*turns: Turn, **kw: Any) -> Script:
    kw.setdefault("speed", 0)
    return Script(greeting=GREETING, turns=turns, **kw)


async def test_greeting_arrives_as_audio(fake_factory, brains) -> None:
    runner = await fake_factory(script())
    _brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.said("agent"))
    assert out.said("agent") == [GREETING]
    (item_id,) = out.audio
    assert len(out.audio[item_id]) > 8_000  # more than a second of μ-law
    assert out.audio_done == [item_id]
    (update,) = received(runner, "session.update")
    assert update["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert runner.fake.refused == []


async def test_commit_gets_the_scripted_reply_and_transcripts(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(transcript="Book a table for two.",
                                            reply="Sure, for what time?")))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: len(out.said("agent")) == 2)
    assert out.said("caller") == ["Book a table for two."]
    assert out.said("agent")[1] == "Sure, for what time?"
    append = received(runner, "input_audio_buffer.append")
    assert sum(a["audio_bytes"] for a in append) == len(frames(speech_ulaw(
        "I would like to book a table"), 160)) * 160
    assert [e["type"] for e in runner.fake.received if e["type"] != "input_audio_buffer.append"
            ] == ["session.update", "response.create", "input_audio_buffer.commit",
                  "response.create"]
    await eventually(lambda: brain.usage.responses == 2)
    assert brain.usage.output_audio_tokens > 0 and brain.usage.input_tokens > 0
    assert brain.counts == {}


async def test_barge_in_cancels_then_truncates_to_what_was_heard(fake_factory, brains) -> None:
    long_reply = "We are open from nine in the morning until six in the evening, every weekday."
    runner = await fake_factory(script(Turn(reply=long_reply), speed=4, deltas_after_cancel=1))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done, 20)
    await say(brain)
    await eventually(lambda: len(out.audio) == 2 and len(list(out.audio.values())[1]) >= 4_000)
    item_id = list(out.audio)[1]
    brain.cancel()
    brain.truncate(item_id, 350)  # the caller heard 350 ms, per Twilio marks
    await eventually(lambda: runner.fake.emitted_of("conversation.item.truncated"))
    (cancel,) = received(runner, "response.cancel")
    (truncate,) = received(runner, "conversation.item.truncate")
    assert runner.fake.received.index(cancel) < runner.fake.received.index(truncate)
    assert truncate["item_id"] == item_id and truncate["audio_end_ms"] == 350
    assert runner.fake.refused == []
    await eventually(lambda: brain.counts.get("delta_after_cancel"))
    assert len(out.audio[item_id]) < len(speech_ulaw(long_reply))


async def test_truncate_past_received_audio_is_clamped(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(reply="One moment while I check that for you please."),
                                       speed=4))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done, 20)
    await say(brain)
    await eventually(lambda: len(out.audio) == 2 and len(list(out.audio.values())[1]) >= 1_600)
    item_id = list(out.audio)[1]
    brain.cancel()
    brain.truncate(item_id, 60_000)  # far more than the brain ever produced
    await eventually(lambda: received(runner, "conversation.item.truncate"))
    await eventually(lambda: runner.fake.emitted_of("response.done") and
                     len(runner.fake.emitted_of("response.done")) == 2)
    (truncate,) = received(runner, "conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] < 60_000
    assert runner.fake.truncate_rejections == 0 and runner.fake.refused == []
    assert brain.counts["truncate_clamped"] == 1


async def test_nothing_heard_deletes_the_item(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(reply="Let me see what I can do for you today."),
                                       speed=4))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done, 20)
    await say(brain)
    await eventually(lambda: len(out.audio) == 2)
    item_id = list(out.audio)[1]
    brain.cancel()
    brain.truncate(item_id, 0)
    await eventually(lambda: runner.fake.emitted_of("conversation.item.deleted"))
    assert received(runner, "conversation.item.delete")[0]["item_id"] == item_id
    assert received(runner, "conversation.item.truncate") == []
    assert runner.fake.refused == []


@tool(timeout_s=2)
async def opening_hours(day: str) -> dict[str, str]:
    """Opening hours of the restaurant on a day."""
    return {"day": day, "hours": "9 to 5"}


async def test_tool_call_round_trip(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(
        transcript="When are you open on Monday?",
        tool_calls=(ScriptedToolCall("opening_hours", {"day": "monday"}),),
        after_tool_reply="On Monday we are open from nine to five.",
    )))
    registry = build_registry(transfer=False)
    registry.add(opening_hours)
    brain, out = await brains(settings_for(runner), registry=registry)
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: "On Monday we are open from nine to five." in out.said("agent"))
    (update,) = received(runner, "session.update")
    assert "opening_hours" in [t["name"] for t in update["session"]["tools"]]
    (item,) = [e["item"] for e in received(runner, "conversation.item.create")]
    assert item["type"] == "function_call_output"
    assert msgspec.json.decode(item["output"]) == {"day": "monday", "hours": "9 to 5"}
    kinds = [e["type"] for e in runner.fake.received]
    assert kinds[kinds.index("conversation.item.create") + 1] == "response.create"


async def test_invalid_tool_arguments_answered_as_tool_error(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(
        tool_calls=(ScriptedToolCall("send_dtmf", "{digits: 12"),),
        after_tool_reply="Sorry, let me try that again.",
    )))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: "Sorry, let me try that again." in out.said("agent"))
    (item,) = [e["item"] for e in received(runner, "conversation.item.create")]
    assert "not valid JSON" in msgspec.json.decode(item["output"])["error"]
    assert out.dtmf == []


async def test_hanging_tool_times_out(fake_factory, brains) -> None:
    registry = ToolRegistry()

    @registry.register
    async def slow_lookup() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    runner = await fake_factory(script(Turn(tool_calls=(ScriptedToolCall("slow_lookup"),),
                                            after_tool_reply="The system is slow today.")))
    brain, out = await brains(settings_for(runner, tool_timeout_s=0.2), registry=registry)
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: "The system is slow today." in out.said("agent"))
    (item,) = [e["item"] for e in received(runner, "conversation.item.create")]
    assert "did not answer" in msgspec.json.decode(item["output"])["error"]


async def test_end_call_after_the_goodbye(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(
        transcript="That's all, bye.",
        tool_calls=(ScriptedToolCall("end_call", {"reason": "caller said bye"}),),
        after_tool_reply="Goodbye, have a nice day!",
    )))
    order: list[str] = []

    class Output(RecordingOutput):
        def agent_audio_done(self, item_id: str) -> None:
            super().agent_audio_done(item_id)
            order.append("audio_done")

        def end_call(self, reason: str) -> None:
            super().end_call(reason)
            order.append("end_call")

    brain, out = await brains(settings_for(runner), Output())
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: out.ended)
    assert out.ended == ["caller said bye"]
    assert out.said("agent")[-1] == "Goodbye, have a nice day!"
    assert order[-2:] == ["audio_done", "end_call"]  # the goodbye was produced first


async def test_transfer_call_to_the_configured_number(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(
        tool_calls=(ScriptedToolCall("transfer_call", {"reason": "wants a human"}),),
        after_tool_reply="Connecting you now.",
    )))
    brain, out = await brains(settings_for(runner, transfer_number="+14155550123"))
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: out.transfers)
    assert out.transfers == ["+14155550123"]


async def test_dtmf_from_the_caller_reaches_the_model(fake_factory, brains) -> None:
    runner = await fake_factory(script())
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done)
    brain.dtmf("5")
    await eventually(lambda: received(runner, "conversation.item.create"))
    (item,) = [e["item"] for e in received(runner, "conversation.item.create")]
    assert "pressed 5" in item["content"][0]["text"]


async def test_disconnect_reconnects_and_restores_context(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(
        transcript="Do you have a table tonight?",
        reply="Yes, we have a table at eight.",
        fault=Fault("disconnect", close_code=0),
    )))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: "Yes, we have a table at eight." in out.said("agent"))
    assert runner.fake.faults_fired == ["turn:0"]
    assert out.failures == []
    # The second connection got the instructions and the conversation so far.
    (update,) = received(runner, "session.update", connection=2)
    assert update["session"]["instructions"]
    items = [e["item"] for e in received(runner, "conversation.item.create", connection=2)]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("assistant", GREETING),
        ("user", "Do you have a table tonight?"),
    ]
    assert received(runner, "response.create", connection=2)
    assert runner.fake.refused == []


async def test_restore_failure_hands_the_call_to_the_keyless_brain(fake_factory, brains) -> None:
    runner = await fake_factory(script())
    breaker = CircuitBreaker(failures=5)
    brain, out = await brains(settings_for(runner, restore_within_s=0.5), breaker=breaker)
    await eventually(lambda: out.audio_done)
    await runner.cleanup()  # the service goes away for good
    await eventually(lambda: out.failures, 5)
    assert "could not be restored" in out.failures[0]
    brain.push_audio(b"\xff" * 160)  # the call may still push until it switches; harmless


async def test_unreachable_service_raises_and_opens_the_breaker(unused_tcp_port) -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=60)
    settings = OpenAISettings(base_url=f"ws://127.0.0.1:{unused_tcp_port}/v1",
                              connect_timeout_s=1)
    for _ in range(2):
        brain = RealtimeBrain(settings, breaker=breaker)
        with pytest.raises(RealtimeUnavailable):
            await brain.start(CallContext(call_sid=CALL_SID), RecordingOutput())
        await brain.close()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


async def test_connect_timeout_is_bounded(unused_tcp_port) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # accepts TCP, never answers the WebSocket handshake
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", unused_tcp_port)
    try:
        breaker = CircuitBreaker(failures=1)
        brain = RealtimeBrain(
            OpenAISettings(base_url=f"ws://127.0.0.1:{unused_tcp_port}/v1",
                           connect_timeout_s=0.3),
            breaker=breaker,
        )
        with pytest.raises(RealtimeUnavailable) as info:
            await brain.start(CallContext(call_sid=CALL_SID), RecordingOutput())
        assert isinstance(info.value.__cause__, TimeoutError)
        assert breaker.state is BreakerState.OPEN
        await brain.close()
    finally:
        server.close()


async def test_error_event_mid_response_is_survived(fake_factory, brains) -> None:
    runner = await fake_factory(script(
        Turn(reply="This answer will break halfway through.",
             fault=Fault("error", after_chunks=2)),
        Turn(reply="This one works."),
    ))
    brain, out = await brains(settings_for(runner))
    await eventually(lambda: out.audio_done)
    await say(brain)
    await eventually(lambda: brain.counts.get("response_failed"))
    assert brain.counts["error_event"] == 1
    await say(brain, "hello again")
    await eventually(lambda: "This one works." in out.said("agent"))
    assert out.failures == []


async def test_server_vad_mode(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(transcript="Hi there.", reply="Hello to you.")))
    brain, out = await brains(settings_for(runner, turn_detection="server_vad"))
    await eventually(lambda: out.audio_done)
    for frame in frames(speech_ulaw("hi there") + b"\xff" * 8_000, 160):
        brain.push_audio(frame)
        await asyncio.sleep(0)
    await eventually(lambda: "Hello to you." in out.said("agent"))
    assert out.speech_started == 1
    assert received(runner, "input_audio_buffer.commit") == []  # the service committed
    (update,) = received(runner, "session.update")
    assert update["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"


async def test_session_rotation_is_seamless(fake_factory, brains) -> None:
    runner = await fake_factory(script(Turn(transcript="Still there?", reply="Yes, I am here.")))
    brain, out = await brains(settings_for(runner), rotate_after_s=0.3)
    await eventually(lambda: out.audio_done)
    await eventually(lambda: received(runner, "session.update", connection=2), 5)
    await eventually(lambda: len(runner.fake.connections) == 1)
    await say(brain)
    await eventually(lambda: "Yes, I am here." in out.said("agent"))
    assert received(runner, "input_audio_buffer.commit", connection=2)
    items = [e["item"] for e in received(runner, "conversation.item.create", connection=2)]
    assert items[0]["content"][0]["text"] == GREETING
    assert out.failures == []


async def test_first_audio_hook_and_close_is_idempotent(fake_factory) -> None:
    runner = await fake_factory(script())
    brain = RealtimeBrain(settings_for(runner), breaker=CircuitBreaker())
    seen: list[tuple[str, float]] = []
    brain.on_first_audio = lambda item, at: seen.append((item, at))
    out = RecordingOutput()
    await brain.start(CallContext(call_sid=CALL_SID), out)
    await eventually(lambda: out.audio_done)
    assert seen and seen[0][0] == out.audio_done[0]
    assert brain.last_first_audio_at == seen[0][1]
    # Audio goes straight to the socket, not through the SDK's reconnect queue.
    assert _fast_send(brain._conn) == brain._conn._connection.send
    await brain.close()
    await brain.close()
    brain.push_audio(b"\xff" * 160)
    brain.commit()
    await eventually(lambda: not runner.fake.connections)
