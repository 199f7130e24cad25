"""A fake OpenAI Realtime service (GA protocol) for tests, demos and load tests.

`leadline dev fake-realtime --port P [--script FILE]` serves a WebSocket at
`/v1/realtime?model=...` that the official `openai` SDK connects to with
`websocket_base_url="ws://127.0.0.1:P/v1"` (or `LEADLINE_OPENAI_BASE_URL`).

It behaves like the service where leadline depends on it:
- session: `session.created` on connect; `session.update` is validated with
  the SDK's own client-event types and refused when it has fields the GA
  session does not (beta shapes such as `input_audio_format`, `modalities`,
  `temperature`, or a missing `session.type`);
- input: `input_audio_buffer.append/commit/clear` (commit needs ≥ 100 ms),
  input transcription reported from the script, `server_vad`/`semantic_vad`
  emulated with an energy detector (speech_started interrupts the response);
- responses: one at a time (`conversation_already_has_active_response`),
  reply text spoken with eSpeak NG and streamed as `response.output_audio.delta`
  chunks (~100 ms) faster than real time, transcripts, function calls,
  `response.done` with usage, `rate_limits.updated`;
- barge-in: `response.cancel` (error when nothing is active),
  `conversation.item.truncate` refused past the audio sent for the item (the
  service's error), `conversation.item.delete`;
- faults from the script: an `error` event mid-response, a slow first delta,
  a dropped socket.

Every event it emits has the GA shape (tests parse each one with
`openai.types.realtime.RealtimeServerEvent`), and everything it receives is
recorded for assertions: `fake.received`, `GET /debug/received`,
`POST /debug/dump?path=FILE`, or `--dump FILE` at exit.

The script (JSON or TOML) says, per caller turn, the transcript to report,
the reply to speak, optional tool calls and a fault; see `Script`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import logging
import math
import secrets
import signal
import time
import tomllib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from aiohttp import WSMsgType, web

from agents.tts import synthesize_ulaw_async
from media.codecs import ulaw
from media.resample import resample

log = logging.getLogger("leadline.dev.fake_realtime")

# --- the script -------------------------------------------------------------------


class Fault(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Something going wrong while answering one turn."""

    kind: Literal["error", "slow_first_delta", "disconnect"]
    # error/disconnect: after this many audio chunks of the reply were sent.
    after_chunks: int = 0
    # slow_first_delta: wait this long before the first audio chunk.
    delay_ms: int = 1_500
    # error: what the `error` event says.
    error_type: str = "server_error"
    code: str = "server_error"
    message: str = "The server had an error while processing your request."
    # disconnect: WebSocket close code; 0 drops the TCP connection without a close frame.
    close_code: int = 1011
    # Fire only the first time this turn is answered (a reconnect then succeeds).
    once: bool = True


