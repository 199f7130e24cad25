"""Tunables of the outbound dialer: the `[dialer]` section."""

from __future__ import annotations

from typing import Literal

import msgspec

DEFAULT_VOICEMAIL = (
    "Hi {firstName}, this is the scheduling assistant for {practiceName}. "
    "Please call us back at {callerId} when it suits you. Thank you, goodbye."
)


class DialerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # `leadline serve` runs the queue consumer beside its calls only when true.
    enabled: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "leadline-calls"
    # BullMQ key prefix; must match the Node producers' `prefix` option.
    prefix: str = "bull"
    # Calls in flight per process (each holds one job and its lock until the call ends).
    concurrency: int = 10
    via: Literal["twilio", "livekit"] = "twilio"
    # Number the calls come from (E.164) unless a job names its own `callerId`.
    caller_id: str = ""
    # A call still up after this long is hung up by us.
    max_call_s: int = 900
    # Seconds Twilio lets the callee's phone ring before `no-answer`.
    ring_timeout_s: int = 30
    # Left on an answering machine after the beep; {firstName}, {lastName},
    # {practiceName}, {callerId} are filled in from the job.
    voicemail_message: str = DEFAULT_VOICEMAIL
    # Names a job's `script` may take; an absent or unknown one gets `default_script`.
    scripts: tuple[str, ...] = ("default",)
    default_script: str = "default"
    # BullMQ worker lock: held and renewed (every half of it) while the call is up; a
    # worker that dies lets it lapse, and the job is redelivered after `stalled_interval_ms`.
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    # Largest job data accepted (encoded JSON bytes); bigger jobs fail unretried.
    max_job_bytes: int = 16_384
    # How often a worker re-reads a call's state from SQL when the callbacks reach
    # another process (the same process wakes at once).
    poll_s: float = 1.0
    # Optional: POST each outcome to this URL, signed with HMAC-SHA256 of the body
    # (`X-Leadline-Signature: sha256=<hex>`), retried with backoff.
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_attempts: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise ValueError("concurrency must be between 1 and 1000")
        if not 10 <= self.max_call_s <= 4 * 3600:
            raise ValueError("max_call_s must be between 10 and 14400")
        if not 5 <= self.ring_timeout_s <= 600:
            raise ValueError("ring_timeout_s must be between 5 and 600")
        if self.lock_duration_ms < 1000 or self.stalled_interval_ms < 1000:
            raise ValueError("lock_duration_ms and stalled_interval_ms must be >= 1000")
        if not 0.05 <= self.poll_s <= 30:
            raise ValueError("poll_s must be between 0.05 and 30")
        if self.default_script not in self.scripts:
            raise ValueError("default_script must be one of scripts")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (the receiver checks it)")
        if not 1 <= self.webhook_attempts <= 20:
            raise ValueError("webhook_attempts must be between 1 and 20")
