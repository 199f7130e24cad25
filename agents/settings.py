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
    greeting: str = "Hello, thanks for calling. How can I help you today?"
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


class OpenAISettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The OpenAI Realtime brain (its own issue); declared here so config is one file."""

    api_key: str = ""
    base_url: str = ""
    model: str = "gpt-realtime"
    voice: str = "marin"
    instructions: str = "You are a friendly, concise receptionist for a small business."
    temperature: float = 0.8
    turn_detection: Literal["ours", "server_vad", "semantic_vad"] = "ours"
    connect_timeout_s: float = 5.0
