"""The gate over a real store: facts come from the consent trail, DNC, leads and messages;
every decision lands in the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from agents.compliance.engine import ContactRequest, Decision
from agents.compliance.gate import DECISIONS, check_and_audit, gather
from store.database import Database
from store.models import LeadInput

MIAMI = "+13055550123"
NYC = "+12125550123"
# A Wednesday, 15:00 in New York / Miami.
NOON = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)
NIGHT = datetime(2026, 6, 11, 3, 30, tzinfo=UTC)  # 23:30 local


def req(phone: str, at: datetime, *, channel: str = "sms", purpose: str = "marketing",
        **kw: object) -> ContactRequest:
    return ContactRequest(phone=phone, channel=channel, purpose=purpose, at=at,  # type: ignore[arg-type]
                          **kw)  # type: ignore[arg-type]


async def audited(db: Database) -> list[dict[str, object]]:
    return [e.detail for e in await db.list_audit(kind="compliance", limit=100)]


async def queue(db: Database, phone: str, purpose: str, at: datetime, key: str) -> None:
    await db.queue_outbound_message(phone=phone, channel="sms", purpose=purpose, body="hi",
                                    from_addr="+13055550100", to_addr=phone, segments=1,
                                    idempotency_key=key, at=at)


async def test_allowed_decision_is_audited_with_its_facts(db: Database) -> None:
    before = DECISIONS["allowed"]
    decision = await check_and_audit(db, req(MIAMI, NOON), source="test")
    assert decision == Decision(True, "allowed", ["America/New_York"], None, ["FL"])
    [entry] = await audited(db)
    assert entry["phone"] == MIAMI and entry["reason"] == "allowed"
    assert entry["allowed"] is True and entry["source"] == "test"
    assert entry["at"] == NOON.isoformat() and entry["zones"] == ["America/New_York"]
    assert DECISIONS["allowed"] == before + 1


async def test_opt_out_in_the_store_blocks_every_channel(db: Database) -> None:
    await db.add_consent_event(MIAMI, "opt_out", "sms", "stop texting me", at=NOON)
    for channel in ("sms", "voice", "email"):
        decision = await check_and_audit(db, req(MIAMI, NOON + timedelta(minutes=1),
                                                 channel=channel))
        assert (decision.allowed, decision.reason) == (False, "opted_out")
    assert [e["reason"] for e in await audited(db)] == ["opted_out"] * 3
    # An opt-in later restores contact.
    await db.add_consent_event(MIAMI, "opt_in", "sms", "START", at=NOON + timedelta(minutes=5))
    assert (await check_and_audit(db, req(MIAMI, NOON + timedelta(minutes=6)))).allowed


async def test_dnc_blocks_and_the_caller_cannot_weaken_facts(db: Database) -> None:
    await db.dnc_add([NYC], reason="asked on a call")
    decision = await check_and_audit(db, req(NYC, NOON, channel="voice"))
    assert decision.reason == "dnc"
    # The caller says opted out; the store knows nothing: still refused.
    told = await check_and_audit(db, req(MIAMI, NOON, opted_out=True))
    assert told.reason == "opted_out"


async def test_lead_state_from_the_store(db: Database) -> None:
    await db.upsert_leads([LeadInput(NYC, first_name="Ann", state="FL")])
    evening = datetime(2026, 6, 11, 0, 30, tzinfo=UTC)  # 20:30 in New York
    decision = await check_and_audit(db, req(NYC, evening))
    assert (decision.reason, decision.states) == ("quiet_hours", ["FL", "NY"])
    assert decision.next_allowed_at == datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
    # The caller's own state wins over the stored one (it can only add rules).
    assert (await gather(db, req(NYC, evening, lead_state="TX"))).lead_state == "TX"


async def test_conversation_window_from_the_last_inbound(db: Database) -> None:
    await db.record_inbound_message(phone=MIAMI, channel="sms", body="are you open?",
                                    from_addr=MIAMI, to_addr="+13055550100",
                                    provider_sid="SM" + "1" * 32, segments=1,
                                    at=NIGHT - timedelta(minutes=4))
    reply = await check_and_audit(db, req(MIAMI, NIGHT, purpose="conversation"))
    assert (reply.allowed, reply.reason) == (True, "allowed_conversation")
    late = await check_and_audit(db, req(MIAMI, NIGHT + timedelta(minutes=12),
                                         purpose="conversation"))
    assert late.reason == "quiet_hours"
    assert late.next_allowed_at == datetime(2026, 6, 11, 12, 0, tzinfo=UTC)


async def test_frequency_cap_from_queued_marketing(db: Database) -> None:
    first = NOON - timedelta(hours=20)
    for i, at in enumerate([first, NOON - timedelta(hours=3), NOON - timedelta(hours=1)]):
        await queue(db, MIAMI, "marketing", at, f"m{i}")
    # Replies and confirmations do not count toward the cap.
    await queue(db, MIAMI, "conversation", NOON - timedelta(minutes=30), "c1")
    facts = await gather(db, req(MIAMI, NOON))
    assert len(facts.recent_contacts) == 3
    decision = await check_and_audit(db, req(MIAMI, NOON))
    assert (decision.allowed, decision.reason) == (False, "frequency_cap")
    # 24 h after the first: 23:00 UTC, 19:00 in Miami, inside Florida's window.
    assert decision.next_allowed_at == datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    assert (await check_and_audit(db, req(MIAMI, decision.next_allowed_at))).allowed
    # New York has no cap.
    for i in range(4):
        await queue(db, NYC, "marketing", NOON - timedelta(hours=i + 1), f"n{i}")
    assert (await check_and_audit(db, req(NYC, NOON))).allowed


async def test_dialer_calls_count_toward_the_cap(db: Database) -> None:
    asked: list[tuple[str, datetime]] = []

    async def calls(phone: str, since: datetime) -> Sequence[datetime]:
        asked.append((phone, since))
        return [NOON - timedelta(hours=h) for h in (1, 2, 3)]

    decision = await check_and_audit(db, req(MIAMI, NOON, channel="voice"),
                                     extra_contacts=calls)
    assert decision.reason == "frequency_cap"
    assert asked == [(MIAMI, NOON - timedelta(hours=24))]


async def test_one_opt_out_confirmation(db: Database) -> None:
    await db.add_consent_event(MIAMI, "opt_out", "sms", "STOP", at=NIGHT)
    confirm = req(MIAMI, NIGHT + timedelta(seconds=5), purpose="opt_out_confirmation")
    first = await check_and_audit(db, confirm)
    assert (first.allowed, first.reason) == (True, "allowed_opt_out_confirmation")
    await queue(db, MIAMI, "opt_out_confirmation", NIGHT + timedelta(seconds=6), "confirm")
    second = await check_and_audit(db, confirm)
    assert (second.allowed, second.reason) == (False, "opted_out")
    # Opt in, opt out again: a new confirmation is due for the new opt-out.
    await db.add_consent_event(MIAMI, "opt_in", "sms", "START", at=NIGHT + timedelta(hours=1))
    await db.add_consent_event(MIAMI, "opt_out", "sms", "STOP", at=NIGHT + timedelta(hours=2))
    again = req(MIAMI, NIGHT + timedelta(hours=2, seconds=3), purpose="opt_out_confirmation")
    assert (await check_and_audit(db, again)).reason == "allowed_opt_out_confirmation"


async def test_unusable_numbers_are_refused_and_audited(db: Database) -> None:
    for bad in ("+15555550123", "hello", "", "9" * 100):
        decision = await check_and_audit(db, req(bad, NOON))
        assert (decision.allowed, decision.reason) == (False, "invalid_number")
    assert [e["reason"] for e in await audited(db)] == ["invalid_number"] * 4
    # National format is normalised before the store is asked.
    await db.dnc_add([MIAMI])
    assert (await check_and_audit(db, req("(305) 555-0123", NOON))).reason == "dnc"
