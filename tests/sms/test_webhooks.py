"""Twilio Messaging webhook forms → structs, and refusals with a countable kind."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.webhooks import (
    ERROR_KINDS,
    KNOWN_STATUSES,
    InboundSms,
    WebhookError,
    parse_inbound,
    parse_status,
)

SID = "SM" + "a1" * 16


def form(**extra: str) -> dict[str, str]:
    base = {"MessageSid": SID, "AccountSid": "AC" + "0" * 32, "From": "+14155552671",
            "To": "+14155550123", "Body": "Is this still available?", "NumMedia": "0",
            "NumSegments": "1", "ApiVersion": "2010-04-01"}
    base.update(extra)
    return base


def test_a_plain_message() -> None:
    msg = parse_inbound(form())
    assert msg == InboundSms(message_sid=SID, from_number="+14155552671",
                             to_number="+14155550123", body="Is this still available?",
                             account_sid="AC" + "0" * 32)


def test_from_is_normalised_and_unknown_fields_are_kept_aside() -> None:
    msg = parse_inbound(form(From="(415) 555-2671", FromCity="SAN FRANCISCO",
                             SomethingNew="x"))
    assert msg.from_number == "+14155552671"
    assert msg.unknown_fields == ("FromCity", "SomethingNew")


@pytest.mark.parametrize("body", [
    "", "👋 hi 🎉", "Привет, это ещё актуально?", "x" * 1600, "long " * 2000,
])
def test_bodies_are_stored_whole(body: str) -> None:
    assert parse_inbound(form(Body=body)).body == body


def test_a_body_no_handset_could_send_is_refused() -> None:
    with pytest.raises(WebhookError) as err:
        parse_inbound(form(Body="x" * 100_001))
    assert err.value.kind == "too_large"


def test_missing_body_is_an_empty_message() -> None:
    f = form()
    del f["Body"]
    assert parse_inbound(f).body == ""


def test_media_and_segments() -> None:
    msg = parse_inbound(form(NumMedia="2", MediaUrl0="https://api.twilio.com/m/0",
                             MediaUrl1="https://api.twilio.com/m/1",
                             MediaUrl5="https://ignored", NumSegments="3",
                             MediaContentType0="image/jpeg"))
    assert msg.media_urls == ("https://api.twilio.com/m/0", "https://api.twilio.com/m/1")
    assert msg.num_segments == 3
    assert msg.unknown_fields == ()


def test_bad_counters_fall_back() -> None:
    msg = parse_inbound(form(NumMedia="lots", NumSegments="-4"))
    assert (msg.num_media, msg.num_segments) == (0, 1)


@pytest.mark.parametrize(("given", "expected"), [("STOP", "STOP"), ("help", "HELP"),
                                                 ("Start", "START"), ("MAYBE", None)])
def test_opt_out_type(given: str, expected: str | None) -> None:
    assert parse_inbound(form(OptOutType=given)).opt_out_type == expected


@pytest.mark.parametrize(("drop", "kind"), [("MessageSid", "missing_field"),
                                            ("From", "missing_field")])
def test_missing_keys_are_refused(drop: str, kind: str) -> None:
    f = form()
    del f[drop]
    with pytest.raises(WebhookError) as err:
        parse_inbound(f)
    assert err.value.kind == kind


def test_legacy_sid_field_is_accepted() -> None:
    f = form()
    del f["MessageSid"]
    f["SmsMessageSid"] = SID
    assert parse_inbound(f).message_sid == SID


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("MessageSid", "'; drop table", "bad_sid"),
    ("MessageSid", "SM" + "x" * 200, "bad_sid"),
    ("From", "not a number", "bad_from"),
    ("From", "+1555", "bad_from"),
])
def test_bad_keys_are_refused(field: str, value: str, kind: str) -> None:
    with pytest.raises(WebhookError) as err:
        parse_inbound(form(**{field: value}))
    assert err.value.kind == kind


def test_a_to_number_that_is_not_a_phone_is_kept_as_sent() -> None:
    assert parse_inbound(form(To="MYBRAND")).to_number == "MYBRAND"


@given(st.dictionaries(st.sampled_from(["MessageSid", "From", "To", "Body", "NumMedia",
                                        "NumSegments", "OptOutType", "MediaUrl0", "X"]),
                       st.text(max_size=80), max_size=9))
@settings(max_examples=300, deadline=None)
def test_any_form_parses_or_is_refused_with_a_known_kind(f: dict[str, str]) -> None:
    try:
        msg = parse_inbound(f)
    except WebhookError as exc:
        assert exc.kind in ERROR_KINDS
    else:
        assert msg.from_number.startswith("+")
        assert msg.body == f.get("Body", "")


def test_status_report() -> None:
    report = parse_status({"MessageSid": SID, "MessageStatus": "Undelivered",
                           "ErrorCode": "30003", "To": "+14155552671"})
    assert (report.message_sid, report.status, report.error_code) == (SID, "undelivered", 30003)


def test_status_without_error_code() -> None:
    assert parse_status({"MessageSid": SID, "MessageStatus": "delivered"}).error_code is None


@pytest.mark.parametrize(("f", "kind"), [
    ({"MessageStatus": "sent"}, "missing_field"),
    ({"MessageSid": SID}, "missing_field"),
    ({"MessageSid": SID, "MessageStatus": "teleported"}, "bad_status"),
    ({"MessageSid": "nope", "MessageStatus": "sent"}, "bad_sid"),
])
def test_bad_status_reports(f: dict[str, str], kind: str) -> None:
    with pytest.raises(WebhookError) as err:
        parse_status(f)
    assert err.value.kind == kind


def test_every_twilio_status_we_rank_is_known() -> None:
    assert {"queued", "sent", "delivered", "undelivered", "failed", "read"} <= KNOWN_STATUSES
