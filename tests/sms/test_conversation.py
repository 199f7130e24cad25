"""The conversation flow over real SQL, the real compliance engine and the text agent
(templated replies: no LLM here; the end-to-end tests use the fake Chat Completions
server), with the outbox drained by the real sender into the Twilio REST fake."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from agents.chat.settings import SmsSettings
from agents.compliance.settings import ComplianceSettings
from sms.agent import ChatReplyAgent
from sms.compliance import EngineCompliance, EngineWording
from sms.conversation import Conversation
from sms.sender import OutboxSender, TwilioSmsTransport
from sms.settings import OutboxSettings
from sms.webhooks import InboundSms, StatusReport
from store.database import Database
from store.models import LeadInput
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.sms.conftest import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Clock

LEAD = "+14155552671"  # San Francisco: America/Los_Angeles
OWNER = "+14155550199"


@dataclass
class Rig:
    db: Database
    conv: Conversation
    sender: OutboxSender
    twilio: FakeTwilioRest
    clock: Clock
    seq: int = 0

    async def text(self, body: str, *, sid: str | None = None, to: str = OUR_NUMBER,
                   opt_out_type: str | None = None, frm: str = LEAD) -> str:
        self.seq += 1
        msg = InboundSms(message_sid=sid or f"SM{self.seq:032x}", from_number=frm,
                         to_number=to, body=body, opt_out_type=opt_out_type)
        outcome = await self.conv.receive(msg)
        await self.conv.drain()
        await self.sender.drain_once()
        return outcome

    def bodies(self, to: str = LEAD) -> list[str]:
        return [m.body for m in self.twilio.messages if m.to == to]


@pytest.fixture
async def rig(db: Database, twilio: FakeTwilioRest, clock: Clock) -> AsyncIterator[Rig]:
    sms = SmsSettings(from_number=OUR_NUMBER, business_name="Acme Solar",
                      booking_url="https://book.example.com/acme", owner_phone=OWNER)
    compliance = ComplianceSettings()
    transport = TwilioSmsTransport(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio.base_url)
    sender_box: list[OutboxSender] = []
    conv = Conversation(db, EngineCompliance(db, lambda: compliance),
                        ChatReplyAgent(lambda: sms, clock), EngineWording(lambda: sms),
                        settings=lambda: sms, clock=clock,
                        wake_sender=lambda: sender_box[0].wake() if sender_box else None)
    cfg = OutboxSettings()
    sender = OutboxSender(db, transport, settings=lambda: cfg, max_mps=lambda: 100.0,
                          gate=conv.gate, clock=clock, rng=random.Random(3))
    sender_box.append(sender)
    await db.upsert_leads([LeadInput(phone=LEAD, first_name="Dana", state="CA")])
    try:
        yield Rig(db, conv, sender, twilio, clock)
    finally:
        await transport.aclose()
        await conv.agent.aclose()  # type: ignore[attr-defined]


async def test_a_question_gets_a_reply(rig: Rig) -> None:
    assert await rig.text("How much does a panel install cost?") == "accepted"
    replies = rig.bodies()
    assert len(replies) == 1 and "Dana" in replies[0]
    thread = await rig.db.list_messages(LEAD)
    assert [m.direction for m in thread] == ["inbound", "outbound"]
    assert thread[0].intent == "question"
    assert thread[1].purpose == "conversation" and thread[1].provider_sid


async def test_stop_texting_me_gets_exactly_one_confirmation(rig: Rig) -> None:
    await rig.text("Is this Acme?")
    before = len(rig.bodies())
    assert await rig.text("please stop texting me") == "accepted"
    confirmations = rig.bodies()[before:]
    assert len(confirmations) == 1
    assert "unsubscribed" in confirmations[0].lower()
    assert "http" not in confirmations[0]  # no link, no marketing in it
    assert await rig.db.is_opted_out(LEAD)
    # A second STOP, a question, a campaign touch and an operator send: nothing goes out.
    await rig.text("STOP")
    await rig.text("why did you text me?")
    refused = await rig.conv.send(LEAD, "Big sale this week!", "marketing", "campaign:1")
    assert refused.state == "refused" and refused.reason == "opted_out"
    await rig.sender.drain_once()
    assert rig.bodies()[before:] == confirmations
    kinds = [e.kind for e in await rig.db.list_consent_events(LEAD)]
    assert kinds == ["opt_out", "opt_out"]
    inbound = [m for m in await rig.db.list_messages(LEAD) if m.direction == "inbound"]
    assert [m.intent for m in inbound[1:3]] == ["opt_out", "opt_out"]
    assert rig.conv.stats.silenced == 1


async def test_help_and_start(rig: Rig) -> None:
    await rig.text("HELP")
    assert "Reply STOP" in rig.bodies()[-1] and "Acme Solar" in rig.bodies()[-1]
    await rig.text("STOP")
    await rig.text("START")
    assert "subscribed again" in rig.bodies()[-1]
    assert not await rig.db.is_opted_out(LEAD)
    await rig.text("What areas do you serve?")
    assert len(rig.bodies()) == 4  # help, stop confirmation, start confirmation, reply
    purposes = [m.purpose for m in await rig.db.list_messages(LEAD) if m.direction == "outbound"]
    assert purposes == ["help", "opt_out_confirmation", "opt_in_confirmation", "conversation"]


async def test_yes_from_a_lead_who_never_opted_out_is_an_answer(rig: Rig) -> None:
    await rig.text("YES")
    assert not [e for e in await rig.db.list_consent_events(LEAD)]
    assert "book.example.com" in rig.bodies()[-1]
    lead = await rig.db.get_lead(LEAD)
    assert lead is not None and lead.status == "interested"


async def test_a_duplicated_message_sid_is_processed_once(rig: Rig) -> None:
    sid = "SM" + "d" * 32
    assert await rig.text("Do you install batteries?", sid=sid) == "accepted"
    assert await rig.text("Do you install batteries?", sid=sid) == "duplicate"
    assert len(rig.bodies()) == 1
    assert len([m for m in await rig.db.list_messages(LEAD) if m.direction == "inbound"]) == 1


async def test_twilio_advanced_opt_out_already_answered(rig: Rig) -> None:
    await rig.text("STOP", opt_out_type="STOP")
    assert await rig.db.is_opted_out(LEAD)
    assert rig.bodies() == []  # Twilio sent its own confirmation


async def test_a_number_that_is_not_ours(rig: Rig) -> None:
    assert await rig.text("hello?", to="+14155550000") == "not_ours"
    assert rig.bodies() == []
    assert len(await rig.db.list_messages(LEAD)) == 1


async def test_a_stranger_becomes_a_lead(rig: Rig) -> None:
    stranger = "+14155552699"
    await rig.text("Who is this?", frm=stranger)
    lead = await rig.db.get_lead(stranger)
    assert lead is not None and lead.source == "sms"
    assert len(rig.bodies(stranger)) == 1


async def test_handoff_alerts_the_owner_once_a_day(rig: Rig) -> None:
    await rig.text("I'd like to talk to someone about a quote")
    await rig.text("hello? anyone?")
    alerts = rig.bodies(OWNER)
    assert len(alerts) == 1 and LEAD in alerts[0]


async def test_quiet_hours_deferral_is_released_at_the_local_start(rig: Rig) -> None:
    # 10:00 UTC = 03:00 in San Francisco (PDT): marketing waits for 08:00 local = 15:00 UTC.
    rig.clock.at = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)
    queued = await rig.conv.send(LEAD, "Solar rebates end Friday.", "marketing", "camp:7")
    assert queued.state == "deferred" and queued.reason == "quiet_hours"
    assert queued.next_allowed_at == datetime(2026, 6, 9, 15, 0, tzinfo=UTC)
    rig.clock.at = datetime(2026, 6, 9, 14, 59, tzinfo=UTC)
    assert await rig.sender.drain_once() == 0
    rig.clock.at = datetime(2026, 6, 9, 15, 0, tzinfo=UTC)
    assert await rig.sender.drain_once() == 1
    assert rig.bodies() == ["Solar rebates end Friday."]


async def test_a_deferred_text_is_cancelled_if_the_lead_opts_out_meanwhile(rig: Rig) -> None:
    rig.clock.at = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)
    queued = await rig.conv.send(LEAD, "Solar rebates end Friday.", "marketing", "camp:8")
    assert queued.state == "deferred"
    await rig.text("unsubscribe")  # the confirmation goes out at once, even at 03:00
    assert len(rig.bodies()) == 1
    rig.clock.at = datetime(2026, 6, 9, 15, 0, tzinfo=UTC)
    await rig.sender.drain_once()
    assert len(rig.bodies()) == 1
    msg = next(m for m in await rig.db.list_messages(LEAD) if m.id == queued.message_id)
    assert msg.status == "cancelled"


async def test_status_callbacks_out_of_order(rig: Rig) -> None:
    await rig.text("Do you do roofs too?")
    sid = rig.twilio.messages[0].sid
    for status in ("delivered", "sent", "queued"):
        msg = await rig.conv.status(StatusReport(message_sid=sid, status=status))
        assert msg is not None
    assert msg.status == "delivered"
    assert [h["status"] for h in msg.status_history][-3:] == ["delivered", "sent", "queued"]
    assert await rig.conv.status(StatusReport(message_sid="SM" + "0" * 32,
                                              status="sent")) is None
    assert rig.conv.stats.unknown_status_sids == 1


async def test_a_late_21610_report_opts_the_lead_out(rig: Rig) -> None:
    await rig.text("Do you do roofs too?")
    sid = rig.twilio.messages[0].sid
    await rig.conv.status(StatusReport(message_sid=sid, status="failed", error_code=21610))
    assert await rig.db.is_opted_out(LEAD)


async def test_a_callback_that_overtakes_our_commit_is_kept(rig: Rig) -> None:
    import asyncio

    _, item, _ = await rig.db.queue_outbound_message(
        phone=LEAD, channel="sms", purpose="conversation", body="hi", from_addr=OUR_NUMBER,
        to_addr=LEAD, segments=1, idempotency_key="conversation:race", at=rig.clock())
    sid = "SM" + "7" * 32
    early = asyncio.ensure_future(rig.conv.status(StatusReport(message_sid=sid,
                                                               status="sent")))
    await asyncio.sleep(0.02)  # the callback is in, our commit of the SID is not yet
    await rig.db.claim_outbox(now=rig.clock(), limit=5, lease_s=30)
    await rig.db.outbox_sent(item.id, sid, status="queued")
    msg = await early
    assert msg is not None and msg.status == "sent"
    assert rig.conv.stats.early_status == 1 and rig.conv.stats.unknown_status_sids == 0


async def _store_only(rig: Rig, body: str, sid: str, *, to: str = OUR_NUMBER) -> None:
    """An inbound text committed by a process that died before processing it."""
    await rig.db.record_inbound_message(phone=LEAD, channel="sms", body=body, from_addr=LEAD,
                                        to_addr=to, provider_sid=sid, segments=1,
                                        at=rig.clock())


async def test_recovery_answers_what_a_crash_left_unprocessed_once(rig: Rig) -> None:
    await _store_only(rig, "How much does a panel install cost?", "SM" + "1" * 32)
    rig.clock.advance(seconds=1)
    await _store_only(rig, "HELP", "SM" + "2" * 32)
    rig.clock.advance(seconds=1)
    await _store_only(rig, "hello", "SM" + "3" * 32, to="+14155550999")  # not ours
    rig.clock.advance(seconds=5)
    assert await rig.conv.recover(window_s=86400) == 3
    await rig.sender.drain_once()
    bodies = rig.bodies()
    assert len(bodies) == 2 and "Dana" in bodies[0] and "Reply STOP" in bodies[1]
    inbound = [m for m in await rig.db.list_messages(LEAD) if m.direction == "inbound"]
    assert [m.intent for m in inbound] == ["question", "help", "not_ours"]
    # A second start finds nothing; replaying the processing sends nothing new either.
    assert await rig.conv.recover(window_s=86400) == 0
    for m in inbound[:2]:  # the webhook path's `process` (not_ours is decided before it)
        await rig.conv.process(m, rig.conv._as_inbound(m))
    await rig.sender.drain_once()
    assert rig.bodies() == bodies
    assert rig.conv.stats.recovered == 3


async def test_recovery_is_bounded_by_its_window_and_start(rig: Rig) -> None:
    await _store_only(rig, "Are you open on Saturday?", "SM" + "4" * 32)
    rig.clock.advance(hours=25)
    started = rig.clock()
    rig.clock.advance(seconds=1)
    await _store_only(rig, "What areas do you serve?", "SM" + "5" * 32)  # the live path's
    assert await rig.conv.recover(window_s=24 * 3600, before=started) == 0
    rig.clock.advance(seconds=1)
    assert await rig.conv.recover(window_s=26 * 3600) == 2


async def test_an_opt_out_interrupted_after_its_consent_event_still_confirms_once(
        rig: Rig) -> None:
    sid = "SM" + "6" * 32
    await _store_only(rig, "please stop texting me", sid)
    # The crashed attempt got as far as the consent event.
    await rig.db.add_consent_event(LEAD, "opt_out", "sms", "please stop texting me",
                                   at=rig.clock(), source=f"sms:{sid}")
    rig.clock.advance(seconds=2)
    assert await rig.conv.recover(window_s=3600) == 1
    assert await rig.conv.recover(window_s=3600) == 0
    await rig.sender.drain_once()
    assert len(rig.bodies()) == 1 and "unsubscribed" in rig.bodies()[0].lower()
    assert [e.kind for e in await rig.db.list_consent_events(LEAD)] == ["opt_out"]


async def test_an_opt_in_interrupted_after_its_consent_event_is_not_a_plain_yes(
        rig: Rig) -> None:
    await rig.text("STOP")
    sid = "SM" + "7" * 32
    rig.clock.advance(seconds=5)
    await _store_only(rig, "START", sid)
    await rig.db.add_consent_event(LEAD, "opt_in", "sms", "START", at=rig.clock(),
                                   source=f"sms:{sid}")
    rig.clock.advance(seconds=2)
    assert await rig.conv.recover(window_s=3600) == 1
    await rig.sender.drain_once()
    assert "subscribed again" in rig.bodies()[-1] and len(rig.bodies()) == 2
    assert [e.kind for e in await rig.db.list_consent_events(LEAD)] == ["opt_out", "opt_in"]


async def test_every_path_leaves_an_intent_or_a_marker(rig: Rig) -> None:
    await rig.text("What areas do you serve?")
    await rig.text("HELP")
    await rig.text("hi", to="+14155550999")
    await rig.db.set_human_takeover(LEAD, True)
    await rig.text("Are you there?")
    await rig.db.set_human_takeover(LEAD, False)
    await rig.text("STOP")
    await rig.text("STOP", opt_out_type="STOP")
    await rig.text("START", opt_out_type="START")
    await rig.text("HELP", opt_out_type="HELP")
    await rig.text("Thanks")
    await rig.text("hello", frm="+14155550142")  # a stranger: a new lead
    assert await rig.db.unprocessed_inbound(since=datetime(2020, 1, 1, tzinfo=UTC),
                                            limit=100) == []
