"""Campaign storage on both backends: enrollments, the leased claim, touches, email outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from store.campaign_models import touch_key
from store.database import Database, open_database
from store.models import LeadInput

T0 = datetime(2026, 6, 9, 15, 0, tzinfo=UTC)
DEF = {"name": "c", "touches": [{"channel": "sms", "delay": "0d", "template": "x"}]}
PHONES = [f"+1212555{i:04d}" for i in range(40)]


async def _campaign(db: Database, name: str = "c") -> int:
    rec, created = await db.save_campaign(name, "default", DEF)  # type: ignore[attr-defined]
    assert created
    return int(rec.id)


async def test_enroll_is_idempotent_and_reload_keeps_state(db: Database) -> None:
    cid = await _campaign(db)
    c = await db.enroll(cid, [*PHONES[:3], "(212) 555-0000"], due_at=T0,  # type: ignore[attr-defined]
                        channel="sms", at=T0)
    assert (c.enrolled, c.already) == (3, 0)  # the fourth is the first one written again
    c = await db.enroll(cid, PHONES[:5], due_at=T0, channel="sms", at=T0)  # type: ignore[attr-defined]
    assert (c.enrolled, c.already) == (2, 3)
    await db.set_campaign_paused("c", True)  # type: ignore[attr-defined]
    rec, created = await db.save_campaign("c", "default", {**DEF, "x": 1})  # type: ignore[attr-defined]
    assert not created and rec.paused and rec.definition["x"] == 1
    assert len(await db.list_enrollments(cid)) == 5  # type: ignore[attr-defined]


async def test_claim_leases_skips_paused_and_other_channels(db: Database) -> None:
    cid = await _campaign(db)
    other = await _campaign(db, "paused")
    await db.enroll(cid, PHONES[:4], due_at=T0, channel="sms", at=T0)  # type: ignore[attr-defined]
    await db.enroll(cid, PHONES[4:6], due_at=T0, channel="email", at=T0)  # type: ignore[attr-defined]
    await db.enroll(other, PHONES[:2], due_at=T0, channel="sms", at=T0)  # type: ignore[attr-defined]
    await db.set_campaign_paused("paused", True)  # type: ignore[attr-defined]
    assert await db.claim_enrollments(now=T0 - timedelta(seconds=1), limit=10,  # type: ignore[attr-defined]
                                      lease_s=60, channels=["sms"]) == []
    got = await db.claim_enrollments(now=T0, limit=10, lease_s=60, channels=["sms"])  # type: ignore[attr-defined]
    assert sorted(e.phone for e in got) == PHONES[:4]
    # Leased: nobody else gets them until the lease lapses.
    assert await db.claim_enrollments(now=T0, limit=10, lease_s=60, channels=["sms"]) == []  # type: ignore[attr-defined]
    later = await db.claim_enrollments(now=T0 + timedelta(seconds=61), limit=10,  # type: ignore[attr-defined]
                                       lease_s=60, channels=["sms", "email"])
    assert len(later) == 6
    due = await db.due_enrollments(now=T0, channel="email", limit=10)  # type: ignore[attr-defined]
    assert len(due) == 2


async def test_concurrent_claims_never_share_a_row(db_url: str) -> None:
    first = await open_database(db_url)
    second = await open_database(db_url)
    try:
        cid = await _campaign(first)
        await first.enroll(cid, PHONES, due_at=T0, channel="sms", at=T0)  # type: ignore[attr-defined]

        async def claimer(db: Database) -> list[int]:
            got: list[int] = []
            while batch := await db.claim_enrollments(now=T0, limit=3, lease_s=60,  # type: ignore[attr-defined]
                                                      channels=["sms"]):
                got += [e.id for e in batch]
            return got

        a, b = await asyncio.gather(claimer(first), claimer(second))
        assert not set(a) & set(b) and len(a) + len(b) == len(PHONES)
    finally:
        await first.close()
        await second.close()


async def test_advance_is_guarded_and_stop_withdraws_queued_touches(db: Database) -> None:
    db.clock = lambda: T0  # type: ignore[attr-defined]
    await db.upsert_leads([LeadInput(phone=p) for p in PHONES[:2]])
    cid = await _campaign(db)
    await db.enroll(cid, PHONES[:2], due_at=T0, channel="sms", at=T0)  # type: ignore[attr-defined]
    [e1, e2] = await db.claim_enrollments(now=T0, limit=10, lease_s=60, channels=["sms"])  # type: ignore[attr-defined]
    msg, _item, _ = await db.queue_outbound_message(
        phone=e1.phone, channel="sms", purpose="marketing", body="hi", from_addr="+14155550123",
        to_addr=e1.phone, segments=1, idempotency_key=touch_key(e1.id, 1), at=T0)
    kw = dict(touch=1, channel="sms", variant=0, message_id=msg.id, outcome="queued", at=T0,
              next_channel="sms", next_due_at=T0 + timedelta(days=2))
    assert await db.advance_enrollment(e1, **kw)  # type: ignore[attr-defined]
    assert not await db.advance_enrollment(e1, **kw)  # type: ignore[attr-defined]  # stale claim
    assert (await db.touch_send(msg.id)).status == "pending"  # type: ignore[attr-defined]
    await db.queue_email(phone=e1.phone, to_addr="a@example.com", from_addr="f@example.com",  # type: ignore[attr-defined]
                         subject="s", body="b", purpose="marketing",
                         idempotency_key=touch_key(e1.id, 2), at=T0)
    # A conversation reply is not a campaign touch: the stop leaves it alone.
    _, reply, _ = await db.queue_outbound_message(
        phone=e1.phone, channel="sms", purpose="conversation", body="ok",
        from_addr="+14155550123", to_addr=e1.phone, segments=1, idempotency_key="reply:1",
        at=T0)
    assert await db.stop_campaigns_for(e1.phone, "opt_out", T0) == 1  # type: ignore[attr-defined]
    statuses = {m.idempotency_key: m.status for m in await db.list_messages(e1.phone)}
    assert statuses == {touch_key(e1.id, 1): "cancelled", touch_key(e1.id, 2): "cancelled",
                        "reply:1": "pending"}
    assert await db.email_pending_count() == 0  # type: ignore[attr-defined]
    assert reply.status == "pending"
    assert await db.stop_enrollment(e2.id, "reply", T0)  # type: ignore[attr-defined]
    assert not await db.stop_enrollment(e2.id, "reply", T0)  # type: ignore[attr-defined]
    counts = await db.enrollment_counts()  # type: ignore[attr-defined]
    assert counts == {"active": 0, "completed": 0, "stopped": 2}


async def test_email_outbox_lifecycle(db: Database) -> None:
    db.clock = lambda: T0  # type: ignore[attr-defined]
    await db.upsert_leads([LeadInput(phone=PHONES[0], email="Ann@Example.com")])
    assert await db.lead_phone_by_email("ann@example.COM") == PHONES[0]  # type: ignore[attr-defined]
    _, item, _created = await db.queue_email(  # type: ignore[attr-defined]
        phone=PHONES[0], to_addr="ann@example.com", from_addr="f@example.com", subject="s",
        body="b", purpose="marketing", idempotency_key="marketing:campaign:1:1", at=T0)
    [claimed] = await db.claim_email_outbox(now=T0, limit=5, lease_s=30)  # type: ignore[attr-defined]
    assert claimed.id == item.id and claimed.attempts == 1
    assert await db.claim_email_outbox(now=T0, limit=5, lease_s=30) == []  # type: ignore[attr-defined]
    await db.email_retry(item.id, "down", T0 + timedelta(minutes=1))  # type: ignore[attr-defined]
    [again] = await db.claim_email_outbox(now=T0 + timedelta(minutes=1), limit=5, lease_s=30)  # type: ignore[attr-defined]
    await db.email_sent(again.id, "<id@x>", at=T0 + timedelta(minutes=1))  # type: ignore[attr-defined]
    [m] = await db.list_messages(PHONES[0])
    assert m.status == "sent" and m.provider_sid == "<id@x>"
    lead = await db.get_lead(PHONES[0])
    assert lead is not None and lead.status == "contacted"
    assert await db.record_bounce("X@y.com", phone=None, code=550, reason="r")  # type: ignore[attr-defined]
    assert not await db.record_bounce("x@Y.com", phone=None, code=550, reason="r")  # type: ignore[attr-defined]


async def test_shared_secret_is_generated_once_for_every_process(db_url: str) -> None:
    a = await open_database(db_url)
    b = await open_database(db_url)
    try:
        s1, s2 = await asyncio.gather(a.shared_secret("k"), b.shared_secret("k"))  # type: ignore[attr-defined]
        assert s1 == s2 and len(s1) >= 40
        assert await a.shared_secret("other") != s1  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()
