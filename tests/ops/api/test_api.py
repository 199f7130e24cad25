"""The /v1 API against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.models import Turn


def _error(body, code=None, field=None):
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    if code is not None:
        assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["field"] == field, body
    return body["error"]


async def test_lead_create_show_update_delete(api):
    status, lead, _ = await api.call("POST", "/v1/leads", json={
        "phone": "(415) 555-2671", "first_name": "Ada", "last_name": "Lovelace",
        "email": "ada@example.com", "state": "ca", "attributes": {"plan": "gold"}})
    assert status == 201
    assert lead["phone"] == "+14155552671" and lead["state"] == "CA"
    assert lead["attributes"] == {"plan": "gold"} and lead["status"] == "new"
    # The same phone again merges (200), it does not duplicate.
    status, again, _ = await api.call("POST", "/v1/leads", json={
        "phone": "+1 415 555 2671", "attributes": {"color": "red"}})
    assert status == 200 and again["id"] == lead["id"]
    assert again["attributes"] == {"plan": "gold", "color": "red"}
    path = "/v1/leads/" + quote("+14155552671")
    status, shown, _ = await api.call("GET", path, token="viewer")
    assert status == 200 and shown["first_name"] == "Ada"
    status, changed, _ = await api.call("PATCH", path, json={
        "status": "interested", "first_name": "Augusta", "human_takeover": True})
    assert status == 200 and changed["status"] == "interested"
    assert changed["first_name"] == "Augusta" and changed["human_takeover"] is True
    await api.db.record_inbound_message(phone="+14155552671", channel="sms", body="hi",
                                        from_addr="+14155552671", to_addr="+14155550000",
                                        provider_sid="SM1", segments=1)
    status, _, _ = await api.call("DELETE", path)
    assert status == 204
    assert await api.db.get_lead("+14155552671") is None
    assert await api.db.list_messages("+14155552671") == []
    status, body, _ = await api.call("GET", path)
    assert status == 404
    _error(body, "not_found")
    status, body, _ = await api.call("DELETE", path)
    assert status == 404


async def test_bad_input_is_400_naming_the_field(api):
    cases = [
        ({"phone": "not a phone"}, "phone", "invalid_phone"),
        ({"phone": "+14155552671", "nickname": "x"}, "nickname", "invalid"),
        ({"phone": 4155552671}, "phone", "invalid"),
        ({"first_name": "no phone"}, "phone", "invalid"),
        ({"phone": "+14155552671", "attributes": {"a": 1}}, "attributes", "invalid"),
    ]
    for body, field, code in cases:
        status, answer, _ = await api.call("POST", "/v1/leads", json=body)
        assert status == 400, (body, answer)
        err = _error(answer, code)
        assert err["field"] is not None and err["field"].startswith(field), (body, err)
    status, answer, _ = await api.call("POST", "/v1/leads", data=b"{not json",
                                       headers={"Content-Type": "application/json"})
    assert status == 400
    _error(answer, "malformed_json")
    status, answer, _ = await api.call("POST", "/v1/leads", data=b"x" * 300_000,
                                       headers={"Content-Type": "application/json"})
    assert status == 413
    _error(answer, "too_large")
    for query, field in [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"),
                         ("cursor=abc", "cursor"), ("status=nope", "status"),
                         ("created_at_gte=yesterday", "created_at_gte"),
                         ("created_at_gte=2026-01-01T00:00:00", "created_at_gte"),
                         ("bogus=1", "bogus")]:
        status, answer, _ = await api.call("GET", f"/v1/leads?{query}")
        assert status == 400, (query, answer)
        _error(answer, field=field)
    # A cursor of another list is refused too.
    await api.call("POST", "/v1/leads", json={"phone": "+14155550001"})
    await api.call("POST", "/v1/leads", json={"phone": "+14155550002"})
    _, page, _ = await api.call("GET", "/v1/leads?limit=1")
    status, answer, _ = await api.call("GET", f"/v1/calls?cursor={page['next_cursor']}")
    assert status == 400
    _error(answer, "invalid", "cursor")


async def test_sql_and_script_text_is_stored_verbatim(api):
    nasty = "Robert'); DROP TABLE leads;--"
    status, _, _ = await api.call("POST", "/v1/leads", json={
        "phone": "+14155550003", "first_name": nasty, "last_name": "<script>alert(1)</script>"})
    assert status == 201
    _, shown, _ = await api.call("GET", "/v1/leads/%2B14155550003")
    assert shown["first_name"] == nasty and shown["last_name"] == "<script>alert(1)</script>"
    status, page, _ = await api.call("GET", "/v1/leads")
    assert status == 200 and len(page["items"]) == 1


async def test_lead_list_pages_and_filters(api):
    for n in range(12):
        await api.call("POST", "/v1/leads", json={"phone": f"+1415555{n:04d}",
                                                  "state": "TX" if n % 3 else "FL"})
    seen: list[str] = []
    cursor = None
    while True:
        q = "limit=5" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await api.call("GET", f"/v1/leads?{q}", token="viewer")
        assert status == 200 and set(page) == {"items", "next_cursor"}
        seen += [lead["phone"] for lead in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"+1415555{n:04d}" for n in range(12)]
    _, fl, _ = await api.call("GET", "/v1/leads?state=FL&limit=1000")
    assert [lead["phone"] for lead in fl["items"]] == [f"+1415555{n:04d}" for n in (0, 3, 6, 9)]
    later = quote((datetime.now(UTC) + timedelta(hours=1)).isoformat())
    _, none, _ = await api.call("GET", f"/v1/leads?created_at_gte={later}")
    assert none == {"items": [], "next_cursor": None}
    _, every, _ = await api.call("GET", f"/v1/leads?created_at_lte={later}&limit=1000")
    assert len(every["items"]) == 12


async def test_calls_list_show_and_filters(api):
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    db = api.db
    for n in range(3):
        await db.start_call(f"CA{n:032d}", direction="inbound", from_number="+14155550100",
                            to_number="+14155550000", started_at=t0 + timedelta(minutes=n))
    await db.add_turns([Turn(f"CA{0:032d}", 0, "agent", "Hello, how can I help?", t0),
                        Turn(f"CA{0:032d}", 1, "caller", "Book me for Tuesday.", t0)])
    status, page, _ = await api.call("GET", "/v1/calls?limit=2", token="viewer")
    assert status == 200
    assert [c["call_sid"] for c in page["items"]] == [f"CA{2:032d}", f"CA{1:032d}"]
    _, rest, _ = await api.call("GET", f"/v1/calls?limit=2&cursor={page['next_cursor']}")
    assert [c["call_sid"] for c in rest["items"]] == [f"CA{0:032d}"]
    assert rest["next_cursor"] is None
    gte = quote((t0 + timedelta(minutes=1)).isoformat())
    _, ranged, _ = await api.call("GET", f"/v1/calls?created_at_gte={gte}")
    assert len(ranged["items"]) == 2
    _, by_phone, _ = await api.call("GET", "/v1/calls?phone=%2B14155550100&direction=inbound")
    assert len(by_phone["items"]) == 3
    status, detail, _ = await api.call("GET", f"/v1/calls/CA{0:032d}")
    assert status == 200 and [t["text"] for t in detail["turns"]] == [
        "Hello, how can I help?", "Book me for Tuesday."]
    status, body, _ = await api.call("GET", "/v1/calls/CAnope")
    assert status == 404
    _error(body, "not_found")
    status, live, _ = await api.call("GET", "/v1/calls/live")
    assert status == 200 and live == {"count": 0, "calls": []}


async def test_messages_list_by_lead(api):
    for n in range(3):
        await api.db.record_inbound_message(
            phone="+14155550100", channel="sms", body=f"m{n}", from_addr="+14155550100",
            to_addr="+14155550000", provider_sid=f"SM{n}", segments=1)
    status, page, _ = await api.call("GET", "/v1/messages?phone=(415)555-0100&limit=2",
                                     token="viewer")
    assert status == 200 and [m["body"] for m in page["items"]] == ["m0", "m1"]
    _, rest, _ = await api.call("GET", f"/v1/messages?phone=%2B14155550100&cursor="
                                       f"{page['next_cursor']}")
    assert [m["body"] for m in rest["items"]] == ["m2"]
    status, body, _ = await api.call("GET", "/v1/messages?phone=nope")
    assert status == 400
    _error(body, "invalid_phone", "phone")


async def test_send_message_goes_through_compliance(api):
    await api.db.dnc_add(["+14155550199"], reason="asked")
    status, body, _ = await api.call("POST", "/v1/messages", json={
        "to": "+14155550199", "body": "Hi!"})
    # No sender configured in this server: a clear 409, never a send around compliance.
    assert status == 409, body
    _error(body, "no_sender")
    status, body, _ = await api.call("POST", "/v1/messages", token="viewer", json={
        "to": "+14155550199", "body": "Hi!"})
    assert status == 403


async def test_campaigns_list_and_show(api):
    db = api.db
    for name in ("spring", "summer", "fall"):
        await db.save_campaign(name, "default", {"name": name, "touches": [{"body": "x"}]})
    status, page, _ = await api.call("GET", "/v1/campaigns?limit=2", token="viewer")
    assert status == 200 and [c["name"] for c in page["items"]] == ["spring", "summer"]
    assert page["items"][0]["touches"] == 1
    _, rest, _ = await api.call("GET", f"/v1/campaigns?cursor={page['next_cursor']}")
    assert [c["name"] for c in rest["items"]] == ["fall"] and rest["next_cursor"] is None
    status, one, _ = await api.call("GET", "/v1/campaigns/spring")
    assert status == 200 and one["campaign"]["name"] == "spring"
    assert one["enrollments"] == {}
    status, _, _ = await api.call("GET", "/v1/campaigns/winter")
    assert status == 404


async def test_writes_are_audited_with_token_and_status(api):
    await api.call("POST", "/v1/leads", json={"phone": "+14155550001"})
    await api.call("POST", "/v1/leads", json={"phone": "bad"})
    await api.call("GET", "/v1/leads")
    events = await api.db.list_audit(kind="api")
    details = [e.detail for e in reversed(events)]
    assert details == [
        {"token_id": api.admin_id, "method": "POST", "path": "/v1/leads", "status": 201},
        {"token_id": api.admin_id, "method": "POST", "path": "/v1/leads", "status": 400},
    ]


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
async def test_any_json_body_gets_a_clear_answer_never_a_5xx(api):
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
        | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["phone", "first_name", "state", "attributes",
                                           "email", "x"]), inner, max_size=5),
        max_leaves=12)

    bodies: list[object] = []

    # Hypothesis drives a sync function here; the bodies it draws are then sent in order.
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=values)
    def draw(body):
        bodies.append(body)

    draw()
    seen: list[int] = []
    for body in bodies:
        status, answer, _ = await api.call("POST", "/v1/leads", json=body)
        seen.append(status)
        assert status in (200, 201, 400), (body, status, answer)
        if status == 400:
            _error(answer)
    assert 400 in seen


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
async def test_expired_token_is_refused(api):
    past = datetime.now(UTC) - timedelta(seconds=1)
    _, token = await api.db.create_api_token("admin", expires_at=past)
    status, body, _ = await api.call("GET", "/v1/leads", token=token)
    assert status == 401
    _error(body, "unauthorized")


async def test_send_one_text_through_compliance_and_the_outbox(tmp_path):
    from tests.helpers import start_server

    srv, runner = await start_server({"LEADLINE_SMS_FROM_NUMBER": "+14155550000"})
    try:
        import aiohttp

        db = srv.runtime.persistence.db
        _, admin = await db.create_api_token("admin")
        await db.dnc_add(["+14155550199"], reason="asked")
        async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {admin}"}) as s:
            async def send(to: str, key: str) -> dict:
                async with s.post(srv.url + "/v1/messages", headers={"Idempotency-Key": key},
                                  json={"to": to, "body": "Spring tune-up slots are open."}
                                  ) as r:
                    assert r.status == 202, await r.text()
                    return await r.json()

            refused = await send("+14155550199", "k1")
            assert refused["state"] == "refused" and "dnc" in refused["reason"].lower()
            ok = await send("(415) 555-0198", "k2")
            # Allowed now, or held by quiet hours at the lead's local time: never sent
            # around the compliance engine either way.
            assert ok["state"] in ("queued", "deferred"), ok
            again = await send("+14155550198", "k2")
            assert again["state"] == "duplicate" and again["message_id"] == ok["message_id"]
        stored = await db.list_messages("+14155550198")
        assert [m.id for m in stored] == [ok["message_id"]]
        assert [m.status for m in await db.list_messages("+14155550199")] == ["cancelled"]
    finally:
        await runner.cleanup()
