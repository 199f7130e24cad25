"""Job validation: typed, bounded, total (any JSON in → a CallJob or JobRejected out)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.dialer.jobs import JobRejected, fill_template, parse_job

KW: dict[str, Any] = {"default_caller_id": "+14155550100", "scripts": ("default", "recall"),
                      "default_script": "default", "max_bytes": 16_384}


def test_a_good_job() -> None:
    job = parse_job("call", {"campaignId": 7, "step": 2, "script": "recall",
                             "callerId": "+1 (415) 555-0111", "via": "twilio",
                             "contact": {"firstName": " Ada\x00 ", "phone": "(415) 555-2671",
                                         "practiceName": "Bay Dental", "extra": "kept out"}},
                    **KW)
    assert job.phone == "+14155552671" and job.caller_id == "+14155550111"
    assert job.script == "recall" and job.campaign_id == "7" and job.step == 2
    assert job.contact.first_name == "Ada"


def test_unknown_script_gets_the_default_and_caller_id_falls_back() -> None:
    job = parse_job("call", {"script": "nope", "contact": {"phone": "+14155552671"}}, **KW)
    assert job.script == "default" and job.caller_id == "+14155550100"


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("sms", {}, "unknown job name 'sms'"),
    (None, {}, "unknown job name"),
    ("call", "text", "invalid job data: expected an object, got str"),
    ("call", {"contact": {"phone": "12"}}, "invalid phone number"),
    ("call", {"contact": {"phone": "+1" + "5" * 80}}, "invalid phone number: longer than 64"),
    ("call", {"contact": {"phone": "+14155552671"}, "step": -1}, "invalid job data: step"),
    ("call", {"contact": {"phone": "+14155552671"}, "callerId": "x"}, "invalid caller id"),
    ("call", {"contact": {"phone": "+14155552671", "state": 5}}, "invalid job data: Expected"),
])
def test_rejections_say_why(name: str | None, data: Any, reason: str) -> None:
    with pytest.raises(JobRejected) as exc:
        parse_job(name, data, **KW)
    assert exc.value.reason.startswith(reason), exc.value.reason


def test_no_caller_id_anywhere() -> None:
    with pytest.raises(JobRejected, match="no caller id"):
        parse_job("call", {"contact": {"phone": "+14155552671"}},
                  **{**KW, "default_caller_id": ""})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=5),
    max_leaves=20)
_contacts = st.fixed_dictionaries({"phone": st.one_of(st.text(max_size=20), _json)},
                                  optional={"firstName": _json, "state": _json})


@settings(max_examples=200, deadline=None)
@given(st.one_of(_json, st.fixed_dictionaries({"contact": _contacts},
                                              optional={"step": _json, "via": _json,
                                                        "script": _json, "callerId": _json})))
def test_any_data_is_a_job_or_a_clear_rejection(data: Any) -> None:
    try:
        job = parse_job("call", data, **KW)
    except JobRejected as exc:
        assert exc.reason and len(exc.reason) < 2000
    else:
        assert job.phone.startswith("+") and job.script in KW["scripts"]


def test_template_fills_known_names_only() -> None:
    text = "Hi {firstName}, call {callerId} {unknown} {0.__class__} {"
    out = fill_template(text, {"firstName": "Ada", "callerId": "+1415"})
    assert out == "Hi Ada, call +1415 {unknown} {0.__class__} {"
