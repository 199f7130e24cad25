"""Operator actions on campaigns (load, enroll, pause, preview), shared by CLI and server.

Enrollment takes phones from the lead list (all, or by status) or a file (one phone per
line, or a CSV with a phone column). Every phone becomes one of: enrolled, already
(enrolled before, in any state: re-enrolling is a no-op), or skipped with a reason (not
a lead, not a phone number, opted out, on the DNC list). Nothing is sent here: the first
touch is due at enrollment + its delay, and the scheduler sends it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from sms.campaigns import core
from sms.campaigns.model import Campaign, load_campaign_text, parse_campaign
from store.phones import InvalidPhoneNumber, normalize_phone

if TYPE_CHECKING:
    from store.campaign_models import CampaignRecord
    from store.repository import SqlRepository

# Enroll this many phones per transaction.
ENROLL_BATCH = 1000
# A file of phones bigger than this is refused (an enrollment list, not a data dump).
MAX_FILE_BYTES = 50 * 1024 * 1024
PHONE_HEADERS = ("phone", "phone_number", "mobile", "cell", "number", "to")


class CampaignNotFound(LookupError):
    pass


class EnrollSummary(msgspec.Struct):
    enrolled: int = 0
    already: int = 0
    skipped: list[dict[str, str]] = msgspec.field(default_factory=list)


async def load(db: SqlRepository, text: str, source: str = "campaign"
               ) -> tuple[CampaignRecord, bool]:
    """Validate and store a campaign file; (record, created). CampaignError if bad."""
    campaign = load_campaign_text(text, source)
    return await db.save_campaign(campaign.name, campaign.business, campaign.to_definition())


async def get(db: SqlRepository, name: str) -> tuple[CampaignRecord, Campaign]:
    record = await db.get_campaign(name)
    if record is None:
        raise CampaignNotFound(f"no campaign named {name!r}")
    return record, parse_campaign(record.definition)


def phones_from_file(data: bytes) -> Iterable[str]:
    """Phones of an enrollment file: a CSV whose header has a phone column, else one
    phone per line (blank lines and #comments ignored)."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"enrollment file larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
    text = data.decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    header = [h.strip().lower() for h in next(csv.reader([first]))] if first else []
    col = next((i for i, h in enumerate(header) if h in PHONE_HEADERS), None)
    if col is not None:
        reader = csv.reader(io.StringIO(text))
        next(reader)
        for row in reader:
            if len(row) > col and row[col].strip():
                yield row[col].strip()
        return
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


async def enroll(db: SqlRepository, name: str, *, phones: Iterable[str] | None = None,
                 status: str | None = None, everyone: bool = False,
                 now: datetime) -> EnrollSummary:
    record, campaign = await get(db, name)
    channel, due = core.first_due(campaign, now)
    summary = EnrollSummary()
    batch: list[str] = []

    async def flush() -> None:
        if batch:
            counts = await db.enroll(record.id, batch, due_at=due, channel=channel, at=now)
            summary.enrolled += counts.enrolled
            summary.already += counts.already
            batch.clear()

    async def consider(raw: str) -> None:
        try:
            phone = normalize_phone(raw)
        except InvalidPhoneNumber:
            summary.skipped.append({"lead": raw[:40], "reason": "invalid_number"})
            return
        lead = await db.get_lead(phone)
        if lead is None:
            summary.skipped.append({"lead": phone, "reason": "not_a_lead"})
        elif lead.opted_out:
            summary.skipped.append({"lead": phone, "reason": "opted_out"})
        elif lead.dnc:
            summary.skipped.append({"lead": phone, "reason": "dnc"})
        else:
            batch.append(phone)
            if len(batch) >= ENROLL_BATCH:
                await flush()

    if phones is not None:
        for raw in phones:
            await consider(raw)
    else:
        if not everyone and status is None:
            raise ValueError("enroll needs --all, --status or --file")
        after = 0
        while True:
            page = await db.list_leads(status=status, limit=1000, after_id=after)
            if not page:
                break
            after = page[-1].id
            for lead in page:
                if lead.opted_out or lead.dnc:
                    summary.skipped.append({"lead": lead.phone,
                                            "reason": "opted_out" if lead.opted_out else "dnc"})
                else:
                    batch.append(lead.phone)
                    if len(batch) >= ENROLL_BATCH:
                        await flush()
    await flush()
    return summary


async def preview(db: SqlRepository, name: str, phone: str, *, business_name: str,
                  booking_url: str) -> list[dict[str, Any]]:
    """Each touch of the campaign rendered for one lead (every variant), sending nothing."""
    from sms.campaigns.model import MissingVariable, render, variables_for

    _, campaign = await get(db, name)
    lead = await db.get_lead(normalize_phone(phone))
    if lead is None:
        raise CampaignNotFound(f"no lead with phone {phone}")
    values = variables_for(
        first_name=lead.first_name, last_name=lead.last_name, phone=lead.phone,
        email=lead.email, attributes=lead.attributes, business_name=business_name,
        booking_url=booking_url, declared=campaign.attributes)
    out: list[dict[str, Any]] = []
    for n, touch in enumerate(campaign.touches, 1):
        for v, (template, subject, weight) in enumerate(touch.choices()):
            row: dict[str, Any] = {"touch": n, "variant": v, "weight": weight,
                                   "channel": touch.channel, "delay": touch.delay}
            try:
                row["body"] = render(template, values)
                if subject is not None:
                    row["subject"] = render(subject, values)
            except MissingVariable as exc:
                row["error"] = str(exc)
            out.append(row)
    return out
