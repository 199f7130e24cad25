"""X-Twilio-Signature: genuine requests pass, forged or altered ones do not."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from multidict import MultiDict

from telephony.twilio.signature import SIGNATURE_HEADER, SignatureChecker

TOKEN = "12345"
URL = "https://leadline.example.com/twilio/voice"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def by_hand(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, independently of the SDK."""
    s = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "X-Twilio-Signature"


def test_sign_matches_the_documented_algorithm() -> None:
    checker = SignatureChecker(TOKEN)
    assert checker.sign(URL, PARAMS) == by_hand(TOKEN, URL, PARAMS)


def test_valid_webhook() -> None:
    checker = SignatureChecker(TOKEN)
    assert checker.valid(URL, PARAMS, by_hand(TOKEN, URL, PARAMS))


def test_forged_signature() -> None:
    checker = SignatureChecker(TOKEN)
    assert not checker.valid(URL, PARAMS, by_hand("not-the-token", URL, PARAMS))
    assert not checker.valid(URL, PARAMS, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert not checker.valid(URL, PARAMS, "")
    assert not checker.valid(URL, PARAMS, None)


def test_tampered_or_added_param() -> None:
    checker = SignatureChecker(TOKEN)
    sig = checker.sign(URL, PARAMS)
    assert not checker.valid(URL, {**PARAMS, "From": "+19999999999"}, sig)
    assert not checker.valid(URL, {**PARAMS, "Extra": "1"}, sig)
    without = dict(PARAMS)
    del without["Digits"]
    assert not checker.valid(URL, without, sig)


def test_wrong_url() -> None:
    checker = SignatureChecker(TOKEN)
    sig = checker.sign(URL, PARAMS)
    assert not checker.valid("http://leadline.example.com/twilio/voice", PARAMS, sig)
    assert not checker.valid("https://leadline.example.com/twilio/voice2", PARAMS, sig)
    assert not checker.valid("https://evil.example.com/twilio/voice", PARAMS, sig)
    assert not checker.valid(URL + "?x=1", PARAMS, sig)


def test_default_port_either_way() -> None:
    """Twilio is inconsistent about :443 in what it signs; both forms pass."""
    checker = SignatureChecker(TOKEN)
    sig = checker.sign("https://leadline.example.com:443/twilio/voice", PARAMS)
    assert checker.valid(URL, PARAMS, sig)


def test_websocket_upgrade_signs_the_wss_url_without_params() -> None:
    checker = SignatureChecker(TOKEN)
    ws_url = "wss://leadline.example.com/twilio/stream"
    sig = checker.sign(ws_url, {})
    assert sig == by_hand(TOKEN, ws_url, {})
    assert checker.valid(ws_url, {}, sig)
    assert checker.valid(ws_url, None, sig)
    assert not checker.valid("wss://leadline.example.com/twilio/other", {}, sig)
    assert not checker.valid(ws_url, {"a": "b"}, sig)


def test_repeated_form_keys_are_all_signed() -> None:
    checker = SignatureChecker(TOKEN)
    both = MultiDict([("Tag", "a"), ("Tag", "b"), ("From", "+1")])
    sig = checker.sign(URL, both)
    assert checker.valid(URL, both, sig)
    assert not checker.valid(URL, MultiDict([("Tag", "a"), ("From", "+1")]), sig)


def test_empty_token_refused() -> None:
    with pytest.raises(ValueError):
        SignatureChecker("")
