"""Campaign test fixtures: both SQL backends (from tests/sms/conftest.py), a virtual clock,
a scheduler wired to the real compliance engine, and a provider stand-in that accepts what
the SMS outbox holds at the virtual time (the Twilio leg itself is tested in tests/sms)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from agents.compliance.engine import CompliancePolicy
from sms.campaigns.scheduler import Scheduler
from sms.campaigns.settings import CampaignSettings
from store.database import Database
from tests.sms.conftest import OUR_NUMBER, Clock

CAMPAIGN_TOML = """
name = "reactivation"
stop_on = ["reply", "opt_out", "handoff", "booked"]
[[touches]]
channel = "sms"
delay = "0d"
template = "Hi {first_name}, it's {business_name}. Still thinking about it? {booking_url}"
[[touches]]
channel = "sms"
delay = "4d"
template = "{first_name}, a quick follow-up from {business_name}: {booking_url}"
variants = [{ template = "Hey {first_name}! Slots are open this week: {booking_url}", weight = 1 }]
[[touches]]
channel = "sms"
delay = "10d"
template = "Last note from {business_name}, {first_name}. Book any time: {booking_url}"
"""


def make_scheduler(db: Database, clock: Clock | Callable[[], datetime], *,
                   email_from: str | None = None, tick_s: float = 60.0, batch: int = 50,
                   **kw: object) -> Scheduler:
    settings = CampaignSettings(tick_s=tick_s, batch=batch)
    policy = CompliancePolicy()
    return Scheduler(
        db,  # type: ignore[arg-type]
        settings=lambda: settings, policy=lambda: policy,
        business_name=lambda: "Acme Motors", booking_url=lambda: "https://book.example/acme",
        sms_sender=lambda: OUR_NUMBER, email_from=lambda: email_from, clock=clock,
        **kw)  # type: ignore[arg-type]


async def provider_accepts(db: Database, now: datetime) -> int:
    """Everything due in the SMS outbox is accepted by 'Twilio' at `now`."""
    n = 0
    while True:
        items = await db.claim_outbox(now=now, limit=500, lease_s=60)
        if not items:
            return n
        for item in items:
            await db.outbox_sent(item.id, f"SM{item.id:032x}", status="sent", at=now)
            n += 1


@pytest.fixture
def campaign_toml() -> str:
    return CAMPAIGN_TOML
