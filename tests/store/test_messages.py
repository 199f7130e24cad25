"""Conformance for messages: inbound idempotency, status ordering, threads and caps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.database import Database
from store.models import LeadInput, Message

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MARIA = "+14155552671"
OURS = "+15005550006"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def inbound(db: Database, sid: str | None, body: str = "hi", when: float = 0) -> Message:
    message, _ = await db.record_inbound_message(
        phone=MARIA, channel="sms", body=body, from_addr=MARIA, to_addr=OURS,
        provider_sid=sid, segments=1, at=at(when),
    )
    return message


async def outbound(db: Database, key: str, *, purpose: str = "marketing", when: float = 0,
                   body: str = "offer") -> Message:
    message, _, _ = await db.queue_outbound_message(
        phone=MARIA, channel="sms", purpose=purpose, body=body, from_addr=OURS,
        to_addr=MARIA, segments=1, idempotency_key=key, at=at(when),
    )
    return message


async def test_duplicate_message_sid_is_idempotent(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    first, new = await db.record_inbound_message(
        phone="(415) 555-2671", channel="sms", body="Yes, I'm interested", from_addr=MARIA,
        to_addr=OURS, provider_sid="SM1", segments=1, at=at(5),
    )
    assert new is True
    assert (first.phone, first.direction, first.status, first.provider_sid) == (
        MARIA, "inbound", "received", "SM1"
    )
    again, new = await db.record_inbound_message(
        phone=MARIA, channel="sms", body="Yes, I'm interested", from_addr=MARIA,
        to_addr=OURS, provider_sid="SM1", segments=1, at=at(9),
    )
    assert new is False and again == first
    assert len(await db.list_messages(MARIA)) == 1
    lead = await db.get_lead(MARIA)
    assert lead is not None and (lead.status, lead.last_inbound_at) == ("replied", at(5))
    assert await db.last_inbound_at(MARIA) == at(5)


async def test_inbound_moves_only_new_or_contacted_to_replied(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    await db.set_lead_status(MARIA, "booked")
    await inbound(db, "SM1", when=10)
    await inbound(db, "SM2", when=5)  # a late webhook never moves last_inbound_at back
    lead = await db.get_lead(MARIA)
    assert lead is not None and (lead.status, lead.last_inbound_at) == ("booked", at(10))
    await db.set_lead_status(MARIA, "contacted")
    await inbound(db, "SM3", when=20)
    assert (await db.get_lead(MARIA)).status == "replied"  # type: ignore[union-attr]


async def test_inbound_from_a_stranger_and_without_sid(db: Database) -> None:
    assert await db.last_inbound_at(MARIA) is None
    a = await inbound(db, None, "one")
    b = await inbound(db, None, "one")
    assert a.id != b.id  # nothing to deduplicate on: both kept
    assert await db.get_lead(MARIA) is None


@pytest.mark.parametrize(
    "body",
    ["¿Cuánto cuesta? \"sí\" 'ok'", "'; DELETE FROM messages; --", "王小明 🎉", "$1 ?1 %s",
     "line\nbreak\ttab"],
)
async def test_bodies_round_trip_exactly(db: Database, body: str) -> None:
    message = await inbound(db, "SM1", body)
    assert message.body == body
    assert [m.body for m in await db.list_messages(MARIA)] == [body]


async def test_nul_in_a_body_is_replaced_not_lost(db: Database) -> None:
    assert (await inbound(db, "SM1", "a\x00b")).body == "a\ufffdb"


async def test_idempotency_key_returns_the_same_pair(db: Database) -> None:
    message, item, new = await db.queue_outbound_message(
        phone=MARIA, channel="sms", purpose="conversation", body="Hi Maria!", from_addr=OURS,
        to_addr=MARIA, segments=1, idempotency_key="reply:SM1", at=at(0),
        not_before=at(3600),
    )
    assert new is True
    assert (message.direction, message.status, message.idempotency_key) == (
        "outbound", "pending", "reply:SM1"
    )
    assert (item.message_id, item.status, item.attempts, item.next_attempt_at) == (
        message.id, "pending", 0, at(3600)
    )
    assert (item.to_addr, item.from_addr, item.body) == (MARIA, OURS, "Hi Maria!")
    again = await db.queue_outbound_message(
        phone=MARIA, channel="sms", purpose="conversation", body="different text",
        from_addr=OURS, to_addr=MARIA, segments=1, idempotency_key="reply:SM1",
    )
    assert again == (message, item, False)
    assert await db.outbox_pending_count() == 1
    assert len(await db.list_messages(MARIA)) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"channel": "fax"}, {"purpose": "spam"}, {"idempotency_key": ""}, {"segments": -1},
     {"body": "x" * 100_001}],
)
async def test_queue_refuses_bad_input(db: Database, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "phone": MARIA, "channel": "sms", "purpose": "marketing", "body": "x",
        "from_addr": OURS, "to_addr": MARIA, "segments": 1, "idempotency_key": "k",
    }
    with pytest.raises(ValueError):
        await db.queue_outbound_message(**{**args, **kwargs})  # type: ignore[arg-type]
    assert await db.outbox_pending_count() == 0


async def test_unknown_sid_status_is_none(db: Database) -> None:
    assert await db.update_message_status("SM-nope", "delivered") is None


async def test_status_history_and_error_codes(db: Database) -> None:
    await outbound(db, "k1")
    (item,) = await db.claim_outbox(now=at(1), limit=10, lease_s=30)
    await db.outbox_sent(item.id, "SM9", status="queued", at=at(2))
    sent = await db.update_message_status("SM9", "sent", at=at(3))
    assert sent is not None and sent.status == "sent"
    failed = await db.update_message_status("SM9", "undelivered", error_code=30003, at=at(4))
    assert failed is not None and (failed.status, failed.error_code) == ("undelivered", 30003)
    # an unknown status is kept for the record but does not move the state
    odd = await db.update_message_status("SM9", "Partially_Delivered", at=at(5))
    assert odd is not None and odd.status == "undelivered"
    assert [h["status"] for h in odd.status_history] == [
        "pending", "queued", "sent", "undelivered", "partially_delivered"
    ]
    assert odd.status_history[3] == {
        "status": "undelivered", "at": at(4).isoformat(), "error_code": 30003
    }


_examples = itertools.count()
DELIVERY = ["queued", "sending", "sent", "delivered", "read"]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.sampled_from([
        (DELIVERY, "read"),
        (["queued", "sending", "sent", "failed"], "failed"),
        (["queued", "sent", "undelivered"], "undelivered"),
        (["queued", "sent", "delivered", "undelivered"], "delivered"),
        (["accepted", "queued", "sending", "sent", "delivered"], "delivered"),
    ]).flatmap(lambda c: st.tuples(st.permutations(c[0]), st.just(c[1]))),
)
async def test_out_of_order_callbacks_end_at_the_furthest_state(
    db: Database, case: tuple[list[str], str]
) -> None:
    order, furthest = case
    n = next(_examples)  # the database outlives examples: each gets its own message
    sid_text = f"SM{n}"
    await outbound(db, f"k-{n}")
    (item,) = await db.claim_outbox(now=at(1), limit=1, lease_s=30)
    await db.outbox_sent(item.id, sid_text, status="queued", at=at(1))
    for i, status in enumerate(order):
        await db.update_message_status(sid_text, status, at=at(2 + i))
    final = await db.update_message_status(sid_text, order[-1], at=at(99))
    assert final is not None and final.status == furthest
    # every callback is on record, in arrival order
    assert [h["status"] for h in final.status_history][2:-1] == list(order)


async def test_list_messages_is_the_latest_thread_oldest_first(db: Database) -> None:
    for i in range(5):
        await inbound(db, f"SM{i}", f"in {i}", when=i * 10)
        await outbound(db, f"k{i}", body=f"out {i}", when=i * 10 + 1)
    thread = await db.list_messages(MARIA, limit=4)
    assert [m.body for m in thread] == ["in 3", "out 3", "in 4", "out 4"]
    assert len(await db.list_messages("(415) 555-2671")) == 10


async def test_count_outbound_by_purpose_and_time(db: Database) -> None:
    await outbound(db, "m1", purpose="marketing", when=0)
    await outbound(db, "m2", purpose="marketing", when=100)
    await outbound(db, "c1", purpose="conversation", when=100)
    _, item, _ = await db.queue_outbound_message(
        phone=MARIA, channel="sms", purpose="marketing", body="x", from_addr=OURS,
        to_addr=MARIA, segments=1, idempotency_key="m3", at=at(200),
    )
    await db.outbox_cancel(item.id, "opted out")  # never left us: not counted
    await inbound(db, "SM1", when=150)
    assert await db.count_outbound(MARIA, since=at(0), purposes=["marketing"]) == 2
    assert await db.count_outbound(MARIA, since=at(50), purposes=["marketing"]) == 1
    assert await db.count_outbound(
        MARIA, since=at(0), purposes=["marketing", "conversation"]
    ) == 3
    assert await db.count_outbound(MARIA, since=at(0), purposes=[]) == 0


async def test_message_intent(db: Database) -> None:
    message = await inbound(db, "SM1", "book me for tuesday")
    await db.set_message_intent(message.id, "book", 0.92)
    (stored,) = await db.list_messages(MARIA)
    assert (stored.intent, stored.confidence) == ("book", pytest.approx(0.92))
    with pytest.raises(ValueError):
        await db.set_message_intent(message.id, "book", 1.5)


async def test_unprocessed_inbound_is_the_restart_to_do_list(db: Database) -> None:
    """Inbound without an intent, oldest first, inside the window, outbound never."""
    old = await inbound(db, "SM-old", when=-100)
    first = await inbound(db, "SM-a", when=10)
    done = await inbound(db, "SM-b", when=5)
    second = await inbound(db, "SM-c", when=20)
    await outbound(db, "reply:SM-a", when=11)
    email, _ = await db.record_inbound_message(
        phone=MARIA, channel="email", body="hello", from_addr="maria@example.com",
        to_addr="us@example.com", provider_sid="<m1@example.com>", segments=1, at=at(15))
    await db.set_message_intent(done.id, "question", 0.9)

    todo = await db.unprocessed_inbound(since=at(0), limit=10)
    assert [m.id for m in todo] == [first.id, email.id, second.id]
    assert [m.id for m in await db.unprocessed_inbound(since=at(0), limit=10,
                                                       channel="sms")] == [first.id, second.id]
    assert [m.id for m in await db.unprocessed_inbound(since=at(0), limit=1)] == [first.id]
    assert [m.id for m in await db.unprocessed_inbound(since=at(-200), limit=1)] == [old.id]

    await db.set_message_intent(first.id, "not_ours", None)  # a marker counts as processed
    assert [m.id for m in await db.unprocessed_inbound(since=at(0), limit=10,
                                                       channel="sms")] == [second.id]
    with pytest.raises(ValueError):
        await db.unprocessed_inbound(since=at(0), limit=10, channel="fax")
