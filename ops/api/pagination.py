"""Opaque cursors for keyset pages.

A cursor is the sort key of the last row a page returned, tagged with the list it
belongs to and base64url-encoded: clients treat it as opaque, and a cursor of one list
handed to another, edited or truncated, is a 400 rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii

from ops.api.errors import bad_request


def encode(kind: str, key: int | str | None) -> str | None:
    if key is None:
        return None
    raw = f"{kind}:{'i' if isinstance(key, int) else 's'}:{key}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(kind: str, cursor: str | None) -> int | str | None:
    """The key inside `cursor` (None for none); 400 naming `cursor` when it is not one
    of ours for this list."""
    if cursor is None:
        return None
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, typ, key = raw.split(":", 2)
        if tag != kind or typ not in ("i", "s"):
            raise ValueError("another list's cursor")
        return int(key) if typ == "i" else key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("cursor is not a cursor of this list (pass next_cursor as given)",
                          "cursor") from None
