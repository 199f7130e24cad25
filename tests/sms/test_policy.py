"""Failed sends: the Twilio error-code table and the retry backoff."""

from __future__ import annotations

import random

import pytest

from sms.policy import classify_failure, classify_status_error, retry_delay


@pytest.mark.parametrize(("status", "code", "action", "lead_status"), [
    (400, 21610, "opted_out", None),
    (400, 21211, "fail", "wrong_number"),
    (400, 21614, "fail", "wrong_number"),
    (400, 30006, "fail", None),
    (400, 30005, "fail", None),
    (400, 30007, "fail", None),
    (400, 30003, "retry", None),
    (429, 20429, "retry", None),
    (500, 20500, "retry", None),
    (503, None, "retry", None),
    (400, 21606, "fail", None),  # From is not a number of this account: will not change
    (401, 20003, "fail", None),
])
def test_codes(status: int, code: int | None, action: str, lead_status: str | None) -> None:
    verdict = classify_failure(http_status=status, error_code=code, message="m")
    assert (verdict.action, verdict.lead_status) == (action, lead_status)
    assert verdict.error_code == code


def test_a_known_code_wins_over_the_http_status() -> None:
    assert classify_failure(http_status=500, error_code=21610).action == "opted_out"


def test_no_answer_is_retried() -> None:
    verdict = classify_failure(http_status=None, error_code=None, transport_error=True,
                               message="timeout")
    assert verdict.action == "retry"
    assert "timeout" in verdict.reason


def test_status_callback_errors() -> None:
    assert classify_status_error(None) is None
    assert classify_status_error(30003) is None  # delivery is not retried from a callback
    assert classify_status_error(99999) is None
    opted = classify_status_error(21610)
    assert opted is not None and opted.action == "opted_out"


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, base_s=5, cap_s=60, rng=rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        exp = min(60, 5 * 2 ** (n - 1))
        assert exp / 2 <= d <= exp
    assert max(delays) <= 60
    spread = {round(retry_delay(3, base_s=5, cap_s=60, rng=rng), 6) for _ in range(20)}
    assert len(spread) > 10  # jitter: concurrent retries do not line up
