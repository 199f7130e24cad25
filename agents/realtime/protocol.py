"""A call's Realtime conversation as a sans-I/O state machine: server events in, client events out.

A conversation outlives the service's sessions (one per socket; they are
restored after a drop and rotated before the 60-minute limit), which is why
the core is named for the conversation and "session" is left to the service's
`session.update` and to the Redis call state in `store.sessions`.

`RealtimeConversation` never touches a socket or a task. The shell feeds it every
server message (`receive`) and the call's requests (`push_audio`, `commit`,
`cancel`, `truncate`, ...), and drains what to send (`data_to_send`) and the
tool calls to run (`take_tool_calls`). Agent audio, transcripts and speech
events go straight to the call's `BrainOutput`, which is itself non-blocking.
Because of that, every rule below is tested without a network and with an
injected clock.

Rules that keep the service from rejecting us:
- One response at a time. A `response.create` while one is in flight is
  deferred until `response.done` (the service would answer
  `conversation_already_has_active_response`).
- `response.cancel` only when a response is requested or in progress; deltas
  of a cancelled response are dropped (and counted), never played.
- `conversation.item.truncate` only for an item whose audio we received on
  this connection, with `audio_end_ms` clamped to the audio received (8 bytes
  per ms of μ-law); 0 ms deletes the item instead. Anything else is not sent.
- A commit needs ≥ 100 ms of audio appended since the previous one.

Reconnect and rotation: the session keeps the conversation as text turns
(bounded) and the caller audio not yet committed (bounded). After
`connection_lost()` + `connection_made()` it replays `session.update`, the
turns as conversation items, the uncommitted audio, and re-asks for the
response that was lost, so the caller just continues.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from agents.brain import BrainOutput, CallContext
from agents.memory import instructions_note, known_fact
from agents.realtime import events as ev
from agents.realtime.stats import STATS, RealtimeStats, bump
from agents.tools.framework import ToolCall

log = logging.getLogger("leadline.agents.realtime")

TurnDetection = Literal["ours", "server_vad", "semantic_vad"]
AudioFormat = Literal["audio/pcmu", "audio/pcm"]

# The service refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
# Items whose received audio length is remembered (for truncation).
_ITEMS_REMEMBERED = 64
# System notes (coach guidance) waiting for the response in flight to end; older are dropped.
_NOTES_WAITING = 4
# Error codes that are an expected race, not a fault.
_BENIGN_ERRORS = frozenset({"response_cancel_not_active"})


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What `session.update` says, plus the session's own bounds."""

    instructions: str = ""
    voice: str = "marin"
    turn_detection: TurnDetection = "ours"
    transcription_model: str = "gpt-4o-mini-transcribe"
    greeting: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    audio_format: AudioFormat = "audio/pcmu"
    max_context_turns: int = 40
    # Caller audio not yet committed, kept to replay into a new connection.
    replay_ms: int = 5_000
    # Caller audio queued for a socket that does not keep up; older is dropped.
    max_queued_audio_ms: int = 2_000

    @property
    def bytes_per_ms(self) -> int:
        # μ-law 8 kHz: 8 bytes/ms; PCM16 24 kHz: 48 bytes/ms.
        return 8 if self.audio_format == "audio/pcmu" else 48

    @classmethod
    def for_call(
        cls,
        settings: Any,
        context: CallContext,
        tools: Iterable[dict[str, Any]] = (),
    ) -> SessionConfig:
        """Config from `OpenAISettings`, with what we know about this call in the instructions.

        Facts first (the caller's name, the call's direction), then what caller
        memory asks of the greeting (welcome back, or ask for the name).
        """
        memory = context.memory
        notes = [fact] if (fact := known_fact(memory)) else []
        if context.direction == "outbound":
            notes.append("This is an outbound call: you called them.")
        instructions = settings.instructions
        if notes:
            instructions = f"{instructions}\n\n" + " ".join(notes)
        if note := instructions_note(memory):
            instructions = f"{instructions}\n\n{note}"
        return cls(
            instructions=instructions,
            voice=settings.voice,
            turn_detection=settings.turn_detection,
            transcription_model=settings.transcription_model,
            greeting=settings.greeting,
            tools=tuple(tools),
            max_context_turns=settings.max_context_turns,
        )

    def session_payload(self) -> dict[str, Any]:
        """The GA `session` object of `session.update`."""
        fmt: dict[str, Any] = {"type": self.audio_format}
        if self.audio_format == "audio/pcm":
            fmt["rate"] = 24_000
        turn_detection: dict[str, Any] | None = None
        if self.turn_detection != "ours":
            turn_detection = {
                "type": self.turn_detection,
                "create_response": True,
                "interrupt_response": True,
            }
        audio_in: dict[str, Any] = {"format": fmt, "turn_detection": turn_detection}
        if self.transcription_model:
            audio_in["transcription"] = {"model": self.transcription_model}
        session: dict[str, Any] = {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": ["audio"],
            "audio": {"input": audio_in, "output": {"format": dict(fmt), "voice": self.voice}},
        }
        if self.tools:
            session["tools"] = list(self.tools)
            session["tool_choice"] = "auto"
        return session


