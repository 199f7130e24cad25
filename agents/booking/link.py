"""Booking-link tokens: a signed name of the business whose calendar the link opens,
and a short-lived form token the page embeds so a POST comes from a page we served.

Link token: `<base64url(business)>.<HMAC-SHA256 first 16 bytes, base64url>` (the empty
business is the default calendar). It does not expire: a link texted in a drip must
keep working. Form token: `<unix expiry>.<MAC over link + expiry>`, valid for an hour.
The style is sms/email/tokens.py's (context-prefixed HMAC, compare_digest).

Print a link's path: `python -m agents.booking.link SECRET [BUSINESS]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import sys

_LINK = re.compile(r"^([A-Za-z0-9_-]{0,200})\.([A-Za-z0-9_-]{22})$")
_FORM = re.compile(r"^(\d{10,12})\.([A-Za-z0-9_-]{22})$")
_LINK_CONTEXT = b"leadline-booking-link-v1:"
_FORM_CONTEXT = b"leadline-booking-form-v1:"
FORM_TTL_S = 3600


def _mac(secret: str, context: bytes, payload: str) -> str:
    if not secret:
        raise ValueError("a booking link secret is required")
    digest = hmac.new(secret.encode(), context + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def make_link_token(secret: str, business: str = "") -> str:
    return f"{_b64(business)}.{_mac(secret, _LINK_CONTEXT, business)}"


def read_link_token(secret: str, token: str) -> str | None:
    """The business a genuine link token names ("" = default), or None."""
    if not secret or not isinstance(token, str) or len(token) > 240:
        return None
    m = _LINK.match(token)
    if m is None:
        return None
    try:
        raw = m.group(1)
        business = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(m.group(2), _mac(secret, _LINK_CONTEXT, business)):
        return None
    return business


def make_form_token(secret: str, link: str, now: float) -> str:
    expiry = int(now) + FORM_TTL_S
    return f"{expiry}.{_mac(secret, _FORM_CONTEXT, f'{link}:{expiry}')}"


def form_token_ok(secret: str, link: str, token: str, now: float) -> bool:
    if not secret or not isinstance(token, str) or len(token) > 64:
        return False
    m = _FORM.match(token)
    if m is None or int(m.group(1)) < now or int(m.group(1)) > now + FORM_TTL_S + 60:
        return False
    return hmac.compare_digest(m.group(2), _mac(secret, _FORM_CONTEXT,
                                                f"{link}:{m.group(1)}"))


if __name__ == "__main__":  # pragma: no cover - a helper for operators
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m agents.booking.link SECRET [BUSINESS]")
    print(f"/book/{make_link_token(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else '')}")
