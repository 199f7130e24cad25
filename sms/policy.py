"""What a failed send means: retry later, give up, or treat the recipient as opted out.

Sans-I/O. The table of Twilio error codes is data (`twilio_errors.toml`, sources
cited there); this module turns a failure (HTTP status, Twilio code, or a
transport error such as a timeout) into a `Verdict`, and an attempt number into
the next retry delay.
"""

from __future__ import annotations

import random
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import msgspec

Action = Literal["retry", "fail", "opted_out"]


class Verdict(msgspec.Struct, frozen=True):
    action: Action
    reason: str
    error_code: int | None = None
    # The lead's new status, when the failure says something about the number itself.
    lead_status: str | None = None


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    action: Action
    reason: str
    lead_status: str | None = None


class _Http(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    retry: list[int]
    retry_5xx: bool = True


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    codes: dict[str, _Rule]
    http: _Http


@lru_cache(maxsize=1)
def _table() -> tuple[dict[int, _Rule], _Http]:
    raw: Any = tomllib.loads(
        resources.files("sms").joinpath("twilio_errors.toml").read_text(encoding="utf-8"))
    table = msgspec.convert(raw, _Table)
    return {int(code): rule for code, rule in table.codes.items()}, table.http


def classify_failure(
    *, http_status: int | None, error_code: int | None, transport_error: bool = False,
    message: str = "",
) -> Verdict:
    """The verdict on one failed attempt.

    A known Twilio code decides first (21610 is an opt-out whatever the HTTP status);
    then the HTTP status; a request that never got an answer (timeout, connection
    refused or reset) is retried, since Twilio may simply not have been reached.
    """
    codes, http = _table()
    if error_code is not None and error_code in codes:
        rule = codes[error_code]
        return Verdict(rule.action, rule.reason, error_code, rule.lead_status)
    if transport_error or http_status is None:
        return Verdict("retry", f"no answer from Twilio: {message}"[:300], error_code)
    if http_status in http.retry or (http.retry_5xx and 500 <= http_status < 600):
        return Verdict("retry", f"HTTP {http_status}: {message}"[:300], error_code)
    return Verdict("fail", f"HTTP {http_status}: {message}"[:300], error_code)


def classify_status_error(error_code: int | None) -> Verdict | None:
    """A failure reported later by a status callback (the send was accepted, delivery
    failed). Only the codes that change what we know about the recipient matter here:
    an opt-out or an unusable number; delivery is not retried from a callback."""
    if error_code is None:
        return None
    rule = _table()[0].get(error_code)
    if rule is None or rule.action == "retry":
        return None
    return Verdict(rule.action, rule.reason, error_code, rule.lead_status)


def retry_delay(attempt: int, *, base_s: float, cap_s: float,
                rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`: capped exponential backoff with "equal
    jitter" (half fixed, half random), so retries of many rows after a Twilio outage
    spread out instead of arriving together, yet never come back at once."""
    exp = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    r = (rng or random).random()
    return exp / 2 + r * exp / 2
