"""The campaign report agrees with a recount from the messages table (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sms.campaigns import service
from sms.report import build_report, render_table
from store.campaign_models import TOUCH_KEY_PREFIX
from store.database import Database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML, make_scheduler, provider_accepts
from tests.sms.conftest import Clock


async def test_report_matches_a_recount_from_messages(db: Database, clock: Clock) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    phones = [f"+1212555{i:04d}" for i in range(12)]
    await db.upsert_leads([LeadInput(phone=p, first_name=f"L{i}") for i, p in enumerate(phones)])
    # A conversation message and an opt-out confirmation that must not count as touches.
    await db.queue_outbound_message(phone=phones[0], channel="sms", purpose="help",
                                    body="help text", from_addr="+14155550123",
                                    to_addr=phones[0], segments=1, idempotency_key="help:x")
    await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
    start = datetime(2026, 6, 8, 15, 0, tzinfo=UTC)
    clock.at = start
    await service.enroll(db, "reactivation", everyone=True, now=start)  # type: ignore[arg-type]
    sched = make_scheduler(db, clock)
    while clock.at < start + timedelta(days=16):
        await sched.tick(clock())
        await provider_accepts(db, clock())
        if clock.at == start + timedelta(days=1):
            for i in (1, 2, 3):
                await db.record_inbound_message(
                    phone=phones[i], channel="sms", body="ok", from_addr=phones[i],
                    to_addr="+14155550123", provider_sid=f"SMr{i}", segments=1, at=clock.at)
            await db.set_lead_status(phones[2], "booked")
            await db.add_consent_event(phones[4], "opt_out", "sms", "STOP", at=clock.at)
        clock.at += timedelta(hours=1)
    touch = next(m for m in await db.list_messages(phones[5])
                 if (m.idempotency_key or "").startswith(TOUCH_KEY_PREFIX))
    assert touch.provider_sid is not None
    await db.update_message_status(touch.provider_sid, "delivered")
    [rep] = await build_report(db, sms_segment_price=0.01)  # type: ignore[arg-type]

    # The recount: straight from the messages table.
    touches, segs, first_touch, replied = 0, 0, {}, set()
    for p in phones:
        for m in await db.list_messages(p, limit=1000):
            key = m.idempotency_key or ""
            if m.direction == "outbound" and key.startswith(TOUCH_KEY_PREFIX) and m.provider_sid:
                touches += 1
                segs += m.segments
                first_touch.setdefault(p, m.created_at)
        for m in await db.list_messages(p, limit=1000):
            if m.direction == "inbound" and p in first_touch and m.created_at >= first_touch[p]:
                replied.add(p)
    assert rep["sent"] == touches and touches == sum(t["sent"] for t in rep["touches"])
    assert rep["contacted"] == len(first_touch) == 12
    assert rep["replied"] == len(replied) == 3
    assert rep["booked"] == 1 and rep["opted_out"] == 1
    assert rep["response_rate"] == round(3 / 12, 4)
    assert rep["delivered"] == 1
    assert rep["cost"] == round(segs * 0.01, 4)
    assert rep["touches"][0]["replied"] == 3
    # 12 leads: 4 stopped (3 replied, 1 opted out) after touch 1, 8 got all three.
    assert touches == 12 + 8 * 2
    assert sum(rep["stopped"].values()) == 4 and rep["stopped"]["opt_out"] == 1
    assert "reactivation" in render_table([rep])