class ScriptedToolCall(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    # A JSON string (sent verbatim, so it may be invalid on purpose) or an object.
    arguments: str | dict[str, Any] = "{}"


class Turn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One caller turn: what the caller said and how the model answers it."""

    transcript: str = ""
    reply: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    # Spoken in the response that follows the tool outputs.
    after_tool_reply: str = "Done."
    fault: Fault | None = None


class Script(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    greeting: str = "Hello, thanks for calling. How can I help you today?"
    greeting_fault: Fault | None = None
    turns: tuple[Turn, ...] = ()
    # Used when the caller speaks more turns than scripted.
    default_reply: str = "I see. Could you tell me a little more?"
    default_transcript: str = "(unscripted caller turn)"
    # Audio per delta, and how much faster than real time deltas are sent (0: no pacing).
    chunk_ms: int = 100
    speed: float = 10.0
    # Deltas still sent after a response.cancel (the real service's in-flight race).
    deltas_after_cancel: int = 0
    voice_rate: int = 175

    def __post_init__(self) -> None:
        if not 20 <= self.chunk_ms <= 1_000:
            raise ValueError("chunk_ms must be between 20 and 1000")
        if self.speed < 0:
            raise ValueError("speed must be >= 0")


def load_script(path: str | Path) -> Script:
    """A script from a .toml or .json file."""
    p = Path(path)
    data = p.read_bytes()
    if p.suffix.lower() == ".toml":
        return msgspec.convert(tomllib.loads(data.decode()), Script)
    return msgspec.json.decode(data, type=Script)


# --- protocol helpers ---------------------------------------------------------------

_json_encoder = msgspec.json.Encoder()
_BYTES_PER_MS = {"audio/pcmu": 8, "audio/pcma": 8, "audio/pcm": 48}
MIN_COMMIT_MS = 100
_client_event_models: dict[str, Any] = {}


def _client_events() -> dict[str, Any]:
    """`type` → the SDK's pydantic model of that client event (GA)."""
    if not _client_event_models:
        import typing

        from openai.types.realtime import RealtimeClientEvent

        (union, *_) = typing.get_args(RealtimeClientEvent)
        for model in typing.get_args(union):
            (tag,) = typing.get_args(model.model_fields["type"].annotation)
            _client_event_models[tag] = model
    return _client_event_models


def _extra_fields(value: Any, path: str) -> str | None:
    """Path of the first field the SDK model does not declare (the service rejects those)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        extra = value.model_extra or {}
        if extra:
            return f"{path}.{next(iter(extra))}" if path else next(iter(extra))
        for name in type(value).model_fields:
            found = _extra_fields(getattr(value, name), f"{path}.{name}" if path else name)
            if found:
                return found
    elif isinstance(value, list):
        for i, x in enumerate(value):
            found = _extra_fields(x, f"{path}[{i}]")
            if found:
                return found
    return None


def check_client_event(event: dict[str, Any]) -> None:
    """Refuse (ClientError) what the GA service refuses: wrong shape or undeclared fields."""
    from pydantic import ValidationError

    kind = event.get("type")
    model_type = _client_events().get(kind) if isinstance(kind, str) else None
    if model_type is None:
        raise ClientError(
            f"Invalid value: {kind!r}. Supported values are: "
            + ", ".join(f"'{k}'" for k in sorted(_client_events())) + ".",
            "invalid_value", "type",
        )
    try:
        model = model_type.model_validate(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise ClientError(
            f"Invalid '{loc}': {first.get('msg')}.", "invalid_value", loc or None
        ) from None
    extra = _extra_fields(model, "")
    if extra:
        raise ClientError(f"Unknown parameter: '{extra}'.", "unknown_parameter", extra)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class ClientError(Exception):
    """A client event the service would refuse: becomes an `error` event."""

    def __init__(
        self, message: str, code: str | None = None, param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type


@dataclass(slots=True)
class _Item:
    id: str
    type: str
    role: str | None = None
    # Audio the item holds (assistant: what was sent), in ms.
    audio_ms: int = 0
    has_audio: bool = False
    call_id: str | None = None
    # Index of the script turn this caller item is (None: not a caller turn).
    turn: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Response:
    id: str
    task: asyncio.Task[None] | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = "client_cancelled"
    output: list[dict[str, Any]] = field(default_factory=list)


class _Vad:
    """Energy turn detection standing in for the service's server_vad/semantic_vad."""

    def __init__(self, silence_ms: int, threshold_rms: int = 400) -> None:
        self.silence_ms = silence_ms
        self.threshold = threshold_rms
        self.speaking = False
        self.quiet_ms = 0
        self._partial = b""

    def feed(self, audio: bytes, fmt: str) -> list[tuple[str, int]]:
        """(edge, offset_ms within this chunk) for each speech start/stop."""
        if fmt == "audio/pcm":
            return []
        frame = 160  # 20 ms of 8 kHz
        data = self._partial + audio
        edges: list[tuple[str, int]] = []
        n = len(data) // frame
        for i in range(n):
            pcm = ulaw.decode(data[i * frame : (i + 1) * frame])
            loud = ulaw.rms(pcm) >= self.threshold
            if loud:
                self.quiet_ms = 0
                if not self.speaking:
                    self.speaking = True
                    edges.append(("start", i * 20))
            elif self.speaking:
                self.quiet_ms += 20
                if self.quiet_ms >= self.silence_ms:
                    self.speaking = False
                    edges.append(("stop", i * 20))
        self._partial = data[n * frame :]
        return edges


class _Connection:
    """One WebSocket session of the fake."""

    def __init__(self, fake: FakeRealtime, ws: web.WebSocketResponse, number: int, model: str):
        self.fake = fake
        self.ws = ws
        self.number = number
        self.model = model
        self.session_id = _new_id("sess")
        self.session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.session_id,
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "You are a helpful assistant.",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "prompt": None,
            "expires_at": int(time.time()) + 3600,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24_000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24_000},
                    "voice": "marin",
                    "speed": 1.0,
                },
            },
            "include": None,
        }
        self.items: dict[str, _Item] = {}
        self.buffer_bytes = 0
        self.buffer_total_ms = 0
        self.active: _Response | None = None
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.vad: _Vad | None = None
        self.pending_user_item: str | None = None
        self.transport: asyncio.BaseTransport | None = None
        self._close_code: int | None = None

    # formats
    @property
    def in_format(self) -> str:
        return self.session["audio"]["input"]["format"].get("type") or "audio/pcm"

    @property
    def out_format(self) -> str:
        return self.session["audio"]["output"]["format"].get("type") or "audio/pcm"

    def emit(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        event.setdefault("event_id", _new_id("event"))
        self.fake._record_emitted(self.number, event)
        self.outbox.put_nowait(_json_encoder.encode(event))

    def error(self, exc: ClientError, client_event_id: str | None) -> None:
        self.fake.errors_sent += 1
        self.emit(
            {
                "type": "error",
                "error": {
                    "type": exc.error_type,
                    "code": exc.code,
                    "message": exc.message,
                    "param": exc.param,
                    "event_id": client_event_id,
                },
            }
        )

    def drop(self, close_code: int) -> None:
        """Fault: end the socket (after what is already queued)."""
        self._close_code = close_code
        self.outbox.put_nowait(None)

    async def sender(self) -> None:
        while True:
            data = await self.outbox.get()
            if data is None:
                break
            try:
                await self.ws.send_str(data.decode())
            except (ConnectionError, RuntimeError):
                break
        self.closed = True
        code = self._close_code
        if code == 0:
            if self.transport is not None:
                self.transport.abort()  # type: ignore[attr-defined]
        elif code is not None:
            await self.ws.close(code=code, message=b"fault injected")

    # --- client events ----------------------------------------------------------------

    async def handle(self, raw: str) -> None:
        try:
            event = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            self.fake._record_received(self.number, {"type": "<invalid json>", "raw": raw[:200]})
            self.error(ClientError("The message is not valid JSON.", "invalid_json"), None)
            return
        if not isinstance(event, dict):
            self.error(ClientError("Expected a JSON object.", "invalid_json"), None)
            return
        kind = event.get("type")
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        if kind == "input_audio_buffer.append":
            self._append(event, event_id)
            return
        self.fake._record_received(self.number, event)
        try:
            check_client_event(event)
            handler = getattr(self, "_on_" + str(kind).replace(".", "_"), None)
            if handler is None:
                raise ClientError(f"The fake does not implement {kind!r}.", "unsupported_event")
            await handler(event, event_id)
        except ClientError as exc:
            self.fake.refused.append({"connection": self.number, "event": event,
                                      "code": exc.code, "message": exc.message})
            self.error(exc, event_id)

    def _append(self, event: dict[str, Any], event_id: str | None) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            self.fake._record_received(self.number, event)
            self.error(ClientError("Missing required parameter: 'audio'.",
                                   "missing_required_parameter", "audio"), event_id)
            return
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            self.fake._record_received(self.number, {"type": "input_audio_buffer.append",
                                                     "invalid_base64": True})
            self.error(ClientError("Invalid 'audio': not base64.", "invalid_value", "audio"),
                       event_id)
            return
        self.fake._record_append(self.number, len(data))
        self.buffer_bytes += len(data)
        bpm = _BYTES_PER_MS.get(self.in_format, 48)
        start_ms = self.buffer_total_ms
        self.buffer_total_ms += len(data) // bpm
        if self.vad is not None:
            for edge, offset in self.vad.feed(data, self.in_format):
                if edge == "start":
                    self._speech_started(start_ms + offset)
                else:
                    self._speech_stopped(start_ms + offset)

    async def _on_session_update(self, event: dict[str, Any], event_id: str | None) -> None:
        session = event["session"]
        if session.get("type") != "realtime":
            raise ClientError("Only realtime sessions are supported here.", "invalid_value",
                              "session.type")
        for key in ("instructions", "output_modalities", "tools", "tool_choice",
                    "max_output_tokens", "tracing", "prompt", "include", "truncation"):
            if key in session:
                self.session[key] = session[key]
        if "model" in session and session["model"] != self.model:
            raise ClientError("Cannot update a session's model.", "invalid_value",
                              "session.model")
        audio = session.get("audio") or {}
        for side in ("input", "output"):
            for key, value in (audio.get(side) or {}).items():
                if side == "output" and key == "voice" and self.fake.audio_sent_by(self):
                    raise ClientError("Cannot update a session's voice after audio was output.",
                                      "cannot_update_voice", "session.audio.output.voice")
                self.session["audio"][side][key] = value
        td = self.session["audio"]["input"].get("turn_detection")
        self.vad = _Vad(int(td.get("silence_duration_ms") or 500)) if td else None
        self.emit({"type": "session.updated", "session": self.session})

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any],
                                            event_id: str | None) -> None:
        self._commit(event_id)

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any],
                                           event_id: str | None) -> None:
        self.buffer_bytes = 0
        self.emit({"type": "input_audio_buffer.cleared"})

    async def _on_response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        if self.active is not None:
            raise ClientError(
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
                "conversation_already_has_active_response",
            )
        self._start_response()

    async def _on_response_cancel(self, event: dict[str, Any], event_id: str | None) -> None:
        if self.active is None:
            raise ClientError("Cancellation failed: no active response found",
                              "response_cancel_not_active")
        self.active.reason = "client_cancelled"
        self.active.cancelled.set()

    async def _on_conversation_item_truncate(self, event: dict[str, Any],
                                             event_id: str | None) -> None:
        item = self.items.get(event["item_id"])
        if item is None:
            raise ClientError(f"Item with item_id not found: {event['item_id']}",
                              "item_not_found", "item_id")
        if item.role != "assistant" or not item.has_audio:
            raise ClientError("Only assistant messages with audio can be truncated.",
                              "invalid_value", "item_id")
        if event["content_index"] != 0:
            raise ClientError("Invalid content_index.", "invalid_value", "content_index")
        end = event["audio_end_ms"]
        if end < 0 or end > item.audio_ms:
            self.fake.truncate_rejections += 1
            raise ClientError(
                f"Audio content of {item.audio_ms}ms is already shorter than {end}ms",
                "invalid_value", "audio_end_ms",
            )
        item.audio_ms = end
        self.emit({"type": "conversation.item.truncated", "item_id": item.id,
                   "content_index": 0, "audio_end_ms": end})

    async def _on_conversation_item_delete(self, event: dict[str, Any],
                                           event_id: str | None) -> None:
        if self.items.pop(event["item_id"], None) is None:
            raise ClientError(f"Item with item_id not found: {event['item_id']}",
                              "item_not_found", "item_id")
        self.emit({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    async def _on_conversation_item_create(self, event: dict[str, Any],
                                           event_id: str | None) -> None:
        spec = dict(event["item"])
        item_id = spec.get("id") or _new_id("item")
        if item_id in self.items:
            raise ClientError(f"Item with id {item_id} already exists.", "duplicate_item_id",
                              "item.id")
        kind = spec["type"]
        if kind == "function_call_output" and not any(
            i.type == "function_call" and i.call_id == spec["call_id"]
            for i in self.items.values()
        ):
            raise ClientError(f"Tool call ID '{spec['call_id']}' not found in conversation.",
                              "invalid_tool_call_id", "item.call_id")
        spec.update(id=item_id, object="realtime.item", status="completed")
        item = _Item(item_id, kind, role=spec.get("role"), call_id=spec.get("call_id"),
                     data=spec)
        if kind == "message" and item.role == "user" and self._is_turn_text(spec):
            item.turn = self._turns_so_far()
        self._add_item(item, spec)

    # --- turns, items, responses ------------------------------------------------------

    @staticmethod
    def _is_turn_text(spec: dict[str, Any]) -> bool:
        texts = [c.get("text") or "" for c in spec.get("content") or []]
        return any(t and not t.startswith("[") for t in texts)

    def _turns_so_far(self) -> int:
        return sum(1 for i in self.items.values() if i.turn is not None)

    def _add_item(self, item: _Item, spec: dict[str, Any]) -> None:
        previous = next(reversed(self.items), None) if self.items else None
        self.items[item.id] = item
        self.emit({"type": "conversation.item.added", "previous_item_id": previous,
                   "item": spec})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous,
                   "item": spec})

    def _commit(self, event_id: str | None) -> bool:
        bpm = _BYTES_PER_MS.get(self.in_format, 48)
        ms = self.buffer_bytes / bpm
        if ms < MIN_COMMIT_MS:
            self.error(
                ClientError(
                    "Error committing input audio buffer: buffer too small. Expected at "
                    f"least {MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                    "input_audio_buffer_commit_empty",
                ),
                event_id,
            )
            return False
        self.buffer_bytes = 0
        item_id = self.pending_user_item or _new_id("item")
        self.pending_user_item = None
        previous = next(reversed(self.items), None) if self.items else None
        turn = self._turns_so_far()
        spec = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        item = _Item(item_id, "message", role="user", turn=turn, data=spec)
        self.emit({"type": "input_audio_buffer.committed", "item_id": item_id,
                   "previous_item_id": previous})
        self._add_item(item, spec)
        if self.session["audio"]["input"].get("transcription"):
            script_turn = self.fake.turn(turn)
            transcript = script_turn.transcript if script_turn else \
                self.fake.script.default_transcript
            self.emit({"type": "conversation.item.input_audio_transcription.completed",
                       "item_id": item_id, "content_index": 0, "transcript": transcript,
                       "usage": {"type": "duration", "seconds": round(ms / 1000, 3)}})
        return True

    def _speech_started(self, at_ms: int) -> None:
        self.pending_user_item = _new_id("item")
        self.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms,
                   "item_id": self.pending_user_item})
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if self.active is not None and td.get("interrupt_response", True):
            self.active.reason = "turn_detected"
            self.active.cancelled.set()

    def _speech_stopped(self, at_ms: int) -> None:
        item_id = self.pending_user_item or _new_id("item")
        self.pending_user_item = item_id
        self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms,
                   "item_id": item_id})
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if self._commit(None) and td.get("create_response", True) and self.active is None:
            self._start_response()

    def _start_response(self) -> None:
        response = _Response(_new_id("resp"))
        self.active = response
        response.task = asyncio.get_running_loop().create_task(self._respond(response))

    def _what_to_say(self) -> tuple[str, tuple[ScriptedToolCall, ...], Fault | None, str]:
        """(text, tool calls, fault, fault key) for the response about to start."""
        script = self.fake.script
        items = list(self.items.values())
        last_assistant = max((i for i, x in enumerate(items)
                              if x.role == "assistant" or x.type == "function_call"),
                             default=-1)
        if items and items[-1].type == "function_call_output":
            call_id = items[-1].call_id
            turn_index = self.fake.call_turns.get(call_id or "")
            turn = self.fake.turn(turn_index) if turn_index is not None else None
            return (turn.after_tool_reply if turn else "Done."), (), None, ""
        user_turns = [(i, x) for i, x in enumerate(items) if x.turn is not None]
        if user_turns and user_turns[-1][0] > last_assistant:
            index = user_turns[-1][1].turn
            assert index is not None
            turn = self.fake.turn(index)
            if turn is None:
                return script.default_reply, (), None, ""
            return turn.reply, turn.tool_calls, turn.fault, f"turn:{index}"
        if not any(x.role == "assistant" for x in items):
            return script.greeting, (), script.greeting_fault, "greeting"
        return script.default_reply, (), None, ""

    async def _respond(self, response: _Response) -> None:
        text, tool_calls, fault, fault_key = self._what_to_say()
        if fault is not None and not self.fake.fault_armed(fault, fault_key):
            fault = None
        if fault is not None:
            self.fake.faults_fired.append(fault_key)
        status, status_details = "completed", None
        out_fmt = self.out_format
        self.emit({"type": "response.created", "response": self._response_obj(response,
                                                                             "in_progress")})
        audio_ms_total = 0
        try:
            if text:
                outcome = await self._speak(response, text, fault, out_fmt)
                audio_ms_total = outcome[1]
                if outcome[0] == "error":
                    status = "failed"
                    status_details = {"type": "failed", "error": {
                        "type": fault.error_type if fault else "server_error",
                        "code": fault.code if fault else "server_error",
                        "message": fault.message if fault else ""}}
                elif outcome[0] == "disconnect":
                    return
                elif outcome[0] == "cancelled":
                    status = "cancelled"
                    status_details = {"type": "cancelled", "reason": response.reason}
            if status == "completed":
                for index, call in enumerate(tool_calls):
                    self._function_call(response, call, fault_key, len(response.output) + index)
        finally:
            if self.active is response:
                self.active = None
        if self.closed:
            return
        self.emit({"type": "response.done", "response": self._response_obj(
            response, status, status_details,
            usage=self._usage(text if status == "completed" else "", audio_ms_total))})
        self.emit({"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 10_000, "remaining": 9_999, "reset_seconds": 0.006},
            {"name": "tokens", "limit": 2_000_000, "remaining": 1_995_000,
             "reset_seconds": 0.15},
        ]})

    def _response_obj(self, response: _Response, status: str,
                      status_details: dict[str, Any] | None = None,
                      usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": status_details,
            "output": list(response.output),
            "conversation_id": "conv_" + self.session_id[5:],
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": self.session["audio"]["output"]["format"],
                                 "voice": self.session["audio"]["output"].get("voice")}},
            "usage": usage,
            "metadata": None,
        }

    @staticmethod
    def _usage(text: str, audio_ms: int) -> dict[str, Any]:
        out_text = len(text.split())
        out_audio = math.ceil(audio_ms / 50)
        in_text, in_audio = 120, 40
        return {
            "total_tokens": in_text + in_audio + out_text + out_audio,
            "input_tokens": in_text + in_audio,
            "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio,
                                    "image_tokens": 0, "cached_tokens": 0,
                                    "cached_tokens_details": {"text_tokens": 0,
                                                              "audio_tokens": 0,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    async def _audio_for(self, text: str, fmt: str) -> bytes:
        audio = await synthesize_ulaw_async(text, rate=self.fake.script.voice_rate)
        if fmt == "audio/pcm":
            return resample(ulaw.decode(audio), ulaw.SAMPLE_RATE, 24_000)
        if fmt == "audio/pcma":
            return audio  # close enough for a fake: same length as A-law
        return audio

    async def _speak(self, response: _Response, text: str, fault: Fault | None,
                     fmt: str) -> tuple[str, int]:
        """Stream one spoken message; ("completed"|"cancelled"|"error"|"disconnect", ms sent)."""
        script = self.fake.script
        item_id = _new_id("item")
        output_index = len(response.output)
        item_spec = {"id": item_id, "object": "realtime.item", "type": "message",
                     "role": "assistant", "status": "in_progress", "content": []}
        item = _Item(item_id, "message", role="assistant", has_audio=True, data=item_spec)
        previous = next(reversed(self.items), None) if self.items else None
        self.items[item_id] = item
        self.emit({"type": "response.output_item.added", "response_id": response.id,
                   "output_index": output_index, "item": item_spec})
        self.emit({"type": "conversation.item.added", "previous_item_id": previous,
                   "item": item_spec})
        where = {"response_id": response.id, "item_id": item_id,
                 "output_index": output_index, "content_index": 0}
        self.emit({"type": "response.content_part.added", **where,
                   "part": {"type": "audio", "transcript": ""}})
        audio = await self._audio_for(text, fmt)
        bpm = _BYTES_PER_MS.get(fmt, 48)
        step = script.chunk_ms * bpm
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
        words = text.split()
        outcome = "completed"
        late = 0
        for index, chunk in enumerate(chunks):
            if fault is not None and index == fault.after_chunks:
                if fault.kind == "error":
                    self.emit({"type": "error", "error": {
                        "type": fault.error_type, "code": fault.code,
                        "message": fault.message, "param": None, "event_id": None}})
                    outcome = "error"
                    break
                if fault.kind == "disconnect":
                    self.drop(fault.close_code)
                    return "disconnect", item.audio_ms
            if fault is not None and fault.kind == "slow_first_delta" and index == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(response.cancelled.wait(), fault.delay_ms / 1000)
            if response.cancelled.is_set():
                if late >= script.deltas_after_cancel:
                    outcome = "cancelled"
                    break
                late += 1
            self.emit({"type": "response.output_audio.delta", **where,
                       "delta": base64.b64encode(chunk).decode()})
            item.audio_ms += len(chunk) // bpm
            part = words[index * len(words) // len(chunks) : (index + 1) * len(words)
                         // len(chunks)]
            if part:
                self.emit({"type": "response.output_audio_transcript.delta", **where,
                           "delta": (" " if index else "") + " ".join(part)})
            if script.speed > 0:
                await asyncio.sleep(script.chunk_ms / 1000 / script.speed)
            else:
                await asyncio.sleep(0)
        if self.closed:
            return "disconnect", item.audio_ms
        heard = words if outcome == "completed" else words[: max(0, len(words) * item.audio_ms
                                                               // max(1, len(audio) // bpm))]
        transcript = " ".join(heard)
        self.emit({"type": "response.output_audio.done", **where})
        self.emit({"type": "response.output_audio_transcript.done", **where,
                   "transcript": transcript})
        self.emit({"type": "response.content_part.done", **where,
                   "part": {"type": "audio", "transcript": transcript}})
        item_spec = dict(item_spec, status="completed" if outcome == "completed" else
                         "incomplete", content=[{"type": "output_audio",
                                                 "transcript": transcript}])
        item.data = item_spec
        response.output.append(item_spec)
        self.emit({"type": "response.output_item.done", "response_id": response.id,
                   "output_index": output_index, "item": item_spec})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous,
                   "item": item_spec})
        return outcome, item.audio_ms

    def _function_call(self, response: _Response, call: ScriptedToolCall, fault_key: str,
                       output_index: int) -> None:
        arguments = call.arguments if isinstance(call.arguments, str) else \
            _json_encoder.encode(call.arguments).decode()
        item_id, call_id = _new_id("item"), _new_id("call")
        if fault_key.startswith("turn:"):
            self.fake.call_turns[call_id] = int(fault_key[5:])
        spec = {"id": item_id, "object": "realtime.item", "type": "function_call",
                "status": "in_progress", "name": call.name, "call_id": call_id,
                "arguments": ""}
        previous = next(reversed(self.items), None) if self.items else None
        self.items[item_id] = _Item(item_id, "function_call", call_id=call_id, data=spec)
        self.emit({"type": "response.output_item.added", "response_id": response.id,
                   "output_index": output_index, "item": spec})
        self.emit({"type": "conversation.item.added", "previous_item_id": previous,
                   "item": spec})
        self.emit({"type": "response.function_call_arguments.delta",
                   "response_id": response.id, "item_id": item_id, "output_index": output_index,
                   "call_id": call_id, "delta": arguments})
        self.emit({"type": "response.function_call_arguments.done",
                   "response_id": response.id, "item_id": item_id, "output_index": output_index,
                   "call_id": call_id, "name": call.name, "arguments": arguments})
        done = dict(spec, status="completed", arguments=arguments)
        self.items[item_id].data = done
        response.output.append(done)
        self.emit({"type": "response.output_item.done", "response_id": response.id,
                   "output_index": output_index, "item": done})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous,
                   "item": done})


# --- the server ---------------------------------------------------------------------


class FakeRealtime:
    """State of one fake service: script, live connections, and what was received/emitted."""

    def __init__(self, script: Script | None = None, *, record_limit: int = 50_000,
                 keep_emitted: bool = True) -> None:
        self.script = script or Script()
        self.connections: list[_Connection] = []
        self.received: deque[dict[str, Any]] = deque(maxlen=record_limit)
        self.emitted: deque[dict[str, Any]] = deque(maxlen=record_limit)
        self.keep_emitted = keep_emitted
        self.refused: list[dict[str, Any]] = []
        self.faults_fired: list[str] = []
        self.call_turns: dict[str, int] = {}
        self.errors_sent = 0
        self.truncate_rejections = 0
        self._fired: set[str] = set()
        self._numbers = itertools.count(1)
        self.headers: list[dict[str, str]] = []

    # script
    def turn(self, index: int) -> Turn | None:
        return self.script.turns[index] if 0 <= index < len(self.script.turns) else None

    def fault_armed(self, fault: Fault, key: str) -> bool:
        if fault.once and key in self._fired:
            return False
        self._fired.add(key)
        return True

    def audio_sent_by(self, conn: _Connection) -> bool:
        return any(i.role == "assistant" and i.audio_ms for i in conn.items.values())

    # records
    def _record_received(self, number: int, event: dict[str, Any]) -> None:
        self.received.append({"connection": number, **event})

    def _record_append(self, number: int, nbytes: int) -> None:
        last = self.received[-1] if self.received else None
        if last is not None and last.get("type") == "input_audio_buffer.append" and \
                last.get("connection") == number:
            last["audio_bytes"] += nbytes
            last["appends"] += 1
        else:
            self.received.append({"connection": number, "type": "input_audio_buffer.append",
                                  "audio_bytes": nbytes, "appends": 1})

    def _record_emitted(self, number: int, event: dict[str, Any]) -> None:
        if self.keep_emitted:
            self.emitted.append(event)

    def received_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == kind]

    def emitted_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.emitted if e.get("type") == kind]

    def dump(self, path: str | Path) -> None:
        Path(path).write_bytes(msgspec.json.format(_json_encoder.encode(list(self.received))))

    def reset(self) -> None:
        self.received.clear()
        self.emitted.clear()
        self.refused.clear()
        self.faults_fired.clear()
        self._fired.clear()

    def drop_all(self, close_code: int = 1011) -> None:
        """Drop every live connection (a service outage)."""
        for conn in self.connections:
            conn.drop(close_code)

    # http
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "missing_api_key",
                                                "message": "Missing bearer authentication."}},
                                     status=401)
        model = request.query.get("model")
        if not model:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "missing_model",
                                                "message": "Missing required parameter: "
                                                           "'model'."}}, status=400)
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, autoping=True)
        await ws.prepare(request)
        conn = _Connection(self, ws, next(self._numbers), model)
        conn.transport = request.transport
        self.headers.append(dict(request.headers))
        self.connections.append(conn)
        sender = asyncio.get_running_loop().create_task(conn.sender())
        conn.emit({"type": "session.created", "session": conn.session})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await conn.handle(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.error(ClientError("Binary frames are not supported.",
                                           "invalid_frame"), None)
                if conn.closed:
                    break
        finally:
            if conn.active is not None and conn.active.task is not None:
                conn.active.task.cancel()
            if not conn.closed:
                conn.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 2.0)
            conn.closed = True
            self.connections.remove(conn)
        return ws

    async def get_received(self, request: web.Request) -> web.Response:
        kind = request.query.get("type")
        events = self.received_of(kind) if kind else list(self.received)
        return web.Response(body=_json_encoder.encode(events), content_type="application/json")

    async def get_emitted(self, request: web.Request) -> web.Response:
        kind = request.query.get("type")
        events = self.emitted_of(kind) if kind else list(self.emitted)
        return web.Response(body=_json_encoder.encode(events), content_type="application/json")

    async def post_dump(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        if not path:
            return web.json_response({"error": "path is required"}, status=400)
        self.dump(path)
        return web.json_response({"dumped": len(self.received), "path": path})

    async def post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def post_drop(self, request: web.Request) -> web.Response:
        n = len(self.connections)
        self.drop_all(int(request.query.get("code", "1011")))
        return web.json_response({"dropped": n})

    async def _on_shutdown(self, app: web.Application) -> None:
        # Like the service going away: close sockets with 1001 instead of leaving
        # clients to notice through ping timeouts.
        self.drop_all(1001)

    def app(self) -> web.Application:
        app = web.Application()
        app[FAKE_KEY] = self
        app.on_shutdown.append(self._on_shutdown)
        app.router.add_get("/v1/realtime", self.websocket)
        app.router.add_get("/realtime", self.websocket)
        app.router.add_get("/debug/received", self.get_received)
        app.router.add_get("/debug/emitted", self.get_emitted)
        app.router.add_post("/debug/dump", self.post_dump)
        app.router.add_post("/debug/reset", self.post_reset)
        app.router.add_post("/debug/drop", self.post_drop)
        app.router.add_get("/health", _health)
        return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


FAKE_KEY: web.AppKey[FakeRealtime] = web.AppKey("fake_realtime", FakeRealtime)


class FakeRealtimeRunner(web.AppRunner):
    """An `AppRunner` serving the fake, with its state and address at hand."""

    @property
    def fake(self) -> FakeRealtime:
        return self.app[FAKE_KEY]

    @property
    def port(self) -> int:
        return int(self.addresses[0][1])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def websocket_base_url(self) -> str:
        """What to give the SDK (`websocket_base_url`) or `LEADLINE_OPENAI_BASE_URL`."""
        return f"ws://127.0.0.1:{self.port}/v1"


async def serve_fake_realtime(
    port: int = 0,
    script: Script | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    keep_emitted: bool = True,
) -> FakeRealtimeRunner:
    """Start the fake on `host:port` (0: a free port); stop it with `await runner.cleanup()`."""
    if isinstance(script, (str, Path)):
        script = load_script(script)
    fake = FakeRealtime(script, keep_emitted=keep_emitted)
    runner = FakeRealtimeRunner(fake.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


# --- command line -------------------------------------------------------------------


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="leadline dev fake-realtime",
        description="Serve a fake OpenAI Realtime API (GA) for tests and load tests.",
    )
    from ops.dev.cli import add_fake_realtime_arguments

    return add_fake_realtime_arguments(parser)


async def _serve_forever(args: argparse.Namespace) -> None:
    runner = await serve_fake_realtime(args.port, args.script, host=args.host,
                                       keep_emitted=not args.no_emitted)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"fake realtime listening on ws://{args.host}:{runner.port}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        if args.dump:
            runner.fake.dump(args.dump)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted, with parsed `build_parser` arguments."""
    if args.script:
        load_script(args.script)  # fail fast on a bad script
    logging.basicConfig(level=logging.INFO)
    try:
        import uvloop

        uvloop.run(_serve_forever(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_serve_forever(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
