"""Unsubscribe tokens: short, HMAC-signed, naming the lead.

A token is `<digits of the E.164 phone>.<first 16 bytes of HMAC-SHA256, base64url>`:
about 35 characters of [0-9A-Za-z_-.], so the `List-Unsubscribe` URL stays one unbroken
header word (no RFC 2047 encoding, no folding inside the URL — Gmail ignores the header
otherwise). The phone names the lead because the lead is keyed by phone and an opt-out
is recorded against it; 128 bits of MAC make forging one infeasible. Tokens do not
expire: CAN-SPAM wants the link to work for at least 30 days after sending, and a late
click must still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_TOKEN = re.compile(r"^(\d{8,15})\.([A-Za-z0-9_-]{22})$")
_CONTEXT = b"leadline-unsubscribe-v1:"


def _mac(secret: str, digits: str) -> str:
    mac = hmac.new(secret.encode(), _CONTEXT + digits.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make_token(secret: str, phone: str) -> str:
    """Token for the lead with E.164 `phone`."""
    if not secret:
        raise ValueError("an unsubscribe secret is required")
    digits = phone.lstrip("+")
    if not digits.isdigit():
        raise ValueError(f"not an E.164 phone: {phone!r}")
    return f"{digits}.{_mac(secret, digits)}"


def read_token(secret: str, token: str) -> str | None:
    """The E.164 phone a genuine token names, or None (malformed or forged)."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    m = _TOKEN.match(token.strip())
    if m is None:
        return None
    if not hmac.compare_digest(m.group(2), _mac(secret, m.group(1))):
        return None
    return "+" + m.group(1)
