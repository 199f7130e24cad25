"""The scheduler over real SQL with virtual time: legal send times, stop rules, exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from agents.compliance.engine import CompliancePolicy, ContactRequest, decide
from sms.campaigns import service
from sms.campaigns.scheduler import iso_z
from store.campaign_models import TOUCH_KEY_PREFIX
from store.database import Database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML, make_scheduler, provider_accepts
from tests.sms.conftest import Clock

AREAS = [("212", "NY"), ("415", "CA"), ("305", "FL"), ("512", "TX"), ("203", "CT"),
         ("206", "WA"), ("312", "IL"), ("602", "AZ"), ("808", "HI"), ("303", "CO")]


def phone(i: int) -> str:
    area = AREAS[i % len(AREAS)][0]
    return f"+1{area}555{i:04d}"


async def seed(db: Database, n: int) -> list[str]:
    phones = [phone(i) for i in range(n)]
    await db.upsert_leads([LeadInput(phone=p, first_name=f"Lead{i}",
                                     state=AREAS[i % len(AREAS)][1])
                           for i, p in enumerate(phones)])
    return phones


async def campaign_messages(db: Database, phones: list[str]) -> list:  # type: ignore[type-arg]
    out = []
    for p in phones:
        out += [m for m in await db.list_messages(p, limit=1000)
                if m.idempotency_key and m.idempotency_key.startswith(TOUCH_KEY_PREFIX)]
    return out


async def test_one_touch_goes_out_inside_the_window_and_is_deferred_outside(
        db: Database, clock: Clock) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await seed(db, 1)
    await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
    # 02:00 in New York: quiet hours.
    clock.at = datetime(2026, 6, 9, 6, 0, tzinfo=UTC)
    s = await service.enroll(db, "reactivation", everyone=True, now=clock())  # type: ignore[arg-type]
    assert (s.enrolled, s.already) == (1, 0)
    sched = make_scheduler(db, clock)
    r = await sched.tick(clock())
    assert r.sent == [] and len(r.deferred) == 1
    until = r.deferred[0]["until"]
    assert until == "2026-06-09T12:00:00Z"  # 08:00 EDT
    assert (await sched.tick(clock())).claimed == 0  # not due again before then
    clock.at = datetime(2026, 6, 9, 12, 0, tzinfo=UTC)
    r = await sched.tick(clock())
    assert r.sent == [{"lead": phone(0), "touch": 1, "channel": "sms"}]
    again = await service.enroll(db, "reactivation", everyone=True, now=clock())  # type: ignore[arg-type]
    assert (again.enrolled, again.already) == (0, 1)
    [msg] = await campaign_messages(db, [phone(0)])
    assert msg.purpose == "marketing" and "Lead0" in msg.body and "Reply STOP" in msg.body
    assert iso_z(msg.created_at) == until


async def test_fifty_leads_fourteen_days_with_replies_opt_outs_and_a_handoff(
        db: Database, clock: Clock) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    phones = await seed(db, 50)
    await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
    start = datetime(2026, 6, 8, 4, 0, tzinfo=UTC)  # Monday, night everywhere in the US
    clock.at = start
    s = await service.enroll(db, "reactivation", everyone=True, now=start)  # type: ignore[arg-type]
    assert s.enrolled == 50
    notified: list[tuple[str, str]] = []

    async def notify(lead, reason):  # type: ignore[no-untyped-def]
        notified.append((lead.phone, reason))

    sched = make_scheduler(db, clock, notify_handoff=notify)
    repliers = {phones[i] for i in range(0, 50, 7)}        # reply on day 5
    opt_outs = {phones[i] for i in range(3, 50, 11)}       # STOP on day 2
    handoff = phones[5]                                    # interested on day 6
    stopped_at: dict[str, datetime] = {}
    step = timedelta(minutes=30)
    while clock.at < start + timedelta(days=16):
        await sched.tick(clock())
        await provider_accepts(db, clock())
        day = (clock.at - start).days
        at = clock.at
        if day == 2 and at.hour == 16 and at.minute == 0:
            for p in opt_outs:
                await db.add_consent_event(p, "opt_out", "sms", "STOP", at=at)
                stopped_at[p] = at
        if day == 5 and at.hour == 18 and at.minute == 0:
            for p in repliers - opt_outs:
                await db.record_inbound_message(phone=p, channel="sms", body="maybe later",
                                                from_addr=p, to_addr="+14155550123",
                                                provider_sid=f"SMin{p}", segments=1, at=at)
                stopped_at.setdefault(p, at)
        if day == 6 and at.hour == 17 and at.minute == 0:
            m, _ = await db.record_inbound_message(
                phone=handoff, channel="sms", body="yes I'm interested", from_addr=handoff,
                to_addr="+14155550123", provider_sid="SMhand", segments=1, at=at)
            await db.set_lead_status(handoff, "interested")
            stopped_at[handoff] = at
        clock.at += step

    msgs = await campaign_messages(db, phones)
    policy = CompliancePolicy()
    leads = {p: await db.get_lead(p) for p in phones}
    per_key = Counter(m.idempotency_key for m in msgs)
    assert per_key and max(per_key.values()) == 1  # each touch exactly once
    sent_by_phone = Counter(m.phone for m in msgs)
    for m in msgs:
        lead = leads[m.phone]
        assert lead is not None
        # Every send time is legal in the lead's zone and state.
        sent_at = next(h for h in m.status_history if h["status"] == "sent")["at"]
        for at in (m.created_at, datetime.fromisoformat(sent_at)):
            verdict = decide(ContactRequest(phone=m.phone, channel="sms", purpose="marketing",
                                            at=at, lead_state=lead.state), policy)
            assert verdict.reason == "allowed", (m.phone, at, verdict)
        # No touch after the lead stopped.
        if m.phone in stopped_at:
            assert m.created_at < stopped_at[m.phone]
    # Leads that never stopped got all three touches; the rest fewer.
    for p in phones:
        if p not in stopped_at:
            assert sent_by_phone[p] == 3, p
    record = await db.get_campaign("reactivation")  # type: ignore[attr-defined]
    enrollments = {e.phone: e for e in await db.list_enrollments(record.id)}  # type: ignore[attr-defined]
    reasons = Counter(e.stop_reason for e in enrollments.values())
    assert reasons["opt_out"] == len(opt_outs)
    assert reasons["reply"] == len(repliers - opt_outs)
    assert reasons["handoff"] == 1 and enrollments[handoff].stop_reason == "handoff"
    assert notified == [(handoff, "handoff")]
    lead5 = await db.get_lead(handoff)
    assert lead5 is not None and lead5.human_takeover
    assert reasons[None] == 50 - len(stopped_at)
    assert all(e.state == "completed" for e in enrollments.values() if e.stop_reason is None)
    # Delays run from the actual send of the previous touch.
    for p in phones:
        if p in stopped_at:
            continue
        times = sorted(datetime.fromisoformat(next(
            h for h in m.status_history if h["status"] == "sent")["at"])
            for m in msgs if m.phone == p)
        assert times[1] - times[0] >= timedelta(days=4)
        assert times[2] - times[1] >= timedelta(days=10)


async def test_paused_campaign_sends_nothing_until_resumed(db: Database, clock: Clock) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await seed(db, 3)
    await service.load(db, CAMPAIGN_TOML)  # type: ignore[arg-type]
    await service.enroll(db, "reactivation", everyone=True, now=clock())  # type: ignore[arg-type]
    assert await db.set_campaign_paused("reactivation", True)  # type: ignore[attr-defined]
    sched = make_scheduler(db, clock)
    assert (await sched.tick(clock())).sent == []
    assert await db.set_campaign_paused("reactivation", False)  # type: ignore[attr-defined]
    assert len((await sched.tick(clock())).sent) == 3


async def test_email_touch_without_email_config_is_skipped_and_stays_due(
        db: Database, clock: Clock) -> None:
    db.clock = clock  # type: ignore[attr-defined]
    await db.upsert_leads([LeadInput(phone=phone(0), first_name="A", email="a@example.com")])
    text = ('name = "mail"\n[[touches]]\nchannel = "email"\ndelay = "0d"\n'
            'subject = "Hi"\ntemplate = "Hello {first_name}"\n')
    await service.load(db, text)  # type: ignore[arg-type]
    await service.enroll(db, "mail", everyone=True, now=clock())  # type: ignore[arg-type]
    sched = make_scheduler(db, clock, email_from=None)
    for _ in range(2):
        r = await sched.tick(clock())
        assert r.skipped == [{"lead": phone(0), "touch": 1, "reason": "email_not_configured"}]
    sched = make_scheduler(db, clock, email_from="shop@example.com")
    r = await sched.tick(clock())
    assert r.sent == [{"lead": phone(0), "touch": 1, "channel": "email"}]
