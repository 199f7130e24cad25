"""Conformance for leads, consent and DNC: the same tests on SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.database import Database, clean_lead_input, open_database
from store.models import LEAD_STATUSES, LeadInput, LeadUpsertResult
from store.phones import InvalidPhoneNumber
from tests.store.conftest import BACKENDS, backend_url

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MARIA = "+14155552671"
ANN = "+14155550100"
BOB = "+14155550101"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# upsert ----------------------------------------------------------------------


async def test_upsert_counts_created_updated_unchanged(db: Database) -> None:
    rows = [
        LeadInput(MARIA, first_name="Maria", state="ca"),
        LeadInput(ANN, first_name="Ann", email="ann@example.com"),
        LeadInput(BOB),
    ]
    assert await db.upsert_leads(rows) == LeadUpsertResult(3, 0, 0)
    assert await db.upsert_leads(rows) == LeadUpsertResult(0, 0, 3)
    changed = [rows[0], LeadInput(ANN, last_name="Lee"), rows[2]]
    assert await db.upsert_leads(changed) == LeadUpsertResult(0, 1, 2)
    maria = await db.get_lead("(415) 555-2671")
    assert maria is not None
    assert (maria.phone, maria.first_name, maria.state, maria.status) == (
        MARIA, "Maria", "CA", "new"
    )
    assert maria.opted_out is False and maria.dnc is False and maria.human_takeover is False
    assert maria.created_at.tzinfo is not None
    assert await db.upsert_leads([]) == LeadUpsertResult(0, 0, 0)


async def test_none_and_blank_never_erase_and_attributes_merge(db: Database) -> None:
    await db.upsert_leads([
        LeadInput(MARIA, first_name="Maria", email="m@example.com",
                  attributes={"zip": "94103", "plan": "gold"}, source="fair")
    ])
    first = await db.get_lead(MARIA)
    assert first is not None
    result = await db.upsert_leads([
        LeadInput(MARIA, first_name=None, email="  ", last_name="Núñez",
                  attributes={"plan": "silver", "pet": "cat"})
    ])
    assert result == LeadUpsertResult(0, 1, 0)
    lead = await db.get_lead(MARIA)
    assert lead is not None
    assert (lead.first_name, lead.last_name, lead.email, lead.source) == (
        "Maria", "Núñez", "m@example.com", "fair"
    )
    assert lead.attributes == {"zip": "94103", "plan": "silver", "pet": "cat"}
    assert lead.created_at == first.created_at
    assert lead.updated_at >= first.updated_at


async def test_reimport_never_touches_status(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA, first_name="Maria")])
    booked = await db.set_lead_status(MARIA, "booked")
    assert booked is not None and booked.status == "booked"
    await db.upsert_leads([LeadInput(MARIA, first_name="María")])
    lead = await db.get_lead(MARIA)
    assert lead is not None and (lead.status, lead.first_name) == ("booked", "María")


async def test_same_phone_twice_in_one_batch_applies_in_order(db: Database) -> None:
    result = await db.upsert_leads([
        LeadInput("415-555-2671", first_name="Maria"),
        LeadInput(MARIA, last_name="Lopez"),
        LeadInput("+1 (415) 555 2671", last_name="Lopez"),
    ])
    assert result == LeadUpsertResult(1, 1, 1)
    lead = await db.get_lead(MARIA)
    assert lead is not None and (lead.first_name, lead.last_name) == ("Maria", "Lopez")
    assert len(await db.list_leads()) == 1


async def test_a_bad_phone_refuses_the_whole_batch(db: Database) -> None:
    with pytest.raises(InvalidPhoneNumber, match="row 1"):
        await db.upsert_leads([LeadInput(MARIA), LeadInput("not a phone")])
    assert await db.get_lead(MARIA) is None


@pytest.mark.parametrize(
    "bad",
    [
        LeadInput(MARIA, first_name="x" * 400),
        LeadInput(MARIA, attributes={"": "x"}),
        LeadInput(MARIA, attributes={"k": "v" * 3000}),
        LeadInput(MARIA, attributes={str(i): "v" for i in range(101)}),
    ],
)
def test_clean_lead_input_refuses_oversized_fields(bad: LeadInput) -> None:
    with pytest.raises(ValueError, match="row 7"):
        clean_lead_input(bad, row=7)


async def test_caller_link_both_ways(db: Database) -> None:
    caller = await db.set_caller_name(MARIA, "Maria")
    await db.upsert_leads([LeadInput(MARIA), LeadInput(ANN)])
    maria = await db.get_lead(MARIA)
    assert maria is not None and maria.caller_id == caller.id
    ann = await db.get_lead(ANN)
    assert ann is not None and ann.caller_id is None
    # Ann calls after the import: her lead finds her caller row.
    seen = await db.upsert_caller_seen(ANN)
    ann = await db.get_lead(ANN)
    assert ann is not None and ann.caller_id == seen.id


@pytest.mark.parametrize(
    "text",
    [
        "José Ñúñez",
        "O'Brien",
        'Robert "Bobby" Tables',
        "Robert'); DROP TABLE leads;--",
        "1 OR 1=1",
        "王小明",
        "Zoë 🎉",
        "$1 ? %s :name",
        "{\"json\": [1, 2]}",
    ],
)
async def test_text_round_trips_exactly(db: Database, text: str) -> None:
    await db.upsert_leads([
        LeadInput(MARIA, first_name=text, last_name=text, source=text, attributes={text: text})
    ])
    lead = await db.get_lead(MARIA)
    assert lead is not None
    assert (lead.first_name, lead.last_name, lead.source) == (text, text, text)
    assert lead.attributes == {text: text}
    again = await db.upsert_leads([LeadInput(MARIA, first_name=text)])
    assert again == LeadUpsertResult(0, 0, 1)


_names = st.none() | st.sampled_from(["", "Ann", "Bob", "O'Neil", "Zoë"])
_inputs = st.builds(
    LeadInput,
    phone=st.sampled_from([MARIA, ANN]),
    first_name=_names,
    last_name=_names,
    email=st.none() | st.sampled_from(["a@x.org", "b@y.net"]),
    attributes=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"])),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(_inputs, min_size=1, max_size=4), min_size=1, max_size=4))
async def test_upserts_match_a_merge_model(db: Database, batches: list[list[LeadInput]]) -> None:
    for phone in (MARIA, ANN):
        await db.delete_lead(phone)
    model: dict[str, dict[str, object]] = {}
    for batch in batches:
        expect = [0, 0, 0]
        for row in batch:
            fields = {
                "first_name": row.first_name or None,
                "last_name": row.last_name or None,
                "email": row.email,
            }
            current = model.get(row.phone)
            if current is None:
                model[row.phone] = {**fields, "attributes": dict(row.attributes)}
                expect[0] += 1
                continue
            merged = dict(current)
            merged.update({k: v for k, v in fields.items() if v is not None})
            merged["attributes"] = {**current["attributes"], **row.attributes}  # type: ignore[dict-item]
            expect[1 if merged != current else 2] += 1
            model[row.phone] = merged
        assert await db.upsert_leads(batch) == LeadUpsertResult(*expect)
    for phone, fields in model.items():
        lead = await db.get_lead(phone)
        assert lead is not None
        assert {
            "first_name": lead.first_name, "last_name": lead.last_name, "email": lead.email,
            "attributes": lead.attributes,
        } == fields


# listing ---------------------------------------------------------------------


async def test_list_leads_pages_by_id_and_filters(db: Database) -> None:
    phones = [f"+1415555{n:04d}" for n in range(100, 107)]
    await db.upsert_leads([LeadInput(p) for p in phones])
    first = await db.list_leads(limit=3)
    assert [lead.phone for lead in first] == phones[:3]
    second = await db.list_leads(limit=3, after_id=first[-1].id)
    assert [lead.phone for lead in second] == phones[3:6]
    await db.set_lead_status(phones[1], "interested")
    await db.set_lead_status(phones[5], "interested")
    assert [lead.phone for lead in await db.list_leads(status="interested")] == [
        phones[1], phones[5]
    ]
    assert [lead.phone for lead in await db.list_leads(status="interested", limit=1,
                                                       after_id=second[0].id)] == [phones[5]]
    touched = (await db.get_lead(phones[5])).updated_at  # type: ignore[union-attr]
    assert [lead.phone for lead in await db.list_leads(since=touched)] == [phones[5]]
    with pytest.raises(ValueError, match="status"):
        await db.list_leads(status="hot")
    with pytest.raises(ValueError):
        await db.list_leads(limit=0)


async def test_iter_leads_streams_everything_in_order(db: Database) -> None:
    phones = [f"+1415555{n:04d}" for n in range(100, 111)]
    await db.upsert_leads([LeadInput(p) for p in reversed(phones)])
    streamed = [lead async for lead in db.iter_leads(batch=4)]
    assert sorted(lead.phone for lead in streamed) == phones
    assert [lead.id for lead in streamed] == sorted(lead.id for lead in streamed)
    assert [lead async for lead in db.iter_leads(batch=11)] == streamed


async def test_status_and_takeover(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    for status in LEAD_STATUSES:
        lead = await db.set_lead_status(MARIA, status)
        assert lead is not None and lead.status == status
    with pytest.raises(ValueError):
        await db.set_lead_status(MARIA, "maybe")
    taken = await db.set_human_takeover(MARIA, True)
    assert taken is not None and taken.human_takeover is True
    released = await db.set_human_takeover(MARIA, False)
    assert released is not None and released.human_takeover is False
    assert await db.set_lead_status(ANN, "booked") is None
    assert await db.set_human_takeover(ANN, True) is None


async def test_delete_lead_keeps_the_legal_trail(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA, first_name="Maria"), LeadInput(ANN)])
    await db.add_consent_event(MARIA, "opt_out", "sms", "STOP", at=at(0))
    await db.dnc_add([MARIA], reason="asked")
    await db.record_inbound_message(phone=MARIA, channel="sms", body="hi", from_addr=MARIA,
                                    to_addr="+15005550006", provider_sid="SM1", segments=1)
    await db.queue_outbound_message(phone=MARIA, channel="sms", purpose="conversation",
                                    body="hello", from_addr="+15005550006", to_addr=MARIA,
                                    segments=1, idempotency_key="k1", at=at(1))
    await db.queue_outbound_message(phone=ANN, channel="sms", purpose="marketing",
                                    body="offer", from_addr="+15005550006", to_addr=ANN,
                                    segments=1, idempotency_key="k2", at=at(1))
    assert await db.outbox_pending_count() == 2
    assert await db.delete_lead("415 555 2671") is True
    assert await db.get_lead(MARIA) is None
    assert await db.list_messages(MARIA) == []
    assert await db.outbox_pending_count() == 1
    assert [e.text for e in await db.list_consent_events(MARIA)] == ["STOP"]
    assert await db.is_dnc(MARIA) and await db.is_opted_out(MARIA)
    assert await db.get_lead(ANN) is not None and len(await db.list_messages(ANN)) == 1
    assert await db.delete_lead(MARIA) is False


# consent ---------------------------------------------------------------------


async def test_opted_out_is_derived_from_the_latest_event(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    assert await db.is_opted_out(MARIA) is False
    out = await db.add_consent_event(MARIA, "opt_out", "sms", "stop texting me", at=at(10),
                                     source="SM1")
    assert (out.phone, out.kind, out.channel, out.at, out.source) == (
        MARIA, "opt_out", "sms", at(10), "SM1"
    )
    lead = await db.get_lead(MARIA)
    assert lead is not None and lead.opted_out and lead.status == "opted_out"
    # a back-filled older opt-in does not undo the newer opt-out
    await db.add_consent_event(MARIA, "opt_in", "api", "form 2024", at=at(-100))
    assert await db.is_opted_out(MARIA) is True
    await db.add_consent_event(MARIA, "opt_in", "sms", "START", at=at(20))
    lead = await db.get_lead(MARIA)
    assert lead is not None and not lead.opted_out and lead.status == "replied"
    assert await db.is_opted_out("+1 415 555 2671") is False
    trail = await db.list_consent_events(MARIA)
    assert [(e.kind, e.text) for e in trail] == [
        ("opt_in", "form 2024"), ("opt_out", "stop texting me"), ("opt_in", "START")
    ]


async def test_consent_for_a_phone_that_is_not_a_lead(db: Database) -> None:
    await db.add_consent_event(ANN, "opt_out", "voice", "don't call me again")
    assert await db.is_opted_out(ANN)
    assert await db.get_lead(ANN) is None
    # imported later: the lead is born opted out, because the trail says so
    await db.upsert_leads([LeadInput(ANN)])
    lead = await db.get_lead(ANN)
    assert lead is not None and lead.opted_out is True


@pytest.mark.parametrize(("kind", "channel"), [("unsubscribe", "sms"), ("opt_out", "fax")])
async def test_consent_refuses_unknown_kind_or_channel(
    db: Database, kind: str, channel: str
) -> None:
    with pytest.raises(ValueError):
        await db.add_consent_event(MARIA, kind, channel, "x")
    assert await db.list_consent_events(MARIA) == []


# DNC -------------------------------------------------------------------------


async def test_dnc_add_counts_new_entries_only(db: Database) -> None:
    await db.upsert_leads([LeadInput(MARIA)])
    assert await db.dnc_add([MARIA, "(415) 555-2671", ANN], reason="list 2025") == 2
    assert await db.dnc_add([ANN, BOB]) == 1
    assert await db.dnc_add([]) == 0
    assert await db.is_dnc(MARIA) and await db.is_dnc(BOB)
    lead = await db.get_lead(MARIA)
    assert lead is not None and lead.dnc is True and lead.opted_out is False
    listed = await db.list_dnc()
    assert [e.phone for e in listed] == sorted([MARIA, ANN, BOB])
    assert {e.phone: e.reason for e in listed}[MARIA] == "list 2025"
    assert [e.phone for e in await db.list_dnc(limit=1, after=listed[0].phone)] == [
        listed[1].phone
    ]
    assert await db.dnc_remove(MARIA) is True
    assert await db.dnc_remove(MARIA) is False
    assert not await db.is_dnc(MARIA)
    with pytest.raises(InvalidPhoneNumber):
        await db.dnc_add(["nope"])
    with pytest.raises(TypeError):
        await db.dnc_add(MARIA)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_concurrent_imports_of_one_lead_merge(backend: str, tmp_path: Path) -> None:
    """Two processes import different columns of the same leads at once: nothing is lost."""
    async with backend_url(backend, tmp_path) as url:
        one, two = await open_database(url), await open_database(url)
        try:
            phones = [f"+1415555{n:04d}" for n in range(100, 140)]
            await one.upsert_leads([LeadInput(p) for p in phones])
            for round_no in range(5):
                await asyncio.gather(
                    one.upsert_leads([LeadInput(p, first_name=f"F{round_no}",
                                                attributes={f"a{round_no}": "1"})
                                      for p in phones]),
                    two.upsert_leads([LeadInput(p, last_name=f"L{round_no}",
                                                attributes={f"b{round_no}": "2"})
                                      for p in reversed(phones)]),
                )
            for phone in phones:
                lead = await two.get_lead(phone)
                assert lead is not None
                assert (lead.first_name, lead.last_name) == ("F4", "L4")
                assert set(lead.attributes) == {f"{k}{i}" for k in "ab" for i in range(5)}
        finally:
            await one.close()
            await two.close()
