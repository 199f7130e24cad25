"""The API's sans-I/O parts: the rate limiter on an injected clock, cursors, error fields."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.api import pagination
from ops.api.errors import ApiError, from_validation
from ops.api.ratelimit import RateLimiter
from ops.api.schemas import LeadCreate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = Clock()
    rl = RateLimiter(2.0, 3, clock=clock)
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.take("a")
    assert wait == pytest.approx(0.5) and RateLimiter.retry_after(wait) == "1"
    assert rl.take("b") == 0.0  # another token has its own bucket
    clock.t += 0.5
    assert rl.take("a") == 0.0
    assert rl.take("a") > 0
    clock.t += 100  # refills up to the burst, not beyond
    assert [rl.take("a") for _ in range(4)].count(0.0) == 3
    assert rl.refused == 3


def test_tracked_tokens_are_bounded():
    rl = RateLimiter(1.0, 1, max_keys=10, clock=Clock())
    for key in range(1000):
        rl.take(key)
    assert len(rl._buckets) == 10


@given(st.one_of(st.integers(min_value=0, max_value=2**62), st.text(max_size=50)))
def test_cursor_round_trips(key):
    assert pagination.decode("leads", pagination.encode("leads", key)) == key


@given(st.text(max_size=500))
def test_any_string_is_a_cursor_or_a_400_naming_it(raw):
    try:
        pagination.decode("leads", raw)
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "cursor"


def test_a_cursor_of_another_list_is_refused():
    with pytest.raises(ApiError) as info:
        pagination.decode("calls", pagination.encode("leads", 5))
    assert info.value.field == "cursor"


@pytest.mark.parametrize(("raw", "field", "code"), [
    (b'{"phone": 1}', "phone", "invalid"),
    (b'{"phone": "+1", "zzz": 1}', "zzz", "invalid"),
    (b"{}", "phone", "invalid"),
    (b'{"phone": "+1", "attributes": {"a": 2}}', "attributes", "invalid"),
    (b"{nope", None, "malformed_json"),
])
def test_validation_errors_name_the_field(raw, field, code):
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as info:
        msgspec.json.decode(raw, type=LeadCreate)
    err = from_validation(info.value)
    assert err.status == 400 and err.code == code
    assert (err.field or "").startswith(field or "") and (field is not None) == bool(err.field)
