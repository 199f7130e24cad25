"""Tunables of the telephony layer: the `[twilio]` section."""

from __future__ import annotations

import msgspec


class TwilioSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account_sid: str = ""
    auth_token: str = ""
    # Public host (and optional path prefix) Twilio reaches us at, e.g.
    # "leadline.example.com". Empty: taken from the request's Host header.
    public_url: str = ""
    # Only an explicit `false` turns signature checks off; /health reports it.
    validate_signatures: bool = True
    # Largest Media Streams message accepted, in bytes.
    max_message_bytes: int = 65_536
    # Twilio REST API base (empty: Twilio's own). Tests point it at a fake.
    api_base_url: str = ""
