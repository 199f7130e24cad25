"""The outbox sender against real SQL (both backends) and the Twilio REST fake via the SDK."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from sms.sender import (
    GateVerdict,
    OutboxSender,
    TwilioSmsTransport,
    outbox_key,
    purpose_of,
)
from sms.settings import OutboxSettings
from store.database import Database
from store.models import LeadInput, OutboxItem
from tests.fakes.twilio_rest import FakeTwilioRest, Fault
from tests.sms.conftest import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Clock

LEAD = "+14155552671"


class Sleeps:
    """Records throttle waits instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_sender(db: Database, twilio: FakeTwilioRest, clock: Clock, *, mps: float = 100.0,
                timeout_s: float = 2.0, gate=None, sleeps: Sleeps | None = None,
                **settings: float) -> OutboxSender:
    cfg = OutboxSettings(send_timeout_s=timeout_s, lease_s=30, backoff_base_s=5,
                         backoff_cap_s=60, **settings)  # type: ignore[arg-type]
    transport = TwilioSmsTransport(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio.base_url,
                                   timeout_s=timeout_s)
    mono = [0.0]
    return OutboxSender(db, transport, settings=lambda: cfg, max_mps=lambda: mps,
                        status_callback_url=lambda: "http://127.0.0.1:9/twilio/sms-status",
                        gate=gate, clock=clock, monotonic=lambda: mono[0],
                        sleep=sleeps or Sleeps(), rng=random.Random(1))


async def queue(db: Database, clock: Clock, body: str = "Hello from us",
                purpose: str = "conversation", origin: str = "t1", to: str = LEAD
                ) -> OutboxItem:
    _, item, created = await db.queue_outbound_message(
        phone=to, channel="sms", purpose=purpose, body=body, from_addr=OUR_NUMBER,
        to_addr=to, segments=1, idempotency_key=outbox_key(purpose, origin), at=clock())
    assert created
    return item


async def message_of(db: Database, item: OutboxItem, phone: str = LEAD):
    return next(m for m in await db.list_messages(phone) if m.id == item.message_id)


def test_keys_carry_the_purpose() -> None:
    assert purpose_of(outbox_key("opt_out_confirmation", "stop:SM1")) == "opt_out_confirmation"
    assert purpose_of("something-else") == "marketing"
    with pytest.raises(ValueError):
        outbox_key("spam", "x")


async def test_a_queued_row_is_sent_once(db: Database, twilio: FakeTwilioRest,
                                         clock: Clock) -> None:
    item = await queue(db, clock, body="Hi 👋 — still interested?")
    sender = make_sender(db, twilio, clock)
    try:
        assert await sender.drain_once() == 1
        assert await sender.drain_once() == 0
    finally:
        await sender.transport.aclose()
    assert len(twilio.messages) == 1
    sent = twilio.messages[0]
    assert (sent.to, sent.from_, sent.body) == (LEAD, OUR_NUMBER, "Hi 👋 — still interested?")
    assert sent.status_callback == "http://127.0.0.1:9/twilio/sms-status"
    msg = await message_of(db, item)
    assert msg.provider_sid == sent.sid
    assert msg.status == "queued"
    assert await db.outbox_pending_count() == 0
    assert sender.stats.sent == 1


async def test_messaging_service_sender(db: Database, twilio: FakeTwilioRest,
                                        clock: Clock) -> None:
    service = "MG" + "1" * 32
    await db.queue_outbound_message(
        phone=LEAD, channel="sms", purpose="marketing", body="x", from_addr=service,
        to_addr=LEAD, segments=1, idempotency_key="marketing:mg", at=clock())
    sender = make_sender(db, twilio, clock)
    try:
        await sender.drain_once()
    finally:
        await sender.transport.aclose()
    assert (twilio.messages[0].messaging_service_sid, twilio.messages[0].from_) == (service, "")


