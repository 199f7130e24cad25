"""Conformance for the outbox: claims, leases, verdicts, and concurrent claimers for real."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.database import Database, open_database
from store.models import LeadInput, OutboxItem
from tests.store.conftest import BACKENDS, backend_url

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MARIA = "+14155552671"
OURS = "+15005550006"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def queue(db: Database, key: str, *, when: float = 0, not_before: float | None = None,
                phone: str = MARIA) -> OutboxItem:
    _, item, _ = await db.queue_outbound_message(
        phone=phone, channel="sms", purpose="marketing", body=f"body {key}", from_addr=OURS,
        to_addr=phone, segments=1, idempotency_key=key, at=at(when),
        not_before=None if not_before is None else at(not_before),
    )
    return item


async def test_claim_takes_due_rows_once_until_the_lease_lapses(db: Database) -> None:
    first = await queue(db, "a", when=0)
    later = await queue(db, "b", when=0, not_before=600)
    claimed = await db.claim_outbox(now=at(10), limit=10, lease_s=30)
    assert [(i.id, i.status, i.attempts) for i in claimed] == [(first.id, "sending", 1)]
    assert await db.claim_outbox(now=at(20), limit=10, lease_s=30) == []
    # the sender died mid-send: after the lease the row is handed out again
    again = await db.claim_outbox(now=at(41), limit=10, lease_s=30)
    assert [(i.id, i.attempts) for i in again] == [(first.id, 2)]
    assert await db.outbox_pending_count() == 2
    both = await db.claim_outbox(now=at(700), limit=10, lease_s=30)
    assert [i.id for i in both] == [first.id, later.id]
    with pytest.raises(ValueError):
        await db.claim_outbox(now=at(0), limit=10, lease_s=0)


async def test_claim_respects_limit_and_due_order(db: Database) -> None:
    items = [await queue(db, f"k{i}", when=0, not_before=100 - i) for i in range(5)]
    claimed = await db.claim_outbox(now=at(200), limit=3, lease_s=30)
    assert [i.id for i in claimed] == [items[4].id, items[3].id, items[2].id]


async def test_sent_sets_the_sid_and_stamps_the_lead(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    await queue(db, "a")
    (item,) = await db.claim_outbox(now=at(1), limit=10, lease_s=30)
    await db.outbox_sent(item.id, "SM1", status="queued", at=at(2))
    (message,) = await db.list_messages(MARIA)
    assert (message.provider_sid, message.status) == ("SM1", "queued")
    lead = await db.get_lead(MARIA)
    assert lead is not None and (lead.status, lead.last_outbound_at) == ("contacted", at(2))
    assert await db.outbox_pending_count() == 0
    assert await db.claim_outbox(now=at(1000), limit=10, lease_s=30) == []
    delivered = await db.update_message_status("SM1", "delivered", at=at(5))
    assert delivered is not None and delivered.status == "delivered"
    # a late duplicate "sent" for the same row changes nothing
    await db.outbox_sent(item.id, "SM-other", at=at(6))
    (message,) = await db.list_messages(MARIA)
    assert (message.provider_sid, message.status) == ("SM1", "delivered")


async def test_retry_then_success(db: Database) -> None:
    await queue(db, "a")
    (item,) = await db.claim_outbox(now=at(1), limit=10, lease_s=30)
    await db.outbox_retry(item.id, "30003 unreachable", at(60))
    assert await db.claim_outbox(now=at(59), limit=10, lease_s=30) == []
    (again,) = await db.claim_outbox(now=at(60), limit=10, lease_s=30)
    assert (again.id, again.attempts, again.last_error) == (item.id, 2, "30003 unreachable")
    await db.outbox_sent(again.id, "SM1")
    (message,) = await db.list_messages(MARIA)
    assert message.status == "sent"


async def test_failed_marks_the_message(db: Database) -> None:
    await queue(db, "a")
    (item,) = await db.claim_outbox(now=at(1), limit=10, lease_s=30)
    await db.outbox_failed(item.id, "21610 unsubscribed recipient", error_code=21610)
    (message,) = await db.list_messages(MARIA)
    assert (message.status, message.error_code) == ("failed", 21610)
    assert await db.outbox_pending_count() == 0
    assert await db.count_outbound(MARIA, since=at(-10), purposes=["marketing"]) == 0


async def test_cancel_withdraws_only_unsent_rows(db: Database) -> None:
    pending = await queue(db, "a")
    sent = await queue(db, "b")
    claimed = await db.claim_outbox(now=at(1), limit=10, lease_s=30)
    assert {i.id for i in claimed} == {pending.id, sent.id}
    await db.outbox_sent(sent.id, "SM2")
    await db.outbox_cancel(pending.id, "opted out")
    await db.outbox_cancel(sent.id, "opted out")  # too late: it stays sent
    statuses = {m.idempotency_key: m.status for m in await db.list_messages(MARIA)}
    assert statuses == {"a": "cancelled", "b": "sent"}
    assert await db.claim_outbox(now=at(1000), limit=10, lease_s=30) == []
    # unknown ids are logged and ignored, never an exception in the sender loop
    await db.outbox_cancel(99999, "x")
    await db.outbox_retry(99999, "x", at(5))
    await db.outbox_failed(99999, "x")
    await db.outbox_sent(99999, "SM3")


async def _drain(db: Database, seen: list[int], now: datetime) -> None:
    while batch := await db.claim_outbox(now=now, limit=7, lease_s=300):
        seen.extend(i.id for i in batch)
        for item in batch:
            await db.outbox_sent(item.id, f"SM{item.id}")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_concurrent_claimers_never_share_a_row(backend: str, tmp_path: Path) -> None:
    """Four separately opened databases (as four processes would) drain one outbox."""
    async with backend_url(backend, tmp_path) as url:
        dbs = [await open_database(url) for _ in range(4)]
        try:
            phones = [f"+1415555{n:04d}" for n in range(100, 110)]
            for i in range(120):
                await queue(dbs[0], f"k{i}", phone=phones[i % len(phones)])
            seen: list[list[int]] = [[] for _ in dbs]
            await asyncio.wait_for(
                asyncio.gather(*(_drain(d, s, at(10)) for d, s in zip(dbs, seen, strict=True))),
                timeout=60,
            )
            everything = [i for s in seen for i in s]
            assert len(everything) == len(set(everything)) == 120
            if backend == "postgresql":
                # SKIP LOCKED really spread the work rather than serialising it
                assert sum(1 for s in seen if s) >= 2
            assert await dbs[1].outbox_pending_count() == 0
        finally:
            for d in dbs:
                await d.close()