@dataclass(slots=True)
class RealtimeUsage:
    """Token usage of one call, summed over its responses (for the call record)."""

    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_audio_tokens: int = 0
    input_text_tokens: int = 0
    input_cached_tokens: int = 0
    output_audio_tokens: int = 0
    output_text_tokens: int = 0

    def add(self, usage: ev.Usage) -> None:
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.total_tokens += usage.total_tokens or 0
        d = usage.input_token_details
        if d is not None:
            self.input_audio_tokens += d.audio_tokens or 0
            self.input_text_tokens += d.text_tokens or 0
            self.input_cached_tokens += d.cached_tokens or 0
        o = usage.output_token_details
        if o is not None:
            self.output_audio_tokens += o.audio_tokens or 0
            self.output_text_tokens += o.text_tokens or 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class ContextTurn:
    """One entry of the conversation as we would replay it into a new session."""

    kind: Literal["user", "assistant", "function_call", "function_call_output"]
    item_id: str | None = None
    text: str | None = None
    call_id: str = ""
    name: str = ""
    # Share of an assistant turn the caller heard (barge-in), 1.0 when all of it.
    heard: float = 1.0

    def item(self) -> dict[str, Any] | None:
        if self.kind == "user":
            return ev.user_text_item(self.text) if self.text else None
        if self.kind == "assistant":
            if not self.text:
                return None
            text = self.text
            if self.heard < 1.0:
                cut = int(len(text) * self.heard)
                if cut <= 0:
                    return None
                text = text[:cut].rstrip() + "…"
            return ev.assistant_text_item(text)
        if self.kind == "function_call":
            return ev.function_call_item(self.call_id, self.name, self.text or "{}")
        return ev.function_call_output_item(self.call_id, self.text or "")


Action = Callable[[], None]


class _Reply(enum.Enum):
    """A response the caller is waiting for that cannot be asked for right now."""

    NONE = "none"
    # Wanted while another response is in flight: sent at that one's `response.done`.
    DEFERRED = "deferred"
    # Lost with a connection (or wanted while there was none): asked for once the
    # next connection is made, after the context is restored.
    OWED = "owed"


@dataclass(slots=True)
class _Requested:
    """A `response.create` sent and not yet answered by `response.created`."""

    event_id: str
    requested_at: float
    cancelled: bool = False
    actions: list[Action] = field(default_factory=list)


@dataclass(slots=True)
class _Active:
    """The response in progress (between `response.created` and `response.done`)."""

    id: str
    requested_at: float
    cancelled: bool = False
    actions: list[Action] = field(default_factory=list)
    first_audio_at: float = 0.0
    audio_items: list[str] = field(default_factory=list)
    audio_done: list[str] = field(default_factory=list)


