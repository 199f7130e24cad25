"""Tunables of the LiveKit SIP leg: the `[livekit]` section."""

from __future__ import annotations

import msgspec


class LiveKitSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Server URL (wss:// or https://); the Twirp API and the room connect share it.
    url: str = ""
    api_key: str = ""
    api_secret: str = ""
    # Outbound SIP trunk (`ST_…`) calls are placed through.
    sip_trunk_id: str = ""
    # Each call gets its own room: prefix + a unique suffix.
    room_prefix: str = "leadline-"
    # Seconds the callee's phone rings before LiveKit gives up (no answer).
    ringing_timeout_s: int = 30
    # LiveKit hangs up a call still up after this long (our own limit applies as well).
    max_call_duration_s: int = 900
    # Identity the agent joins each room with.
    agent_identity: str = "leadline-agent"
    # Bound on any API request that is not a dial (a dial is bounded by its ringing).
    request_timeout_s: float = 10.0
    # Audio the agent keeps queued in its AudioSource at most, in ms.
    source_queue_ms: int = 400

    def __post_init__(self) -> None:
        if not 5 <= self.ringing_timeout_s <= 600:
            raise ValueError("ringing_timeout_s must be between 5 and 600")
        if not 10 <= self.max_call_duration_s <= 4 * 3600:
            raise ValueError("max_call_duration_s must be between 10 and 14400")
        if not 0.5 <= self.request_timeout_s <= 120:
            raise ValueError("request_timeout_s must be between 0.5 and 120")
        if not 60 <= self.source_queue_ms <= 5000:
            raise ValueError("source_queue_ms must be between 60 and 5000")
        if self.url and not self.url.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError("url must start with ws://, wss://, http:// or https://")

    @property
    def configured(self) -> bool:
        """Everything a dial needs is set."""
        return bool(self.url and self.api_key and self.api_secret and self.sip_trunk_id)
