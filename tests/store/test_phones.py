"""Phone numbers to E.164, or a clear refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.phones import InvalidPhoneNumber, normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "want"),
    [
        ("+14155552671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("  +1 415 555 2671  ", "US", "+14155552671"),
        ("+15005550006", "US", "+15005550006"),  # Twilio's test number
        ("020 7183 8750", "GB", "+442071838750"),
        ("+44 20 7183 8750", "US", "+442071838750"),
        ("06 12 34 56 78", "fr", "+33612345678"),
        ("tel:+1-415-555-2671", "US", "+14155552671"),
        ("+１ ４１５ ５５５ ２６７１", "US", "+14155552671"),  # full-width digits
    ],
)
def test_valid_numbers_become_e164(raw: str, region: str, want: str) -> None:
    assert normalize_phone(raw, region) == want


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("anonymous", "not a phone number"),
        ("+266696687", "not a possible"),  # Twilio's "anonymous" caller id
        ("12", "not a phone number|not a possible"),
        ("+1 555 123 4567", "not a valid"),  # fictional 555 range
        ("+999 1234567", "not a phone number|not a valid"),
        ("4155552671" * 10, "too long"),
        ("Robert'); DROP TABLE callers;--", "not a phone number"),
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=reason):
        normalize_phone(raw)


def test_the_error_quotes_the_input_and_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'anonymous'"):
        normalize_phone("anonymous")


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidPhoneNumber, match="text"):
        normalize_phone(4155552671)  # type: ignore[arg-type]


@given(st.text(max_size=80), st.sampled_from(["US", "GB", "DE", "IN", "ZZ"]))
def test_any_text_is_normalised_or_refused_and_results_are_fixed_points(
    raw: str, region: str
) -> None:
    try:
        e164 = normalize_phone(raw, region)
    except InvalidPhoneNumber:
        return
    assert e164.startswith("+") and e164[1:].isdigit()
    assert normalize_phone(e164, "US") == e164


@pytest.mark.parametrize(
    "lookalike",
    ["+014155552671", "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0662\u0666\u0667\u0661",
     " +14155552671", "+1 4155552671", "+1415555267１"],
)
def test_only_the_exact_canonical_spelling_skips_the_parser(lookalike: str) -> None:
    """A number produced once is remembered; a different spelling of it still goes through
    the parser, so what comes back is always canonical (or refused)."""
    assert normalize_phone("(415) 555-2671") == "+14155552671"
    try:
        result = normalize_phone(lookalike)
    except InvalidPhoneNumber:
        return
    assert result == "+14155552671"
