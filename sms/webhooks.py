"""Twilio Messaging webhooks as data: the inbound message form and the status callback.

Sans-I/O: a form (mapping of str → str, as aiohttp parsed it) goes in, a frozen
struct or a `WebhookError` comes out. The HTTP shell decides the status code
and counts the error by its `kind`.

What Twilio sends (https://www.twilio.com/docs/messaging/guides/webhook-request):
MessageSid, AccountSid, MessagingServiceSid, From, To, Body, NumMedia,
NumSegments, MediaUrl{N}/MediaContentType{N}, and OptOutType (STOP/START/HELP)
when Advanced Opt-Out is on for a Messaging Service. Twilio adds fields over
time (FromCity, ApiVersion, ReferralNumMedia …), so unknown fields are kept
aside, never an error. A body is stored whole however long: Twilio
concatenates up to 1,600 characters and an MMS text can be longer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from store.models import MESSAGE_STATUS_RANK
from store.phones import InvalidPhoneNumber, normalize_phone

# Twilio message SIDs: SM (SMS), MM (MMS), plus the legacy SMS prefix; 32 hex digits.
# Checked loosely (prefix letters + alphanumerics, bounded): the SID is our idempotency
# key, so it must be a sane token, but Twilio owns its exact shape.
_SID = re.compile(r"^[A-Z]{2}[0-9A-Za-z]{10,62}$")
# Twilio carries at most 10 media items per message.
MAX_MEDIA = 10
# Field names kept from an unknown-fields set, so a hostile form cannot grow our logs.
MAX_EXTRA_FIELDS = 50

# The states the store can rank (a report it cannot rank would break furthest-state).
KNOWN_STATUSES = frozenset(MESSAGE_STATUS_RANK) - {"pending"}
OPT_OUT_TYPES = frozenset({"STOP", "START", "HELP"})

# Why a webhook was refused, for counters (one label value each).
ERROR_KINDS = ("missing_field", "bad_sid", "bad_from", "bad_status", "too_large")
# Longest body stored (the store's bound). Twilio's own limit is 1,600 characters per SMS
# and an MMS body is not far beyond; a body this long is not from a handset.
MAX_BODY_CHARS = 100_000

_INBOUND_FIELDS = frozenset({
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "MessagingServiceSid", "From",
    "To", "Body", "NumMedia", "NumSegments", "OptOutType", "ApiVersion", "SmsStatus",
})


class WebhookError(ValueError):
    """A webhook we cannot act on; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class InboundSms(msgspec.Struct, frozen=True):
    message_sid: str
    from_number: str  # E.164
    to_number: str  # E.164 when it parses, else as Twilio sent it (a number not ours)
    body: str
    account_sid: str = ""
    messaging_service_sid: str = ""
    num_media: int = 0
    num_segments: int = 1
    media_urls: tuple[str, ...] = ()
    # STOP/START/HELP when Twilio's Advanced Opt-Out already matched a keyword.
    opt_out_type: str | None = None
    unknown_fields: tuple[str, ...] = ()


class StatusReport(msgspec.Struct, frozen=True):
    message_sid: str
    status: str
    error_code: int | None = None
    to_number: str = ""


def _sid(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = (form.get(name) or "").strip()
        if value:
            if not _SID.match(value):
                raise WebhookError("bad_sid", f"{name} is not a Twilio SID: {value[:80]!r}")
            return value
    raise WebhookError("missing_field", f"{names[0]} is missing")


def _count(raw: str | None, default: int, low: int, high: int) -> int:
    """Twilio's counters are decimal strings; anything else is taken as the default."""
    try:
        value = int((raw or "").strip())
    except ValueError:
        return default
    return min(max(value, low), high)


def _phone(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber:
        return None


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    """The inbound message in `form`; WebhookError if it lacks what we key it by."""
    sid = _sid(form, "MessageSid", "SmsMessageSid", "SmsSid")
    raw_from = (form.get("From") or "").strip()
    if not raw_from:
        raise WebhookError("missing_field", "From is missing")
    from_number = _phone(raw_from)
    if from_number is None:
        raise WebhookError("bad_from", f"From is not a phone number: {raw_from[:64]!r}")
    body = form.get("Body") or ""
    if len(body) > MAX_BODY_CHARS:
        raise WebhookError("too_large", f"Body of {len(body)} characters")
    raw_to = (form.get("To") or "").strip()
    num_media = _count(form.get("NumMedia"), 0, 0, MAX_MEDIA)
    media = tuple(
        url for i in range(num_media) if (url := (form.get(f"MediaUrl{i}") or "").strip())
    )
    opt = (form.get("OptOutType") or "").strip().upper()
    unknown = tuple(sorted(
        k for k in form
        if k not in _INBOUND_FIELDS and not k.startswith(("MediaUrl", "MediaContentType"))
    ))[:MAX_EXTRA_FIELDS]
    return InboundSms(
        message_sid=sid,
        from_number=from_number,
        to_number=_phone(raw_to) or raw_to[:64],
        body=body,
        account_sid=(form.get("AccountSid") or "").strip()[:64],
        messaging_service_sid=(form.get("MessagingServiceSid") or "").strip()[:64],
        num_media=num_media,
        num_segments=_count(form.get("NumSegments"), 1, 1, 1_000),
        media_urls=media,
        opt_out_type=opt if opt in OPT_OUT_TYPES else None,
        unknown_fields=unknown,
    )


def parse_status(form: Mapping[str, str]) -> StatusReport:
    """A delivery report. An unknown MessageStatus is refused as `bad_status`: storing a
    state we cannot rank would corrupt the furthest-state rule."""
    sid = _sid(form, "MessageSid", "SmsSid")
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not status:
        raise WebhookError("missing_field", "MessageStatus is missing")
    if status not in KNOWN_STATUSES:
        raise WebhookError("bad_status", f"unknown MessageStatus {status[:40]!r}")
    raw_code = (form.get("ErrorCode") or "").strip()
    error_code = int(raw_code) if raw_code.isdigit() and len(raw_code) <= 9 else None
    return StatusReport(message_sid=sid, status=status, error_code=error_code,
                        to_number=(form.get("To") or "").strip()[:64])
