"""Wire shapes of the OpenAI Realtime GA protocol, as msgspec structs.

The SDK parses every server event into pydantic models; at 10+ audio deltas a
second per call that is the most expensive thing a call does. These structs
decode only the fields the session core reads, and msgspec turns the base64
audio of `response.output_audio.delta` into bytes (and bytes into base64 for
`input_audio_buffer.append`) in C. Every other event type the SDK knows is
decoded into an empty struct, so the known-but-unused events cost no
exception; anything else is unknown and counted by the core.

Field names and tags follow `openai.types.realtime` (GA, not beta); the fake
server's test checks that what it emits parses with the SDK's own types.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

# --- server → client ---------------------------------------------------------


class ServerEvent(msgspec.Struct, tag_field="type", gc=False):
    """Base of decoded server events (the tag is the event `type`)."""


class ErrorDetail(msgspec.Struct, gc=False):
    message: str = ""
    type: str = ""
    code: str | None = None
    event_id: str | None = None
    param: str | None = None


class ErrorEvent(ServerEvent, tag="error"):
    error: ErrorDetail


class SessionCreated(ServerEvent, tag="session.created"):
    pass


class SessionUpdated(ServerEvent, tag="session.updated"):
    pass


class InputAudioBufferCommitted(ServerEvent, tag="input_audio_buffer.committed"):
    item_id: str
    previous_item_id: str | None = None


class InputAudioBufferSpeechStarted(ServerEvent, tag="input_audio_buffer.speech_started"):
    item_id: str = ""
    audio_start_ms: int = 0


class InputAudioBufferSpeechStopped(ServerEvent, tag="input_audio_buffer.speech_stopped"):
    item_id: str = ""
    audio_end_ms: int = 0


class InputTranscriptionCompleted(
    ServerEvent, tag="conversation.item.input_audio_transcription.completed"
):
    item_id: str
    transcript: str


class InputTranscriptionFailed(
    ServerEvent, tag="conversation.item.input_audio_transcription.failed"
):
    item_id: str


class ResponseRef(msgspec.Struct, gc=False):
    id: str | None = None


class ResponseCreated(ServerEvent, tag="response.created"):
    response: ResponseRef


class TokenDetails(msgspec.Struct, gc=False):
    audio_tokens: int | None = None
    text_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None


class Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_token_details: TokenDetails | None = None
    output_token_details: TokenDetails | None = None


class StatusError(msgspec.Struct, gc=False):
    code: str | None = None
    message: str | None = None
    type: str | None = None


class StatusDetails(msgspec.Struct, gc=False):
    type: str | None = None
    reason: str | None = None
    error: StatusError | None = None


class ResponseSummary(msgspec.Struct, gc=False):
    id: str | None = None
    status: str | None = None
    status_details: StatusDetails | None = None
    usage: Usage | None = None


class ResponseDone(ServerEvent, tag="response.done"):
    response: ResponseSummary


class OutputItem(msgspec.Struct, gc=False):
    type: str
    id: str | None = None
    role: str | None = None
    call_id: str | None = None
    name: str | None = None


class ResponseOutputItemAdded(ServerEvent, tag="response.output_item.added"):
    response_id: str
    item: OutputItem
    output_index: int = 0


class ResponseOutputAudioDelta(ServerEvent, tag="response.output_audio.delta"):
    response_id: str
    item_id: str
    # base64 on the wire; msgspec decodes it.
    delta: bytes
    content_index: int = 0


class ResponseOutputAudioDone(ServerEvent, tag="response.output_audio.done"):
    response_id: str
    item_id: str


class ResponseOutputAudioTranscriptDone(ServerEvent, tag="response.output_audio_transcript.done"):
    response_id: str
    item_id: str
    transcript: str


class ResponseFunctionCallArgumentsDone(
    ServerEvent, tag="response.function_call_arguments.done"
):
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


class RateLimit(msgspec.Struct, gc=False):
    name: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


class RateLimitsUpdated(ServerEvent, tag="rate_limits.updated"):
    rate_limits: list[RateLimit]


class ConversationItemTruncated(ServerEvent, tag="conversation.item.truncated"):
    item_id: str
    audio_end_ms: int


class ConversationItemDeleted(ServerEvent, tag="conversation.item.deleted"):
    item_id: str


_HANDLED: tuple[type[ServerEvent], ...] = (
    ErrorEvent,
    SessionCreated,
    SessionUpdated,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputTranscriptionCompleted,
    InputTranscriptionFailed,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDone,
    ResponseFunctionCallArgumentsDone,
    RateLimitsUpdated,
    ConversationItemTruncated,
    ConversationItemDeleted,
)

# Server event types of the GA protocol (openai.types.realtime.RealtimeServerEvent)
# that the core does not act on.
IGNORED_TYPES: frozenset[str] = frozenset(
    {
        "conversation.created",
        "conversation.item.created",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.cleared",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.timeout_triggered",
        "response.output_audio_transcript.delta",
        "response.content_part.added",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.output_item.done",
        "response.output_text.delta",
        "response.output_text.done",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)


class Ignored(ServerEvent):
    """A known server event the core does not act on (one subclass per type)."""


_IGNORED_STRUCTS: tuple[type[ServerEvent], ...] = tuple(
    msgspec.defstruct(
        "Ignored_" + name.replace(".", "_"), [], bases=(Ignored,), tag=name, gc=False
    )
    for name in sorted(IGNORED_TYPES)
)

KNOWN_TYPES: frozenset[str] = IGNORED_TYPES | {cls.__struct_config__.tag for cls in _HANDLED}

server_event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    Union[_HANDLED + _IGNORED_STRUCTS]  # type: ignore[valid-type]  # noqa: UP007
)


class Envelope(msgspec.Struct, gc=False):
    """Just the `type` of an event that failed the typed decode (for counting)."""

    type: str = ""


envelope_decoder = msgspec.json.Decoder(Envelope)


# --- client → server ---------------------------------------------------------


class ClientEvent(msgspec.Struct, tag_field="type", omit_defaults=True, gc=False):
    """Base of encoded client events (the tag is the event `type`)."""


class InputAudioBufferAppend(ClientEvent, tag="input_audio_buffer.append"):
    # bytes are encoded as base64 by msgspec.
    audio: bytes


class InputAudioBufferCommit(ClientEvent, tag="input_audio_buffer.commit"):
    event_id: str | None = None


class InputAudioBufferClear(ClientEvent, tag="input_audio_buffer.clear"):
    event_id: str | None = None


class ResponseCreate(ClientEvent, tag="response.create"):
    event_id: str | None = None
    response: dict[str, Any] | None = None


class ResponseCancel(ClientEvent, tag="response.cancel"):
    event_id: str | None = None


class ConversationItemTruncate(ClientEvent, tag="conversation.item.truncate"):
    item_id: str
    audio_end_ms: int
    content_index: int
    event_id: str | None = None


class ConversationItemDelete(ClientEvent, tag="conversation.item.delete"):
    item_id: str
    event_id: str | None = None


class ConversationItemCreate(ClientEvent, tag="conversation.item.create"):
    item: dict[str, Any]
    event_id: str | None = None
    previous_item_id: str | None = None


class SessionUpdate(ClientEvent, tag="session.update"):
    session: dict[str, Any]
    event_id: str | None = None


encoder = msgspec.json.Encoder()


def encode(event: ClientEvent) -> str:
    """A client event as the text frame the service expects."""
    return encoder.encode(event).decode()


def user_text_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def system_text_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "system",
            "content": [{"type": "input_text", "text": text}]}


def assistant_text_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_call_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


TurnDetection = Literal["ours", "server_vad", "semantic_vad"]
