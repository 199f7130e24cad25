"""Tunables of the media layer.

These structs are the `[vad]`, `[media]` and `[recording]` sections of the
config file; `ops.config` composes them, so the layer that reads a knob is the
layer that declares it (media imports nothing of ours).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class VadSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Voice activity detection and turn-taking. Hot-reloaded into live calls."""

    engine: Literal["webrtc", "silero"] = "webrtc"
    # Speech probability above which a window counts as speech (silero), or the
    # webrtc aggressiveness mapped from it: <0.35 → 1, <0.65 → 2, else 3.
    threshold: float = 0.5
    # Caller speech must last this long before it counts as the start of a turn.
    start_ms: int = 60
    # Silence after speech that ends the caller's turn.
    stop_ms: int = 500
    # Frames whose RMS (PCM16) is below this are silence without inference.
    min_volume: int = 120
    # Caller speech over the agent for this long interrupts the agent.
    barge_in_ms: int = 100
    # Audio kept from before speech onset, handed on with the turn.
    prefix_padding_ms: int = 300

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        for name in ("start_ms", "stop_ms", "barge_in_ms", "prefix_padding_ms"):
            value = getattr(self, name)
            if not 0 <= value <= 10_000:
                raise ValueError(f"{name} must be between 0 and 10000")
        if self.stop_ms < 100:
            raise ValueError("stop_ms must be at least 100")
        if not 0 <= self.min_volume <= 32767:
            raise ValueError("min_volume must be between 0 and 32767")


class MediaSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Outbound pacing and buffer bounds."""

    # A Twilio mark is sent after every this-many ms of agent audio; marks tell
    # what the caller actually heard, so this is the truncation granularity.
    mark_interval_ms: int = 100
    # Frames sent ahead of real time at the start of an utterance (jitter cushion).
    lead_frames: int = 5
    # Once the cushion is out, audio is handed to the leg this many frames at a
    # time (every chunk × 20 ms) instead of one per tick: the leg's buffer stays
    # between lead_frames and lead_frames + chunk, and Twilio gets one media
    # message per chunk, so ~chunk× fewer sends. 1 = one frame per tick.
    send_chunk_frames: int = 5
    # Bound of agent audio buffered per call, in ms; more is dropped and counted.
    max_playout_ms: int = 60_000
    # Bound of caller audio waiting for VAD per call, in ms.
    max_inbound_ms: int = 1_000

    def __post_init__(self) -> None:
        if not 20 <= self.mark_interval_ms <= 2_000:
            raise ValueError("mark_interval_ms must be between 20 and 2000")
        if not 0 <= self.lead_frames <= 25:
            raise ValueError("lead_frames must be between 0 and 25")
        if not 1 <= self.send_chunk_frames <= 25:
            raise ValueError("send_chunk_frames must be between 1 and 25")
        if not 1_000 <= self.max_playout_ms <= 600_000:
            raise ValueError("max_playout_ms must be between 1000 and 600000")
        if not 100 <= self.max_inbound_ms <= 10_000:
            raise ValueError("max_inbound_ms must be between 100 and 10000")


class RecordingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Call recording, both directions, off by default."""

    enabled: bool = False
    directory: str = "./recordings"
