"""Tunables of the agents layer: the `[brain]`, `[scripted]` and `[openai]` sections."""

from __future__ import annotations

from typing import Literal

import msgspec


class BrainSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # "auto": openai when an API key is set, else scripted.
    kind: Literal["auto", "scripted", "openai"] = "auto"


class ScriptedSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The keyless brain: local TTS, DTMF menu, message taking."""

    voice: str = "en-us"
    # Words per minute for eSpeak NG.
    rate: int = 165
    # The keyless brain cannot hear a question ("am I talking to a robot?"), so it says
    # what it is up front; callers must never be led to think an automated agent is human.
    greeting: str = (
        "Hello, thanks for calling. You are speaking with an automated assistant. "
        "How can I help you today?"
    )
    # Added to the greeting for a caller we know but whose name we do not (caller memory);
    # empty: never ask.
    ask_name: str = "May I have your name, please?"
    # Spoken after each caller turn.
    reply: str = "Thank you. Press 1 to leave a message, or stay on the line."
    menu: dict[str, str] = msgspec.field(
        default_factory=lambda: {"1": "message", "0": "repeat"}
    )
    message_prompt: str = "Please leave your message after the tone. Press pound when done."
    message_saved: str = "Thank you, your message has been saved. Goodbye."
    apology: str = (
        "Sorry, our assistant is having trouble right now. "
        "Press 1 to leave a message and we will call you back."
    )
    # Longest message recorded, in seconds.
    max_message_s: int = 120
    messages_directory: str = "./data/messages"
    # Keyless speech recognition of caller turns (agents/stt): "pocketsphinx", or "off"
    # (the brain then hears only keys). Without the package installed it is off.
    stt: Literal["pocketsphinx", "off"] = "pocketsphinx"
    # Recognizer worker processes shared by every call of the process (one decoder each;
    # processes because the decoder holds the GIL while it works).
    stt_workers: int = 1
    # Caller audio kept per turn for recognition; a longer turn keeps its last seconds.
    stt_max_turn_s: float = 15.0
    # A turn not recognised within this is answered as if unheard (menu, next question).
    stt_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.stt_workers <= 16:
            raise ValueError("stt_workers must be between 1 and 16")
        if not 1.0 <= self.stt_max_turn_s <= 60.0:
            raise ValueError("stt_max_turn_s must be between 1 and 60")
        if not 0.2 <= self.stt_timeout_s <= 10.0:
            raise ValueError("stt_timeout_s must be between 0.2 and 10")


class OpenAISettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The OpenAI Realtime brain (agents/realtime); declared here so config is one file.

    `temperature` is not a field of the GA session (the service rejects it), so
    the Realtime brain does not send it; it stays for config compatibility.
    """

    api_key: str = ""
    base_url: str = ""
    model: str = "gpt-realtime"
    voice: str = "marin"
    instructions: str = (
        "You are a friendly, concise receptionist for a small business. If anyone asks "
        "whether you are an AI, a bot or a real person, say plainly that you are an AI "
        "assistant; never claim to be human."
    )
    temperature: float = 0.8
    turn_detection: Literal["ours", "server_vad", "semantic_vad"] = "ours"
    connect_timeout_s: float = 5.0
    # Input transcription model (caller transcripts for the call record).
    transcription_model: str = "gpt-4o-mini-transcribe"
    # What the agent opens the call with; empty: the model greets in its own words.
    greeting: str = ""
    # Human number transfer_call dials (E.164); empty: the tool is not offered.
    transfer_number: str = ""
    # Extra tools by dotted path, "package.module:function".
    tools: tuple[str, ...] = ()
    tool_timeout_s: float = 8.0
    # A dropped socket must be restored within this, else the keyless brain takes over.
    restore_within_s: float = 2.0
    # Sessions are replaced after this long (the service ends them at 60 min).
    session_rotate_s: float = 3300.0
    # Conversation turns kept to restore context after a reconnect.
    max_context_turns: int = 40
    # Circuit breaker shared by all calls: this many failures within the window open it.
    breaker_failures: int = 5
    breaker_window_s: float = 60.0
    breaker_cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout_s <= 60:
            raise ValueError("connect_timeout_s must be in (0, 60]")
        if not 0 < self.tool_timeout_s <= 300:
            raise ValueError("tool_timeout_s must be in (0, 300]")
        if not 0 < self.restore_within_s <= 30:
            raise ValueError("restore_within_s must be in (0, 30]")
        if not 60 <= self.session_rotate_s <= 3540:
            raise ValueError("session_rotate_s must be between 60 and 3540")
        if not 0 <= self.max_context_turns <= 500:
            raise ValueError("max_context_turns must be between 0 and 500")
        if self.breaker_failures < 1 or self.breaker_window_s <= 0 or self.breaker_cooldown_s <= 0:
            raise ValueError("breaker_failures >= 1 and positive breaker window/cooldown required")
