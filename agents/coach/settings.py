"""Tunables of the coach: the `[coach]` section."""

from __future__ import annotations

import msgspec

# The checklist used on a sales call whose script names no objectives of its own.
DEFAULT_OBJECTIVES = (
    "Introduce yourself, the company and why you are calling",
    "Confirm you are speaking with the right person",
    "Qualify: learn what they use today and what they need",
    "Handle every objection raised",
    "Propose a meeting time",
)


class CoachSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which calls get a coach, which model it is, and how much it may cost."""

    enabled: bool = False
    # Seconds between coach requests on a call (none when nothing new was said).
    interval_s: float = 15.0
    # Any OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM, the dev fake).
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    # Empty: `[openai] api_key` (which OPENAI_API_KEY also sets).
    api_key: str = ""
    # Hard bound on one request; a later answer is dropped and the call goes on.
    timeout_s: float = 5.0
    # Outbound calls with a script are sales calls; inbound ones are coached only with this.
    inbound: bool = False
    # The checklist when the call's script has none.
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    # Transcript characters sent per request (the newest are kept): bounds the cost.
    max_transcript_chars: int = 8_000

    def __post_init__(self) -> None:
        if not 1.0 <= self.interval_s <= 3600:
            raise ValueError("coach.interval_s must be in [1, 3600]")
        if not 0 < self.timeout_s <= 120:
            raise ValueError("coach.timeout_s must be in (0, 120]")
        if not 500 <= self.max_transcript_chars <= 200_000:
            raise ValueError("coach.max_transcript_chars must be in [500, 200000]")
        if len(self.objectives) > 50 or any(not o.strip() for o in self.objectives):
            raise ValueError("coach.objectives: at most 50, none empty")
        if self.enabled and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("coach.base_url must be an http(s) URL")
