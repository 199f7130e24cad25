"""API tokens and the API's keyset pages, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.models import LeadInput
from store.token_repo import hash_token


async def _all_tokens_raw(db) -> list[tuple]:
    return [tuple(r) for r in await db.fetch("SELECT token_hash, role FROM api_tokens")]


async def test_token_is_stored_hashed_and_authenticates(db):
    rec, token = await db.create_api_token("viewer", label="grafana")
    assert rec.role == "viewer" and rec.label == "grafana" and rec.revoked_at is None
    assert len(token) > 40 and token.startswith("ll_")
    stored = await _all_tokens_raw(db)
    assert stored == [(hash_token(token), "viewer")]
    assert token not in repr(stored)
    found = await db.authenticate_token(token)
    assert found is not None and found.id == rec.id and found.last_used_at is not None


async def test_unknown_revoked_and_expired_tokens_are_refused(db):
    rec, token = await db.create_api_token("admin")
    assert await db.authenticate_token(token + "x") is None
    assert await db.authenticate_token("") is None
    assert await db.authenticate_token("a" * 10_000) is None
    assert await db.revoke_api_token(rec.id) is True
    assert await db.revoke_api_token(rec.id) is False  # already revoked
    assert await db.revoke_api_token(999) is False
    assert await db.authenticate_token(token) is None
    soon = datetime.now(UTC) + timedelta(seconds=30)
    rec2, token2 = await db.create_api_token("viewer", expires_at=soon)
    assert await db.authenticate_token(token2) is not None
    assert await db.authenticate_token(token2, at=soon + timedelta(seconds=1)) is None
    assert (await db.get_api_token(rec2.id)).expires_at == soon


async def test_bad_role_and_label_are_refused(db):
    with pytest.raises(ValueError, match="role"):
        await db.create_api_token("root")
    with pytest.raises(ValueError, match="label"):
        await db.create_api_token("admin", label="x" * 201)


async def test_token_list_pages_by_id(db):
    ids = [(await db.create_api_token("viewer"))[0].id for _ in range(5)]
    first = await db.list_api_tokens(limit=2)
    assert [t.id for t in first.items] == ids[:2] and first.next_after == ids[1]
    rest = await db.list_api_tokens(limit=10, after_id=int(first.next_after))
    assert [t.id for t in rest.items] == ids[2:] and rest.next_after is None


async def test_lead_pages_are_stable_and_filter(db):
    await db.upsert_leads([LeadInput(phone=f"+1415555{n:04d}", state="ca" if n % 2 else "TX")
                           for n in range(7)])
    seen: list[int] = []
    after = 0
    while True:
        page = await db.page_leads(limit=3, after_id=after)
        seen += [lead.id for lead in page.items]
        if page.next_after is None:
            break
        # A lead added while paging lands at the end, never inside a page already read.
        await db.upsert_leads([LeadInput(phone=f"+1415556{len(seen):04d}")])
        after = int(page.next_after)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 9
    ca = await db.page_leads(limit=100, state="CA")
    assert {lead.state for lead in ca.items} == {"CA"} and len(ca.items) == 3
    await db.set_lead_status("+14155550001", "booked")
    booked = await db.page_leads(status="booked")
    assert [lead.phone for lead in booked.items] == ["+14155550001"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert (await db.page_leads(created_gte=future)).items == []
    assert len((await db.page_leads(created_lte=future, limit=1000)).items) == 9
    with pytest.raises(ValueError, match="limit"):
        await db.page_leads(limit=1001)
    with pytest.raises(ValueError, match="status"):
        await db.page_leads(status="nope")


async def test_call_pages_newest_first_and_by_phone(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(5):
        await db.start_call(f"CA{n}", direction="inbound" if n % 2 else "outbound",
                            from_number=f"+1415555{n:04d}", to_number="+14155559999",
                            started_at=t0 + timedelta(minutes=n))
    page = await db.page_calls(limit=2)
    assert [c.call_sid for c in page.items] == ["CA4", "CA3"]
    page2 = await db.page_calls(limit=2, before_id=int(page.next_after))
    assert [c.call_sid for c in page2.items] == ["CA2", "CA1"]
    assert [c.call_sid for c in (await db.page_calls(direction="inbound")).items] == \
        ["CA3", "CA1"]
    assert [c.call_sid for c in (await db.page_calls(phone="+14155550002")).items] == ["CA2"]
    assert len((await db.page_calls(phone="+14155559999")).items) == 5
    ranged = await db.page_calls(created_gte=t0 + timedelta(minutes=1),
                                 created_lte=t0 + timedelta(minutes=2))
    assert [c.call_sid for c in ranged.items] == ["CA2", "CA1"]


async def test_message_and_dnc_pages(db):
    for n in range(3):
        await db.record_inbound_message(phone="+14155550100", channel="sms", body=f"hi {n}",
                                        from_addr="+14155550100", to_addr="+14155559999",
                                        provider_sid=f"SM{n}", segments=1)
    await db.record_inbound_message(phone="+14155550200", channel="sms", body="other",
                                    from_addr="+14155550200", to_addr="+14155559999",
                                    provider_sid="SMx", segments=1)
    mine = await db.page_messages(phone="+14155550100", limit=2)
    assert [m.body for m in mine.items] == ["hi 0", "hi 1"] and mine.next_after is not None
    rest = await db.page_messages(phone="+14155550100", after_id=int(mine.next_after))
    assert [m.body for m in rest.items] == ["hi 2"] and rest.next_after is None
    assert (await db.page_messages(campaign="none-such")).items == []
    await db.dnc_add(["+14155550300", "+14155550301", "+14155550302"], reason="asked")
    d1 = await db.page_dnc(limit=2)
    assert [e.phone for e in d1.items] == ["+14155550300", "+14155550301"]
    d2 = await db.page_dnc(limit=2, after=str(d1.next_after))
    assert [e.phone for e in d2.items] == ["+14155550302"] and d2.next_after is None
