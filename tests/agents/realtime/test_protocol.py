"""The sans-I/O Realtime session core: server events in, client events out, no sockets."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.brain import CallContext
from agents.realtime.protocol import RealtimeConversation, SessionConfig
from agents.settings import OpenAISettings
from agents.tools import BUILTIN_TOOLS
from ops.dev.fake_realtime import ClientError, check_client_event
from tests.agents.realtime.conftest import RecordingOutput
from tests.audio import frames, speech_ulaw
from tests.fakes.clock import ManualClock

FRAME = 160


def make(turn_detection: str = "ours",
         **config: Any) -> tuple[RealtimeConversation, RecordingOutput, ManualClock]:
    out = RecordingOutput()
    clock = ManualClock(100.0)
    cfg = SessionConfig(
        instructions="Be brief.",
        turn_detection=turn_detection,  # type: ignore[arg-type]
        tools=tuple(t.definition() for t in BUILTIN_TOOLS),
        **config,
    )
    session = RealtimeConversation(cfg, out, clock=clock, call_sid="CAtest")
    return session, out, clock


def sent(session: RealtimeConversation) -> list[dict[str, Any]]:
    """Drain the outbox; every event must be one the GA service accepts."""
    events = [msgspec.json.decode(m) for m in session.data_to_send()]
    for event in events:
        check_client_event(event)
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def server(session: RealtimeConversation, **event: Any) -> None:
    event.setdefault("event_id", "event_x")
    session.receive(msgspec.json.encode(event))


def created(session: RealtimeConversation, response_id: str) -> None:
    server(session, type="response.created",
           response={"id": response_id, "object": "realtime.response", "status": "in_progress"})


def delta(session: RealtimeConversation, response_id: str, item_id: str, audio: bytes) -> None:
    server(session, type="response.output_audio.delta", response_id=response_id, item_id=item_id,
           output_index=0, content_index=0, delta=base64.b64encode(audio).decode())


def done(session: RealtimeConversation, response_id: str, status: str = "completed",
         usage: dict[str, Any] | None = None) -> None:
    server(session, type="response.done",
           response={"id": response_id, "status": status, "output": [], "usage": usage})


def opened(**kwargs: Any) -> tuple[RealtimeConversation, RecordingOutput, ManualClock]:
    session, out, clock = make(**kwargs)
    session.connection_made()
    sent(session)
    return session, out, clock


def speak(session: RealtimeConversation, ms: int = 600) -> None:
    audio = speech_ulaw("I would like to book a table")[: ms * 8]
    for frame in frames(audio, FRAME):
        session.push_audio(frame)


def test_connect_sends_ga_session_update_then_greeting() -> None:
    session, _, _ = make()
    session.connection_made()
    events = sent(session)
    assert types(events) == ["session.update", "response.create"]
    s = events[0]["session"]
    assert s["type"] == "realtime"
    assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert s["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert s["audio"]["input"]["turn_detection"] is None
    assert s["audio"]["input"]["transcription"]["model"]
    assert {t["name"] for t in s["tools"]} == {"end_call", "transfer_call", "send_dtmf",
                                          "capture_caller_name"}
    assert "temperature" not in s


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad"])
def test_server_turn_detection_modes(mode: str) -> None:
    session, _, _ = make(turn_detection=mode)
    session.connection_made()
    td = sent(session)[0]["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == mode and td["create_response"] and td["interrupt_response"]


def test_greeting_instructions_from_config_and_call_context() -> None:
    settings = OpenAISettings(instructions="You are Ava.", greeting="Hi, Acme dental!")
    context = CallContext(call_sid="CA1", caller_name="Maria", direction="outbound")
    config = SessionConfig.for_call(settings, context)
    assert "Maria" in config.instructions and "outbound" in config.instructions
    session = RealtimeConversation(config, RecordingOutput())
    session.connection_made()
    greeting = sent(session)[1]
    assert "Hi, Acme dental!" in greeting["response"]["instructions"]


def test_caller_audio_passes_through_as_ulaw_and_is_coalesced() -> None:
    session, _, _ = opened()
    audio = speech_ulaw("hello there")[: 3 * FRAME]
    session.push_audio(audio[:FRAME])
    (one,) = sent(session)
    assert base64.b64decode(one["audio"]) == audio[:FRAME]
    # Frames queued while the writer is busy go out as one append.
    session.push_audio(audio[FRAME : 2 * FRAME])
    session.push_audio(audio[2 * FRAME :])
    (two,) = sent(session)
    assert base64.b64decode(two["audio"]) == audio[FRAME:]


def test_queued_audio_is_bounded() -> None:
    session, _out, _ = opened(max_queued_audio_ms=200)
    for _ in range(50):  # 1 s on a socket that does not drain
        session.push_audio(b"\x7f" * FRAME)
    events = sent(session)
    assert sum(len(base64.b64decode(e["audio"])) for e in events) <= 200 * 8
    assert session.counts["caller_audio_dropped"] >= 1


def test_commit_answers_the_turn_and_audio_reaches_the_call() -> None:
    session, out, clock = opened()
    created(session, "resp_greet")
    done(session, "resp_greet")
    speak(session)
    sent(session)
    clock.now += 1
    session.commit()
    assert types(sent(session)) == ["input_audio_buffer.commit", "response.create"]
    created(session, "resp_1")
    first_audio: list[tuple[str, float]] = []
    session.on_first_audio = lambda item, at: first_audio.append((item, at))
    clock.now += 0.4
    delta(session, "resp_1", "item_a", b"\x01" * 800)
    delta(session, "resp_1", "item_a", b"\x02" * 800)
    server(session, type="response.output_audio.done", response_id="resp_1", item_id="item_a",
           output_index=0, content_index=0)
    server(session, type="response.output_audio_transcript.done", response_id="resp_1",
           item_id="item_a", output_index=0, content_index=0, transcript="Sure, for when?")
    done(session, "resp_1", usage={"input_tokens": 10, "output_tokens": 20, "total_tokens": 30,
                                   "output_token_details": {"audio_tokens": 15,
                                                            "text_tokens": 5}})
    assert bytes(out.audio["item_a"]) == b"\x01" * 800 + b"\x02" * 800
    assert out.audio_done == ["item_a"]
    assert out.said("agent") == ["Sure, for when?"]
    assert first_audio == [("item_a", clock.now)]
    assert session.usage.output_tokens == 20 and session.usage.output_audio_tokens == 15
    assert session.usage.responses == 2


def test_too_short_commit_is_not_sent() -> None:
    session, _, _ = opened()
    session.push_audio(b"\xff" * FRAME * 2)  # 40 ms
    sent(session)
    session.commit()
    assert sent(session) == []
    assert session.counts["commit_too_short"] == 1


def test_second_response_waits_for_the_first() -> None:
    session, _, _ = opened()  # greeting requested, not yet done
    speak(session)
    sent(session)
    session.commit()
    assert types(sent(session)) == ["input_audio_buffer.commit"]
    created(session, "resp_greet")
    assert sent(session) == []
    done(session, "resp_greet")
    assert types(sent(session)) == ["response.create"]


def test_barge_in_cancels_and_truncates_to_what_was_heard() -> None:
    session, out, _ = opened()
    created(session, "resp_1")
    delta(session, "resp_1", "item_a", b"\x01" * 8000)  # 1000 ms received
    session.cancel()
    session.truncate("item_a", 640)
    events = sent(session)
    assert types(events) == ["response.cancel", "conversation.item.truncate"]
    assert events[1] == {"type": "conversation.item.truncate", "item_id": "item_a",
                         "audio_end_ms": 640, "content_index": 0}
    # Late deltas of the cancelled response are counted, not played.
    delta(session, "resp_1", "item_a", b"\x03" * 800)
    assert len(out.audio["item_a"]) == 8000
    assert session.counts["delta_after_cancel"] == 1
    done(session, "resp_1", status="cancelled")
    assert out.audio_done == []  # the call stopped playout itself


def test_truncate_is_clamped_to_received_audio() -> None:
    session, _, _ = opened()
    created(session, "resp_1")
    delta(session, "resp_1", "item_a", b"\x01" * 2400)  # 300 ms
    session.cancel()
    session.truncate("item_a", 5_000)
    events = sent(session)
    assert events[-1]["audio_end_ms"] == 300
    assert session.counts["truncate_clamped"] == 1


def test_truncate_counts_deltas_received_after_cancel() -> None:
    session, _, _ = opened()
    created(session, "resp_1")
    delta(session, "resp_1", "item_a", b"\x01" * 800)
    session.cancel()
    delta(session, "resp_1", "item_a", b"\x01" * 800)  # in flight when we cancelled
    session.truncate("item_a", 180)
    assert sent(session)[-1]["audio_end_ms"] == 180


def test_nothing_heard_deletes_the_item() -> None:
    session, _, _ = opened()
    created(session, "resp_1")
    delta(session, "resp_1", "item_a", b"\x01" * 800)
    session.cancel()
    session.truncate("item_a", 0)
    events = sent(session)
    assert types(events) == ["response.cancel", "conversation.item.delete"]
    assert events[1]["item_id"] == "item_a"


def test_truncate_of_unknown_item_is_never_sent() -> None:
    session, _, _ = opened()
    session.truncate("item_never_seen", 500)
    assert sent(session) == []
    assert session.counts["truncate_unknown_item"] == 1


def test_cancel_with_nothing_in_flight_sends_nothing() -> None:
    session, _, _ = opened()
    created(session, "resp_g")
    done(session, "resp_g")
    session.cancel()
    assert sent(session) == []


def test_cancel_before_response_created_drops_its_audio() -> None:
    session, out, _ = opened()
    created(session, "resp_g")
    done(session, "resp_g")
    speak(session)
    session.commit()
    session.cancel()
    assert types(sent(session))[-1] == "response.cancel"
    created(session, "resp_1")
    delta(session, "resp_1", "item_b", b"\x01" * 800)
    assert "item_b" not in out.audio


def test_error_event_for_a_response_create_frees_the_slot() -> None:
    session, _, _ = opened()
    created(session, "resp_g")
    done(session, "resp_g")
    speak(session)
    session.commit()
    create = sent(session)[-1]
    server(session, type="error", error={"type": "invalid_request_error", "code": "x",
                                         "message": "nope", "event_id": create["event_id"]})
    assert not session.responding
    assert session.counts["error_event"] == 1


def test_server_vad_speech_started_reaches_the_call_and_stops_audio() -> None:
    session, out, _ = opened(turn_detection="server_vad")
    created(session, "resp_1")
    delta(session, "resp_1", "item_a", b"\x01" * 800)
    server(session, type="input_audio_buffer.speech_started", audio_start_ms=1200,
           item_id="item_u")
    delta(session, "resp_1", "item_a", b"\x02" * 800)
    assert out.speech_started == 1
    assert len(out.audio["item_a"]) == 800
    session.cancel()  # the call's barge-in: the service already interrupted
    assert types(sent(session)) == []


def test_transcripts_of_both_sides() -> None:
    session, out, _ = opened()
    server(session, type="input_audio_buffer.committed", item_id="item_u",
           previous_item_id=None)
    server(session, type="conversation.item.input_audio_transcription.completed",
           item_id="item_u", content_index=0, transcript=" Book me in. ",
           usage={"type": "duration", "seconds": 1.2})
    assert out.transcripts == [("caller", "Book me in.", "item_u")]


@pytest.mark.parametrize(
    "message",
    [
        b"not json",
        b"[]",
        b'{"type": "brand.new.event", "x": 1}',
        b'{"no_type": true}',
        b'{"type": "response.output_audio.delta", "delta": "%%%", "item_id": "i",'
        b' "response_id": "r"}',
        b'{"type": "response.done"}',
        b'{"type": "error", "error": "just a string"}',
    ],
)
def test_bad_server_events_are_counted_not_raised(message: bytes) -> None:
    session, out, _ = opened()
    session.receive(message)
    assert sum(session.counts.values()) == 1
    assert out.audio == {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(["type", "response_id", "item_id", "delta", "response", "error",
                             "transcript", "arguments", "call_id", "name", "rate_limits"]),
            st.one_of(
                st.sampled_from(["response.output_audio.delta", "response.done", "error",
                                 "response.created", "rate_limits.updated",
                                 "response.function_call_arguments.done", "AAAA", "r", "i"]),
                st.integers(), st.none(), st.lists(st.integers(), max_size=3),
                st.dictionaries(st.sampled_from(["id", "status", "usage", "code"]),
                                st.one_of(st.text(max_size=5), st.integers(), st.none()),
                                max_size=3),
            ),
            max_size=6,
        ).map(msgspec.json.encode),
    )
)
def test_fuzzed_server_messages_never_raise(message: bytes) -> None:
    session, _, _ = opened()
    created(session, "r")
    session.receive(message)
    for event in sent(session):  # whatever it decided to send is still valid
        assert event["type"]


def test_tool_call_is_handed_out_and_result_answers_after_the_response() -> None:
    session, _, _ = opened()
    created(session, "resp_1")
    server(session, type="response.function_call_arguments.done", response_id="resp_1",
           item_id="item_f", output_index=0, call_id="call_1", name="send_dtmf",
           arguments='{"digits": "1"}')
    (call,) = session.take_tool_calls()
    assert (call.call_id, call.name) == ("call_1", "send_dtmf")
    session.tool_output("call_1", "Sent DTMF 1.")
    assert types(sent(session)) == ["conversation.item.create"]
    done(session, "resp_1")
    assert types(sent(session)) == ["response.create"]


def test_after_reply_actions_run_when_the_reply_is_done() -> None:
    session, out, _ = opened()
    created(session, "resp_1")
    server(session, type="response.function_call_arguments.done", response_id="resp_1",
           item_id="item_f", output_index=0, call_id="call_1", name="end_call", arguments="{}")
    done(session, "resp_1")
    session.after_reply(lambda: out.end_call("bye"))
    session.tool_output("call_1", "ok")
    assert types(sent(session)) == ["conversation.item.create", "response.create"]
    created(session, "resp_2")
    delta(session, "resp_2", "item_bye", b"\x01" * 800)
    assert out.ended == []
    done(session, "resp_2")
    assert out.ended == ["bye"]


def test_reconnect_restores_context_audio_and_the_owed_answer() -> None:
    session, _out, _ = opened()
    created(session, "resp_g")
    server(session, type="response.output_item.added", response_id="resp_g", output_index=0,
           item={"id": "item_g", "type": "message", "role": "assistant"})
    delta(session, "resp_g", "item_g", b"\x01" * 800)
    server(session, type="response.output_audio_transcript.done", response_id="resp_g",
           item_id="item_g", output_index=0, content_index=0, transcript="Hello, Acme.")
    done(session, "resp_g")
    speak(session)
    session.commit()
    server(session, type="input_audio_buffer.committed", item_id="item_u")
    server(session, type="conversation.item.input_audio_transcription.completed",
           item_id="item_u", content_index=0, transcript="Book a table.",
           usage={"type": "duration", "seconds": 1})
    created(session, "resp_1")  # the socket dies before any audio of the answer
    sent(session)
    session.connection_lost()
    session.push_audio(b"\x7f" * FRAME * 10)  # caller audio while reconnecting
    session.connection_made()
    events = sent(session)
    assert types(events) == [
        "session.update",
        "conversation.item.create",
        "conversation.item.create",
        "input_audio_buffer.append",
        "response.create",
    ]
    assert events[1]["item"]["role"] == "assistant"
    assert events[1]["item"]["content"][0] == {"type": "output_text", "text": "Hello, Acme."}
    assert events[2]["item"]["content"][0] == {"type": "input_text", "text": "Book a table."}
    assert base64.b64decode(events[3]["audio"]) == b"\x7f" * FRAME * 10
    assert session.connections == 2


def test_turn_finished_while_disconnected_is_committed_after_restore() -> None:
    session, _, _ = opened()
    created(session, "resp_g")
    done(session, "resp_g")
    session.connection_lost()
    speak(session, 800)
    session.commit()
    session.connection_made()
    assert types(sent(session)) == ["session.update", "input_audio_buffer.append",
                                    "input_audio_buffer.commit", "response.create"]


def test_truncated_agent_turn_is_restored_as_heard() -> None:
    session, _, _ = opened()
    created(session, "resp_1")
    server(session, type="response.output_item.added", response_id="resp_1", output_index=0,
           item={"id": "item_a", "type": "message", "role": "assistant"})
    delta(session, "resp_1", "item_a", b"\x01" * 8000)  # 1 s
    session.cancel()
    session.truncate("item_a", 500)
    server(session, type="response.output_audio_transcript.done", response_id="resp_1",
           item_id="item_a", output_index=0, content_index=0,
           transcript="We are open from nine to five every weekday")
    done(session, "resp_1", status="cancelled")
    session.connection_lost()
    session.connection_made()
    restored = sent(session)[1]["item"]["content"][0]["text"]
    assert restored.endswith("…")
    assert len(restored) < len("We are open from nine to five every weekday")


def test_close_stops_everything() -> None:
    session, _, _ = opened()
    session.close()
    session.push_audio(b"\x00" * FRAME)
    session.commit()
    assert session.data_to_send() == []


def test_client_events_are_checked_like_the_service() -> None:
    """The checker the core's output is held to refuses a beta-shaped session.update."""
    with pytest.raises(ClientError):
        check_client_event({"type": "session.update",
                            "session": {"modalities": ["audio"], "voice": "alloy",
                                        "input_audio_format": "g711_ulaw"}})


def test_commit_is_ignored_when_the_service_detects_turns() -> None:
    session, _, _ = opened(turn_detection="semantic_vad")
    speak(session)
    sent(session)
    session.commit()
    assert sent(session) == []