async def test_5xx_is_retried_with_backoff(db: Database, twilio: FakeTwilioRest,
                                           clock: Clock) -> None:
    item = await queue(db, clock)
    twilio.faults.append(Fault(503, 20503, "Service Unavailable"))
    sender = make_sender(db, twilio, clock)
    try:
        await sender.drain_once()
        assert sender.stats.retried == 1 and not twilio.messages
        assert await sender.drain_once() == 0  # not due yet: backoff
        clock.advance(seconds=2.4)  # first retry after 2.5..5 s
        assert await sender.drain_once() == 0
        clock.advance(seconds=3)
        assert await sender.drain_once() == 1
    finally:
        await sender.transport.aclose()
    assert len(twilio.messages) == 1
    assert (await message_of(db, item)).provider_sid == twilio.messages[0].sid


async def test_a_timeout_is_retried(db: Database, twilio: FakeTwilioRest, clock: Clock) -> None:
    await queue(db, clock)
    twilio.faults.append(Fault(hang_s=3.0))
    sender = make_sender(db, twilio, clock, timeout_s=0.5)
    try:
        await sender.drain_once()
        assert sender.stats.retried == 1
        clock.advance(seconds=10)
        await sender.drain_once()
    finally:
        await sender.transport.aclose()
    assert sender.stats.sent == 1
    assert twilio.message_requests == 2


async def test_gives_up_after_max_attempts(db: Database, twilio: FakeTwilioRest,
                                           clock: Clock) -> None:
    item = await queue(db, clock)
    twilio.faults.extend(Fault(500, 20500) for _ in range(3))
    sender = make_sender(db, twilio, clock, max_attempts=3)
    try:
        for _ in range(5):
            await sender.drain_once()
            clock.advance(seconds=120)
    finally:
        await sender.transport.aclose()
    assert twilio.message_requests == 3
    msg = await message_of(db, item)
    assert msg.status == "failed"
    assert (sender.stats.retried, sender.stats.failed) == (2, 1)


async def test_21610_marks_the_recipient_opted_out(db: Database, twilio: FakeTwilioRest,
                                                   clock: Clock) -> None:
    await db.upsert_leads([LeadInput(phone=LEAD, first_name="Ana")])
    item = await queue(db, clock)
    twilio.unsubscribed.add(LEAD)
    sender = make_sender(db, twilio, clock)
    try:
        await sender.drain_once()
        clock.advance(hours=1)
        assert await sender.drain_once() == 0  # never retried
    finally:
        await sender.transport.aclose()
    assert twilio.message_requests == 1
    msg = await message_of(db, item)
    assert (msg.status, msg.error_code) == ("failed", 21610)
    assert await db.is_opted_out(LEAD)
    events = await db.list_consent_events(LEAD)
    assert [(e.kind, e.channel) for e in events] == [("opt_out", "twilio_error")]
    lead = await db.get_lead(LEAD)
    assert lead is not None and lead.status == "opted_out"


async def test_invalid_number_marks_wrong_number(db: Database, twilio: FakeTwilioRest,
                                                 clock: Clock) -> None:
    await db.upsert_leads([LeadInput(phone=LEAD)])
    await queue(db, clock)
    twilio.faults.append(Fault(400, 21211, "The 'To' number is not a valid phone number."))
    sender = make_sender(db, twilio, clock)
    try:
        await sender.drain_once()
    finally:
        await sender.transport.aclose()
    lead = await db.get_lead(LEAD)
    assert lead is not None and lead.status == "wrong_number"
    assert not await db.is_opted_out(LEAD)


async def test_throttle_paces_one_sender(db: Database, twilio: FakeTwilioRest,
                                         clock: Clock) -> None:
    for n in range(3):
        await queue(db, clock, origin=f"r{n}", body=f"message {n}")
    sleeps = Sleeps()
    sender = make_sender(db, twilio, clock, mps=1.0, sleeps=sleeps)
    try:
        await sender.drain_once()
    finally:
        await sender.transport.aclose()
    assert sorted(sleeps.waits) == pytest.approx([1.0, 2.0])
    assert sender.throttle.waits == 2
    assert [m.body for m in twilio.messages] == ["message 0", "message 1", "message 2"]


