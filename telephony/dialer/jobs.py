"""A call job's data, checked before anything is dialed.

The producers are other teams' Node tools, so the data is untrusted: every field is
typed and bounded here, and what is wrong is said in words a sales-ops engineer can act
on (`JobRejected.reason` becomes the job's `failedReason`). Rejections are final — a job
with a bad phone number is not better on the second try — so the worker fails them
without retry. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from store.phones import InvalidPhoneNumber, normalize_phone

JOB_NAME = "call"
MAX_FIELD_CHARS = 200
MAX_SCRIPT_CHARS = 100
VIA = ("twilio", "livekit")


class JobRejected(ValueError):
    """The job cannot be dialed as it is; `reason` is its failedReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Contact(msgspec.Struct, rename="camel", forbid_unknown_fields=False, frozen=True):
    phone: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    state: str = ""
    practice_name: str = ""


class JobData(msgspec.Struct, rename="camel", forbid_unknown_fields=False, frozen=True):
    contact: Contact
    campaign_id: str | int | None = None
    step: int | None = None
    script: str | None = None
    caller_id: str | None = None
    via: str | None = None


class CallJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job ready to dial: the phone in E.164, the script resolved, the route chosen."""

    phone: str
    caller_id: str
    script: str
    via: str
    campaign_id: str | None
    step: int | None
    contact: Contact


# Contact fields that are free text: their wire (camelCase) names, for the reasons.
_CONTACT_TEXT = {"first_name": "firstName", "last_name": "lastName", "email": "email",
                 "state": "state", "practice_name": "practiceName"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bounded(name: str, value: str, limit: int = MAX_FIELD_CHARS) -> str:
    if len(value) > limit:
        raise JobRejected(f"invalid job data: {name} longer than {limit} characters")
    return _CONTROL.sub(" ", value).strip()


def parse_job(
    name: str | None,
    data: Any,
    *,
    default_caller_id: str,
    scripts: tuple[str, ...],
    default_script: str,
    max_bytes: int,
    encoded_size: int | None = None,
) -> CallJob:
    """The job as something to dial, or JobRejected saying what is wrong with it."""
    if name != JOB_NAME:
        raise JobRejected(f"unknown job name {str(name)[:50]!r}: this queue runs {JOB_NAME!r}")
    size = encoded_size if encoded_size is not None else len(msgspec.json.encode(data))
    if size > max_bytes:
        raise JobRejected(f"invalid job data: {size} bytes, more than the {max_bytes} allowed")
    if not isinstance(data, dict):
        raise JobRejected(f"invalid job data: expected an object, got {type(data).__name__}")
    try:
        parsed = msgspec.convert(data, JobData, strict=True)
    except msgspec.ValidationError as exc:
        raise JobRejected(f"invalid job data: {str(exc).replace('$.', '')}") from None
    contact = parsed.contact
    contact = msgspec.structs.replace(contact, **{
        field: _bounded(f"contact.{wire}", getattr(contact, field))
        for field, wire in _CONTACT_TEXT.items()})
    raw_phone = contact.phone
    if len(raw_phone) > 64:
        raise JobRejected("invalid phone number: longer than 64 characters")
    try:
        phone = normalize_phone(raw_phone)
    except InvalidPhoneNumber as exc:
        raise JobRejected(f"invalid phone number: {exc}") from None
    caller_raw = parsed.caller_id or default_caller_id
    if not caller_raw:
        raise JobRejected("no caller id: set [dialer] caller_id or the job's callerId")
    try:
        caller_id = normalize_phone(_bounded("callerId", caller_raw, 64))
    except InvalidPhoneNumber as exc:
        raise JobRejected(f"invalid caller id: {exc}") from None
    via = parsed.via or "twilio"
    if via not in VIA:
        raise JobRejected(f"invalid job data: via must be one of {', '.join(VIA)}, got "
                          f"{via[:30]!r}")
    script = parsed.script if parsed.script in scripts else default_script
    if parsed.step is not None and not 0 <= parsed.step <= 10_000:
        raise JobRejected("invalid job data: step must be between 0 and 10000")
    campaign = None if parsed.campaign_id is None else _bounded("campaignId",
                                                                str(parsed.campaign_id))
    return CallJob(phone=phone, caller_id=caller_id, script=script, via=via,
                   campaign_id=campaign or None, step=parsed.step, contact=contact)


def fill_template(text: str, job_values: dict[str, str]) -> str:
    """`{name}` placeholders filled from `job_values`; unknown names stay as they are.

    Not `str.format`: the template is config, the values are a producer's data, and
    neither may reach attribute lookups or raise on a stray brace."""
    return re.sub(r"\{([A-Za-z]+)\}", lambda m: job_values.get(m.group(1), m.group(0)), text)
