"""Phone numbers as one canonical string (E.164), so a caller is one row however they dial in.

Twilio sends E.164 already, but CSV imports, SMS and ops type numbers by hand:
"(415) 555-2671", "+1 415-555-2671" and "4155552671" must be the same caller.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import phonenumbers

# Longer input is garbage or an attack; refuse it before the parser sees it.
MAX_RAW_LENGTH = 64
# E.164 numbers this process produced lately, as ints (~60 bytes each with the dict
# slot). Layers normalise the same number twice (the CSV importer checks a whole file
# first, then the store checks each batch), and a parse costs ~100-200 µs: a 100k-row
# import spent a third of its time re-validating numbers it had just made. Bounded (a
# large import fits; ~8 MB at most), oldest out.
_PRODUCED_MAX = 1 << 17
_produced: dict[int, None] = {}


def _e164_key(text: str) -> int | None:
    """The number of an exact E.164 spelling ("+" then ASCII digits, no leading zero),
    else None: only a string that is its own canonical form may skip the parser."""
    if not 2 <= len(text) <= 16 or text[0] != "+" or text[1] == "0":
        return None
    digits = text[1:]
    return int(digits) if digits.isascii() and digits.isdigit() else None


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number we can store; the message says why, quoting it."""


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return `raw` as E.164 ("+14155552671") or raise `InvalidPhoneNumber`.

    `default_region` applies to national numbers without a "+" prefix. Only
    numbers in a real numbering plan range pass (`is_valid_number`): a
    fictional 555-01xx number or Twilio's "anonymous" caller ID has no caller
    memory to attach to.
    """
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(f"phone number must be text, got {type(raw).__name__}")
    key = _e164_key(raw)
    if key is not None and key in _produced:  # "+…" parses the same in every region
        return raw
    e164 = _normalize(raw.strip(), default_region.upper())
    key = int(e164[1:])
    if key not in _produced:
        if len(_produced) >= _PRODUCED_MAX:
            # Another thread may evict at the same moment; a lost eviction is harmless.
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del _produced[next(iter(_produced))]
        _produced[key] = None
    return e164


@lru_cache(maxsize=4096)
def _normalize(raw: str, region: str) -> str:
    shown = repr(raw if len(raw) <= MAX_RAW_LENGTH else raw[:MAX_RAW_LENGTH] + "…")
    if not raw:
        raise InvalidPhoneNumber("phone number is empty")
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidPhoneNumber(f"phone number too long ({len(raw)} chars): {shown}")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        reason = str(exc).split(") ", 1)[-1]  # drop the "(1) " error-type prefix
        raise InvalidPhoneNumber(f"not a phone number: {shown}: {reason}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber(
            f"not a possible phone number: {shown} (wrong length for its country)"
        )
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(
            f"not a valid phone number: {shown} (no such number range"
            f" for country code +{number.country_code})"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