async def test_gate_cancels_or_defers(db: Database, twilio: FakeTwilioRest,
                                      clock: Clock) -> None:
    cancel = await queue(db, clock, origin="c")
    defer = await queue(db, clock, origin="d", to="+14155552672")
    later = clock() + timedelta(hours=10)

    async def gate(item: OutboxItem, purpose: str) -> GateVerdict:
        assert purpose == "conversation"
        if item.id == cancel.id:
            return GateVerdict("cancel", "opted_out")
        return GateVerdict("defer", "quiet_hours", later)

    sender = make_sender(db, twilio, clock, gate=gate)
    try:
        assert await sender.drain_once() == 2
        assert not twilio.messages
        clock.advance(hours=9)
        assert await sender.drain_once() == 0
        clock.advance(hours=1)
        sender.gate = None
        assert await sender.drain_once() == 1
    finally:
        await sender.transport.aclose()
    assert [m.to for m in twilio.messages] == ["+14155552672"]
    assert (await message_of(db, cancel)).status == "cancelled"
    assert (await message_of(db, defer, "+14155552672")).provider_sid is not None


async def test_a_row_whose_sender_died_is_sent_after_its_lease(
        db: Database, twilio: FakeTwilioRest, clock: Clock) -> None:
    item = await queue(db, clock)
    # Another process claimed it and died before the REST call.
    dead = await db.claim_outbox(now=clock(), limit=10, lease_s=30)
    assert [i.id for i in dead] == [item.id]
    sender = make_sender(db, twilio, clock)
    try:
        assert await sender.drain_once() == 0  # still leased
        clock.advance(seconds=31)
        assert await sender.drain_once() == 1
    finally:
        await sender.transport.aclose()
    assert len(twilio.messages) == 1


async def test_the_worker_loop_drains_and_wakes(db: Database, twilio: FakeTwilioRest,
                                                clock: Clock) -> None:
    import asyncio

    cfg = OutboxSettings(poll_s=30)
    transport = TwilioSmsTransport(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio.base_url)
    sender = OutboxSender(db, transport, settings=lambda: cfg, max_mps=lambda: 50.0,
                          clock=clock)
    sender.start()
    try:
        await asyncio.sleep(0.2)
        await queue(db, clock)
        sender.wake()  # without it the next poll is 30 s away
        for _ in range(100):
            if twilio.messages:
                break
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
        await transport.aclose()
    assert len(twilio.messages) == 1


async def test_a_database_blip_after_twilio_accepted_sends_nothing_twice(
        db: Database, twilio: FakeTwilioRest, clock: Clock) -> None:
    """benchmarks/chaos.sh (PostgreSQL restarted while texts were going out): Twilio took
    the text, the commit of its SID failed, the lease lapsed and the row was sent again.
    The commit is now retried while the lease holds: one text, the row sent."""
    from store.errors import StoreUnavailable

    class Blip:
        failures = 2

        def __getattr__(self, name: str):
            return getattr(db, name)

        async def outbox_sent(self, *args, **kw):
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("PostgreSQL lost during outbox sent: restarting")
            return await db.outbox_sent(*args, **kw)

    item = await queue(db, clock)
    sleeps = Sleeps()
    sender = make_sender(Blip(), twilio, clock, sleeps=sleeps)  # type: ignore[arg-type]
    try:
        assert await sender.drain_once() == 1
        clock.advance(seconds=31)  # past the lease: nothing left to re-claim
        assert await sender.drain_once() == 0
    finally:
        await sender.transport.aclose()
    assert len(twilio.messages) == 1
    assert sender.stats.sent == 1 and sender.stats.sent_commit_retries == 2
    assert sleeps.waits[-2:] == [0.2, 0.4]
    assert (await message_of(db, item)).provider_sid == twilio.messages[0].sid
