"""Tunables of the outbox sender: the `[sms_outbox]` section.

Who we send as, how fast and what we say live in `[sms]` (agents/chat/settings.py,
shared with the text agent); this section is only about delivery mechanics.
"""

from __future__ import annotations

import msgspec


class OutboxSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Run the sender inside `leadline serve` (off: another process drains the outbox).
    enabled: bool = True
    # How often the outbox is polled when nothing woke the sender (new rows wake it).
    poll_s: float = 1.0
    # Rows claimed per poll, and sends in flight at once (across all sender numbers).
    batch: int = 50
    concurrency: int = 8
    # A claimed row whose sender died is claimable again after this long. Must exceed the
    # longest send (throttle wait + REST timeout), or a slow send would be claimed twice.
    lease_s: float = 120.0
    # Transient failures (5xx, timeouts, 30003) are retried this many attempts in all.
    max_attempts: int = 6
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 900.0
    # One REST call to Twilio, connect to answer.
    send_timeout_s: float = 10.0
    # Tokens a sender may save up (1: never faster than max_mps, even after a pause).
    burst: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.poll_s <= 60:
            raise ValueError("sms_outbox.poll_s must be in (0, 60]")
        if not 1 <= self.batch <= 1000 or not 1 <= self.concurrency <= 256:
            raise ValueError("sms_outbox.batch must be 1..1000 and concurrency 1..256")
        if self.max_attempts < 1:
            raise ValueError("sms_outbox.max_attempts must be at least 1")
        if not 0 < self.send_timeout_s <= 120:
            raise ValueError("sms_outbox.send_timeout_s must be in (0, 120]")
        if self.lease_s <= self.send_timeout_s:
            raise ValueError("sms_outbox.lease_s must exceed send_timeout_s")
        if self.backoff_base_s <= 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("sms_outbox backoff: base > 0 and cap >= base")
        if self.burst < 1:
            raise ValueError("sms_outbox.burst must be at least 1")
