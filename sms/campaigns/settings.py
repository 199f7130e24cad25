"""The `[campaigns]` config section: how the campaign scheduler runs and what sends cost."""

from __future__ import annotations

import msgspec


class CampaignSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Run the scheduler inside `leadline serve`; false for a process that must not send.
    run_scheduler: bool = True
    # Seconds between passes (a pass also runs at start).
    tick_s: float = 30.0
    # Enrollments claimed per batch, and batches at most per pass (bounds one pass).
    batch: int = 200
    max_batches_per_pass: int = 1000
    # A claimed enrollment whose process died is claimable again after this long.
    lease_s: float = 120.0
    # Report cost: price of one SMS segment and of one email, in the account currency.
    sms_segment_price: float = 0.0079
    email_price: float = 0.0
    # Link to a lead in handoff alerts; {phone} is replaced by the E.164 number. Empty:
    # the alert carries the number only.
    lead_url: str = ""

    def __post_init__(self) -> None:
        if not 0.05 <= self.tick_s <= 3600:
            raise ValueError("campaigns.tick_s must be between 0.05 and 3600")
        if not 1 <= self.batch <= 10_000 or not 1 <= self.max_batches_per_pass <= 100_000:
            raise ValueError("campaigns.batch must be 1..10000, max_batches_per_pass 1..100000")
        if not self.lease_s > 0:
            raise ValueError("campaigns.lease_s must be positive")
        if self.sms_segment_price < 0 or self.email_price < 0:
            raise ValueError("campaigns prices must not be negative")