class RealtimeConversation:
    """One call's conversation with the Realtime service, without I/O."""

    def __init__(
        self,
        config: SessionConfig,
        output: BrainOutput,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_sid: str = "",
        on_first_audio: Callable[[str, float], None] | None = None,
        stats: RealtimeStats = STATS,
    ) -> None:
        self.config = config
        self.stats = stats
        self.output = output
        self.call_sid = call_sid
        self.on_first_audio = on_first_audio
        self._clock = clock
        self._log_extra = {"call_sid": call_sid}
        self._bpm = config.bytes_per_ms
        self.state: Literal["new", "open", "lost", "closed"] = "new"
        self.connections = 0
        self.connected_at = 0.0
        self.usage = RealtimeUsage()
        # Per-call counts of everything abnormal (`stats` has the process-wide ones).
        self.counts: dict[str, int] = {}
        self.last_first_audio_at: float | None = None

        self._seq = 0
        self._outbox: list[str | bytearray] = []
        self._queued_audio = 0
        self._replay = bytearray()
        self._replay_cap = config.replay_ms * self._bpm
        self._uncommitted = 0  # bytes appended since the last commit (this connection)
        self._offline_commit: bytes | None = None
        self._requested: deque[_Requested] = deque()
        self._active: _Active | None = None
        self._reply = _Reply.NONE
        # Follow-ups (end_call, transfer) of the deferred response.
        self._want_actions: list[Action] = []
        self._reply_actions: list[Action] = []
        self._turn_end_at: float | None = None
        self._item_audio: dict[str, int] = {}
        self._known_calls: set[str] = set()
        self._history: deque[ContextTurn] = deque(maxlen=max(config.max_context_turns, 1))
        self._tool_calls: list[ToolCall] = []
        # An instruction for the next response only (the life-safety line).
        self._next_instruction: str | None = None
        # System notes not sent yet: they wait for the response in flight to end.
        self._notes: deque[str] = deque(maxlen=_NOTES_WAITING)
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.ResponseOutputAudioDelta: self._on_audio_delta,
            ev.ResponseOutputAudioDone: self._on_audio_done,
            ev.ResponseOutputAudioTranscriptDone: self._on_transcript_done,
            ev.ResponseCreated: self._on_response_created,
            ev.ResponseDone: self._on_response_done,
            ev.ResponseOutputItemAdded: self._on_output_item_added,
            ev.ResponseFunctionCallArgumentsDone: self._on_function_call,
            ev.InputAudioBufferCommitted: self._on_committed,
            ev.InputAudioBufferSpeechStarted: self._on_speech_started,
            ev.InputAudioBufferSpeechStopped: self._on_speech_stopped,
            ev.InputTranscriptionCompleted: self._on_transcription,
            ev.InputTranscriptionFailed: self._on_transcription_failed,
            ev.ErrorEvent: self._on_error,
            ev.RateLimitsUpdated: self._on_rate_limits,
            ev.ConversationItemDeleted: self._on_item_deleted,
        }

    # --- connection lifecycle -------------------------------------------------

    def connection_made(self) -> None:
        """A socket is open: configure the session and greet (first) or restore context."""
        first = self.connections == 0
        self.connections += 1
        self.state = "open"
        self.connected_at = self._clock()
        self._outbox.clear()
        self._queued_audio = 0
        self._uncommitted = 0
        self._item_audio.clear()
        self._known_calls.clear()
        self._queue(ev.SessionUpdate(session=self.config.session_payload()))
        if first:
            self._request_response(greeting=True)
            return
        for turn in self._history:
            if turn.kind == "function_call":
                self._known_calls.add(turn.call_id)
            elif turn.kind == "function_call_output" and turn.call_id not in self._known_calls:
                continue
            item = turn.item()
            if item is not None:
                self._queue(ev.ConversationItemCreate(item=item))
        offline, self._offline_commit = self._offline_commit, None
        if offline is not None and len(offline) >= MIN_COMMIT_MS * self._bpm:
            # The caller finished a turn while we were disconnected: replay and commit it.
            self._queue_audio(offline)
            self._send_commit()
            self._reply = _Reply.OWED
        if self._replay:
            self._queue_audio(bytes(self._replay))
        self._flush_notes()
        if self._reply is _Reply.OWED:
            self._reply = _Reply.NONE
            self._request_response()

    def connection_lost(self) -> None:
        """The socket is gone (or being replaced): forget what lived on the server side."""
        if self.state != "open":
            return
        self.state = "lost"
        self._outbox.clear()
        self._queued_audio = 0
        deferred = self._reply is _Reply.DEFERRED
        active = self._active
        if active is not None:
            if not active.cancelled:
                for item_id in active.audio_items:
                    if item_id not in active.audio_done:
                        self.output.agent_audio_done(item_id)
                # A response cut before any audio is owed to the caller again.
                if not active.first_audio_at:
                    self._reply = _Reply.OWED
            self._run(active.actions)
            self._active = None
        while self._requested:
            requested = self._requested.popleft()
            if not requested.cancelled:
                self._reply = _Reply.OWED
            self._run(requested.actions)
        if deferred:
            self._reply = _Reply.OWED
            self._reply_actions[:0] = self._want_actions
            self._want_actions = []

    def close(self) -> None:
        self.state = "closed"
        self._outbox.clear()
        self._tool_calls.clear()

    @property
    def responding(self) -> bool:
        """A response is requested or in progress."""
        return bool(self._requested) or self._active is not None

    @property
    def is_idle(self) -> bool:
        """Nothing in flight: a good moment to swap the connection (session rotation)."""
        return (
            self.state == "open"
            and not self.responding
            and self._reply is _Reply.NONE
        )

    @property
    def history(self) -> list[ContextTurn]:
        return list(self._history)

    # --- the call's requests (synchronous, non-blocking) ------------------------

    def push_audio(self, audio: bytes) -> None:
        replay = self._replay
        replay += audio
        if len(replay) > 2 * self._replay_cap:
            del replay[: len(replay) - self._replay_cap]
        if self.state != "open":
            return
        self._uncommitted += len(audio)
        outbox = self._outbox
        if outbox and type(outbox[-1]) is bytearray:
            outbox[-1] += audio  # type: ignore[operator]
        else:
            outbox.append(bytearray(audio))
        self._queued_audio += len(audio)
        if self._queued_audio > self.config.max_queued_audio_ms * self._bpm:
            self._drop_queued_audio()

    def commit(self) -> None:
        """End of the caller's turn (our VAD): commit the audio and ask for a response.

        Ignored when the service detects turns itself (server_vad / semantic_vad):
        it commits on its own, and a second commit would be an empty-buffer error.
        """
        if self.config.turn_detection != "ours":
            return
        now = self._clock()
        if self.state == "lost":
            self._offline_commit = (self._offline_commit or b"") + bytes(self._replay)
            self._replay.clear()
            self._turn_end_at = now
            return
        if self.state != "open":
            return
        if self._uncommitted < MIN_COMMIT_MS * self._bpm:
            self._bad("commit_too_short", f"{self._uncommitted // self._bpm} ms")
            return
        self._turn_end_at = now
        self._replay.clear()
        self._send_commit()
        self._request_response()

    def cancel(self) -> None:
        """Barge-in: stop the response in flight; its late deltas will be dropped."""
        if self._reply is _Reply.DEFERRED:
            self._reply = _Reply.NONE
        if self._want_actions:
            # Deferred tool follow-ups (end_call, transfer) wait for the next reply.
            self._reply_actions[:0] = self._want_actions
            self._want_actions = []
        if self.state != "open":
            self._reply = _Reply.NONE
            return
        needed = False
        active = self._active
        if active is not None and not active.cancelled:
            active.cancelled = True
            needed = True
        for requested in self._requested:
            if not requested.cancelled:
                requested.cancelled = True
                needed = True
        if needed:
            self._queue(ev.ResponseCancel())

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The caller heard `audio_end_ms` of `item_id`: trim the item server-side (never over)."""
        turn = self._turn_for(item_id)
        received = self._item_audio.get(item_id)
        if self.state != "open" or received is None:
            self._bad("truncate_unknown_item", item_id)
            if turn is not None and received is None and audio_end_ms <= 0:
                turn.heard = 0.0
            return
        received_ms = received // self._bpm
        if audio_end_ms > received_ms:
            self._bad("truncate_clamped", f"{audio_end_ms} ms > {received_ms} ms received")
        end_ms = max(0, min(audio_end_ms, received_ms))
        if end_ms == 0:
            self._queue(ev.ConversationItemDelete(item_id=item_id))
            self._item_audio.pop(item_id, None)
            if turn is not None:
                self._history.remove(turn)
            return
        self._queue(
            ev.ConversationItemTruncate(item_id=item_id, audio_end_ms=end_ms, content_index=0)
        )
        if turn is not None and received_ms:
            turn.heard = min(turn.heard, end_ms / received_ms)

    def dtmf(self, digit: str) -> None:
        """A keypad press becomes a user note in the conversation (no response by itself)."""
        if not digit:
            return
        text = f"[The caller pressed {digit} on the keypad.]"
        self._history.append(ContextTurn("user", text=text))
        if self.state == "open":
            self._queue(ev.ConversationItemCreate(item=ev.user_text_item(text)))

    def tool_output(self, call_id: str, output: str, respond: bool = True) -> None:
        """A tool's result: `function_call_output`, then (if `respond`) a new response."""
        self._history.append(ContextTurn("function_call_output", text=output, call_id=call_id))
        if self.state != "open":
            if respond:
                self._reply = _Reply.OWED
            return
        if call_id in self._known_calls:
            self._queue(
                ev.ConversationItemCreate(item=ev.function_call_output_item(call_id, output))
            )
        else:
            self._bad("tool_output_unknown_call", call_id)
        if respond:
            self._turn_end_at = self._clock()
            self._request_response()

    def instruct_next(self, text: str) -> None:
        """The next response must follow `text` (e.g. say the 911 line first): a reply in
        flight is cancelled and a new one is asked for, carrying the instruction.

        Agent audio already queued for the caller (this reply's, or a finished one still
        playing out) would be heard first: the call drops it (`drop_agent_audio`, which
        comes back here as a barge-in would: `cancel`, `truncate`) before the new
        response is asked for, so the cut cannot cancel that one too."""
        self._next_instruction = text
        self.output.drop_agent_audio()
        if self.state != "open":
            self._reply = _Reply.OWED
            return
        if self.responding:
            self.cancel()
        self._turn_end_at = self._clock()
        self._request_response()

    def system_note(self, text: str) -> None:
        """Context for the model (the coach's guidance) as a `system` message item.

        Never while the agent is mid-response: it waits for that response's
        `response.done` (or a new connection) and is sent before any response asked
        for meanwhile. It never asks for a response itself, and it is not replayed
        after a reconnect (guidance goes stale; the coach sends fresh guidance).
        """
        if text.strip():
            self._notes.append(text)
            self._flush_notes()

    def _flush_notes(self) -> None:
        if self.state != "open" or self.responding:
            return
        while self._notes:
            self._queue(ev.ConversationItemCreate(item=ev.system_text_item(self._notes.popleft())))
            self._count("system_notes")

    def after_reply(self, action: Action) -> None:
        """Run `action` when the next response (the reply to a tool result) is done."""
        self._reply_actions.append(action)

    # --- what to send / run ---------------------------------------------------

    @property
    def has_data(self) -> bool:
        return bool(self._outbox)

    def data_to_send(self) -> list[str]:
        """Text frames to send, in order; caller audio queued meanwhile is coalesced."""
        outbox = self._outbox
        if not outbox:
            return []
        out = [
            ev.encode(ev.InputAudioBufferAppend(audio=x)) if type(x) is bytearray else x
            for x in outbox
        ]
        outbox.clear()
        self._queued_audio = 0
        return out  # type: ignore[return-value]

    def take_tool_calls(self) -> list[ToolCall]:
        if not self._tool_calls:
            return []
        calls, self._tool_calls = self._tool_calls, []
        return calls

    # --- server events ------------------------------------------------------------

    def receive(self, data: bytes | str) -> None:
        """One server message. Never raises on bad input: it is counted and logged."""
        try:
            event = ev.server_event_decoder.decode(data)
        except msgspec.ValidationError as exc:
            self._undecodable(data, exc)
            return
        except msgspec.DecodeError as exc:
            self._bad("malformed", str(exc)[:120])
            return
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _undecodable(self, data: bytes | str, exc: Exception) -> None:
        try:
            kind = ev.envelope_decoder.decode(data).type
        except msgspec.DecodeError:
            self._bad("malformed", str(exc)[:120])
            return
        if kind in ev.KNOWN_TYPES:
            self._bad("malformed", f"{kind}: {str(exc)[:120]}")
        else:
            self._bad("unknown_event", kind[:64])

    def _on_audio_delta(self, e: ev.ResponseOutputAudioDelta) -> None:
        # Count every byte the service produced for the item, played or not: that
        # is the length a truncate is checked against.
        item_audio = self._item_audio
        received = item_audio.get(e.item_id)
        if received is None:
            if len(item_audio) >= _ITEMS_REMEMBERED:
                del item_audio[next(iter(item_audio))]
            item_audio[e.item_id] = len(e.delta)
        else:
            item_audio[e.item_id] = received + len(e.delta)
        active = self._active
        if active is None or active.id != e.response_id:
            self._bad("stray_delta", e.response_id)
            return
        if active.cancelled:
            self._bad("delta_after_cancel", e.response_id)
            return
        if not active.first_audio_at:
            now = self._clock()
            active.first_audio_at = now
            self.last_first_audio_at = now
            self.stats.first_audio_seconds.add(max(0.0, now - active.requested_at))
            if self.on_first_audio is not None:
                self.on_first_audio(e.item_id, now)
        if e.item_id not in active.audio_items:
            active.audio_items.append(e.item_id)
        self.output.agent_audio(e.item_id, e.delta)

    def _on_audio_done(self, e: ev.ResponseOutputAudioDone) -> None:
        active = self._active
        if active is None or active.id != e.response_id or active.cancelled:
            return
        if e.item_id in active.audio_items and e.item_id not in active.audio_done:
            active.audio_done.append(e.item_id)
            self.output.agent_audio_done(e.item_id)

    def _on_transcript_done(self, e: ev.ResponseOutputAudioTranscriptDone) -> None:
        text = e.transcript.strip()
        turn = self._turn_for(e.item_id)
        if turn is None:
            turn = ContextTurn("assistant", item_id=e.item_id)
            self._history.append(turn)
        turn.text = text
        if text:
            self.output.transcript("agent", text, e.item_id)

    def _on_output_item_added(self, e: ev.ResponseOutputItemAdded) -> None:
        item = e.item
        if item.type == "message" and item.role == "assistant" and item.id:
            if self._turn_for(item.id) is None:
                self._history.append(ContextTurn("assistant", item_id=item.id))

    def _on_function_call(self, e: ev.ResponseFunctionCallArgumentsDone) -> None:
        self._known_calls.add(e.call_id)
        self._history.append(
            ContextTurn(
                "function_call", item_id=e.item_id, text=e.arguments, call_id=e.call_id,
                name=e.name,
            )
        )
        self._tool_calls.append(ToolCall(e.call_id, e.name, e.arguments, e.item_id))

    def _on_response_created(self, e: ev.ResponseCreated) -> None:
        now = self._clock()
        requested = self._requested.popleft() if self._requested else None
        previous = self._active
        if previous is not None:
            # Never expected; keep going with the newer response.
            self._bad("overlapping_response", previous.id)
            self._run(previous.actions)
        self._active = _Active(
            id=e.response.id or "",
            requested_at=(
                requested.requested_at if requested is not None
                else self._turn_end_at if self._turn_end_at is not None else now
            ),
            cancelled=requested.cancelled if requested is not None else False,
            actions=requested.actions if requested is not None else [],
        )

    def _on_response_done(self, e: ev.ResponseDone) -> None:
        response = e.response
        status = response.status or "unknown"
        bump(self.stats.responses, status)
        self.usage.responses += 1
        if response.usage is not None:
            self._add_usage(response.usage)
        if status == "failed":
            details = response.status_details
            error = details.error if details is not None else None
            self._bad(
                "response_failed",
                f"{error.code}: {error.message}" if error is not None else "no details",
            )
        active = self._active
        if active is not None and (response.id is None or response.id == active.id):
            if not active.cancelled:
                for item_id in active.audio_items:
                    if item_id not in active.audio_done:
                        self.output.agent_audio_done(item_id)
            self._active = None
            self._run(active.actions)
        self._flush_notes()
        if self._reply is _Reply.DEFERRED and not self.responding and self.state == "open":
            self._reply = _Reply.NONE
            self._send_create(self._want_actions)
            self._want_actions = []

    def _on_committed(self, e: ev.InputAudioBufferCommitted) -> None:
        if self._turn_for(e.item_id) is None:
            self._history.append(ContextTurn("user", item_id=e.item_id))
        if self.config.turn_detection != "ours":
            self._replay.clear()
            self._uncommitted = 0

    def _on_speech_started(self, e: ev.InputAudioBufferSpeechStarted) -> None:
        if self.config.turn_detection == "ours":
            return
        # The service interrupts its own response (interrupt_response): play no more of it.
        if self._active is not None:
            self._active.cancelled = True
        for requested in self._requested:
            requested.cancelled = True
        self.output.caller_speech_started()

    def _on_speech_stopped(self, e: ev.InputAudioBufferSpeechStopped) -> None:
        if self.config.turn_detection != "ours":
            self._turn_end_at = self._clock()

    def _on_transcription(self, e: ev.InputTranscriptionCompleted) -> None:
        text = e.transcript.strip()
        turn = self._turn_for(e.item_id)
        if turn is None:
            turn = ContextTurn("user", item_id=e.item_id)
            self._history.append(turn)
        turn.text = text
        if text:
            self.output.transcript("caller", text, e.item_id)

    def _on_transcription_failed(self, e: ev.InputTranscriptionFailed) -> None:
        self._bad("transcription_failed", e.item_id)

    def _on_error(self, e: ev.ErrorEvent) -> None:
        error = e.error
        code = error.code or ""
        bump(self.stats.error_events, error.type or "unknown")
        if code in _BENIGN_ERRORS:
            self._count("benign_error")
            return
        event_id = error.event_id
        if event_id:
            for requested in self._requested:
                if requested.event_id == event_id:
                    self._requested.remove(requested)
                    if code == "conversation_already_has_active_response":
                        self._reply = _Reply.DEFERRED
                        self._want_actions.extend(requested.actions)
                    else:
                        self._run(requested.actions)
                    break
        self._bad("error_event", f"{error.type}/{code}: {error.message[:200]}")

    def _on_rate_limits(self, e: ev.RateLimitsUpdated) -> None:
        stats = self.stats
        for limit in e.rate_limits:
            name = limit.name if limit.name in ("requests", "tokens") else "other"
            if limit.remaining is not None:
                stats.rate_limit_remaining[name] = limit.remaining
            if limit.limit is not None:
                stats.rate_limit_limit[name] = limit.limit
            if limit.reset_seconds is not None:
                stats.rate_limit_reset[name] = limit.reset_seconds

    def _on_item_deleted(self, e: ev.ConversationItemDeleted) -> None:
        turn = self._turn_for(e.item_id)
        if turn is not None:
            self._history.remove(turn)

    # --- internals ------------------------------------------------------------------

    def _queue(self, event: ev.ClientEvent) -> None:
        self._outbox.append(ev.encode(event))

    def _queue_audio(self, audio: bytes) -> None:
        if not audio:
            return
        self._outbox.append(bytearray(audio))
        self._queued_audio += len(audio)
        self._uncommitted += len(audio)

    def _drop_queued_audio(self) -> None:
        limit = self.config.max_queued_audio_ms * self._bpm
        dropped = 0
        for chunk in self._outbox:
            if self._queued_audio <= limit:
                break
            if type(chunk) is bytearray and chunk:
                cut = min(len(chunk), self._queued_audio - limit)
                del chunk[:cut]
                self._queued_audio -= cut
                dropped += cut
        self._outbox = [x for x in self._outbox if type(x) is not bytearray or x]
        self._bad("caller_audio_dropped", f"{dropped // self._bpm} ms")

    def _send_commit(self) -> None:
        self._seq += 1
        self._queue(ev.InputAudioBufferCommit(event_id=f"commit_{self._seq}"))
        self._uncommitted = 0

    def _request_response(self, *, greeting: bool = False) -> None:
        actions, self._reply_actions = self._reply_actions, []
        if self.responding:
            self._reply = _Reply.DEFERRED
            self._want_actions.extend(actions)
            return
        self._send_create(actions, greeting=greeting)

    def _send_create(self, actions: list[Action], *, greeting: bool = False) -> None:
        self._seq += 1
        event_id = f"response_{self._seq}"
        response = None
        if greeting and self.config.greeting:
            response = {
                "instructions": f"{self.config.instructions}\n\n"
                f"Open the call now by saying: {self.config.greeting}"
            }
        elif self._next_instruction:
            response = {"instructions": f"{self.config.instructions}\n\n"
                        f"{self._next_instruction}"}
            self._next_instruction = None
        self._queue(ev.ResponseCreate(event_id=event_id, response=response))
        now = self._clock()
        if greeting or self._turn_end_at is None:
            self._turn_end_at = now
        self._requested.append(_Requested(event_id, self._turn_end_at, actions=list(actions)))

    def _turn_for(self, item_id: str) -> ContextTurn | None:
        for turn in reversed(self._history):
            if turn.item_id == item_id:
                return turn
        return None

    def _add_usage(self, usage: ev.Usage) -> None:
        self.usage.add(usage)
        add = self.stats.add_tokens
        add("input", "all", usage.input_tokens or 0)
        add("output", "all", usage.output_tokens or 0)
        if usage.input_token_details is not None:
            d = usage.input_token_details
            add("input", "audio", d.audio_tokens or 0)
            add("input", "text", d.text_tokens or 0)
            add("input", "cached", d.cached_tokens or 0)
        if usage.output_token_details is not None:
            o = usage.output_token_details
            add("output", "audio", o.audio_tokens or 0)
            add("output", "text", o.text_tokens or 0)

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("deferred action failed", extra=self._log_extra)
        actions.clear()

    def _count(self, kind: str) -> int:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        return n

    def _bad(self, kind: str, detail: str = "") -> None:
        n = self._count(kind)
        bump(self.stats.bad_events, kind)
        # The first few of a kind, then every 100th: a misbehaving peer cannot flood logs.
        if n <= 3 or n % 100 == 0:
            log.warning(
                "realtime %s (%d this call): %s", kind, n, detail, extra=self._log_extra
            )
