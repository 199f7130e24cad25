"""The `[nlu]` section: what the call-side language helpers need to know about the business."""

from __future__ import annotations

import msgspec


class NluSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Trade whose triage rules apply (plumbing, hvac, electrical, medical, dental, legal,
    # general = every rule). Life-safety rules apply whatever this says.
    industry: str = "general"
    # IANA zone of the business: "tomorrow at 3" is 3 p.m. there.
    zone: str = "UTC"

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from agents.nlu.triage import INDUSTRIES

        if self.industry not in INDUSTRIES:
            raise ValueError(f"industry must be one of {', '.join(INDUSTRIES)}")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"zone {self.zone!r} is not an IANA time zone") from exc
