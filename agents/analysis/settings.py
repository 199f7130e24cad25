"""The `[analysis]` section: the end-of-call record and the owner's new-lead notice."""

from __future__ import annotations

from typing import Literal

import msgspec

NoticeChannel = Literal["sms", "email"]


class AnalysisSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Write an analysis record at the end of every call (inbound and outbound).
    enabled: bool = True
    # An OpenAI-compatible Chat Completions endpoint for the summary; empty: extractive.
    summary_base_url: str = ""
    summary_model: str = "gpt-4o-mini"
    summary_api_key: str = ""
    # A model summary later than this is dropped for the extractive one.
    summary_timeout_s: float = 6.0
    # Caller sentences the extractive summary keeps.
    summary_sentences: int = 3
    # Notify the business owner of a new lead (a caller never seen before, or an
    # outbound contact who booked or asked for a callback).
    notify_new_leads: bool = True
    notify_channels: list[NoticeChannel] = msgspec.field(
        default_factory=lambda: ["sms", "email"])

    def __post_init__(self) -> None:
        if not 0 < self.summary_timeout_s <= 60:
            raise ValueError("analysis.summary_timeout_s must be in (0, 60]")
        if not 1 <= self.summary_sentences <= 10:
            raise ValueError("analysis.summary_sentences must be in [1, 10]")
        if len(set(self.notify_channels)) != len(self.notify_channels):
            raise ValueError("analysis.notify_channels: a channel is listed twice")

    @property
    def model_configured(self) -> bool:
        return bool(self.summary_base_url.strip())
