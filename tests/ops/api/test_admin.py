"""DNC, campaign writes and report, lead CSV import, recordings (no way out of the
recording directory), config knobs written back and hot-reloaded, tokens over the API."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.helpers import start_server

CAMPAIGN = """
name = "winback"
[[touches]]
channel = "sms"
delay = "20d"
template = "Hi {first_name}, it's {business_name}: {booking_url}"
"""


async def test_dnc_add_list_remove(api):
    status, body, _ = await api.call("POST", "/v1/dnc", json={
        "phones": ["(415) 555-0101", "+14155550102", "+14155550101"], "reason": "asked"})
    assert status == 201 and body == {"added": 2}
    status, body, _ = await api.call("POST", "/v1/dnc", json={"phones": ["nope"]})
    assert status == 400 and body["error"]["field"] == "phones[0]"
    status, page, _ = await api.call("GET", "/v1/dnc?limit=1", token="viewer")
    assert [e["phone"] for e in page["items"]] == ["+14155550101"]
    _, rest, _ = await api.call("GET", f"/v1/dnc?cursor={page['next_cursor']}")
    assert [e["phone"] for e in rest["items"]] == ["+14155550102"]
    assert (await api.call("DELETE", "/v1/dnc/%2B14155550101"))[0] == 204
    assert (await api.call("DELETE", "/v1/dnc/%2B14155550101"))[0] == 404
    assert not await api.db.is_dnc("+14155550101") and await api.db.is_dnc("+14155550102")


async def test_campaign_load_enroll_pause_preview_report(api):
    status, body, _ = await api.call("POST", "/v1/campaigns", data=CAMPAIGN.encode(),
                                     headers={"Content-Type": "application/toml"})
    assert status == 201 and body == {"name": "winback", "created": True}
    status, body, _ = await api.call("POST", "/v1/campaigns", data=b"name = [",
                                     headers={"Content-Type": "application/toml"})
    assert status == 400 and body["error"]["code"] == "invalid_campaign"
    await api.call("POST", "/v1/leads", json={"phone": "+14155550111", "first_name": "Ann"})
    status, body, _ = await api.call("POST", "/v1/campaigns/winback/enroll",
                                     json={"phones": ["+14155550111"]})
    assert status == 200 and body["enrolled"] == 1, body
    status, body, _ = await api.call("POST", "/v1/campaigns/winback/enroll", json={})
    assert status == 400
    status, body, _ = await api.call("POST", "/v1/campaigns/nope/enroll", json={"all": True})
    assert status == 404
    assert (await api.call("POST", "/v1/campaigns/winback/pause"))[1] == {
        "name": "winback", "paused": True}
    _, shown, _ = await api.call("GET", "/v1/campaigns/winback")
    assert shown["campaign"]["paused"] is True and shown["enrollments"] == {"active": 1}
    assert (await api.call("POST", "/v1/campaigns/winback/resume"))[1]["paused"] is False
    status, rows, _ = await api.call("GET", "/v1/campaigns/winback/preview?lead=%2B14155550111",
                                     token="viewer")
    assert status == 200 and "Ann" in rows[0]["body"], rows
    status, report, _ = await api.call("GET", "/v1/reports/campaigns?campaign=winback")
    assert status == 200 and report["items"][0]["enrolled"] == 1
    assert (await api.call("GET", "/v1/reports/campaigns?campaign=nope"))[0] == 404
    _, leads, _ = await api.call("GET", "/v1/leads?campaign=winback")
    assert [lead["phone"] for lead in leads["items"]] == ["+14155550111"]


async def test_csv_import_answers_the_cli_summary(api):
    csv = (b"Phone,First Name,Email,Favorite Color\n"
           b"(415) 555-0121,Bo,bo@example.com,blue\n"
           b"not a phone,Cy,,red\n"
           b"+1 415 555 0122,Di,broken-email,green\n")
    status, body, _ = await api.call("POST", "/v1/leads/import?source=fair", data=csv,
                                     headers={"Content-Type": "text/csv"})
    assert status == 200, body
    assert {k: body[k] for k in ("rows", "created", "updated", "unchanged", "skipped")} == {
        "rows": 3, "created": 2, "updated": 0, "unchanged": 0, "skipped": 1}
    assert body["errors"][0]["row"] == 2 and body["warnings"]
    lead = await api.db.get_lead("+14155550121")
    assert lead.source == "fair" and lead.attributes.get("Favorite Color") == "blue"
    status, body, _ = await api.call("POST", "/v1/leads/import", data=b"\xff\xfe\x00bad",
                                     headers={"Content-Type": "text/csv"})
    assert status == 400 and body["error"]["code"] == "invalid_csv"
    assert (await api.call("POST", "/v1/leads/import", token="viewer", data=csv))[0] == 403


async def test_recording_download_stays_inside_the_directory(api, tmp_path):
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir(exist_ok=True)
    (rec_dir / "CAgood.wav").write_bytes(b"RIFF0000WAVEfmt ")
    (tmp_path / "secret.wav").write_bytes(b"not yours")
    db = api.db
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    for sid, path in (("CAgood", str(rec_dir / "CAgood.wav")),
                      ("CAevil", str(rec_dir / ".." / "secret.wav")),
                      ("CArel", "../secret.wav"), ("CAnone", None)):
        await db.start_call(sid, direction="inbound", from_number="+14155550131",
                            to_number="+14155550000", started_at=t0)
        await db.end_call(sid, recording_path=path)
    status, body, headers = await api.call("GET", "/v1/calls/CAgood/recording",
                                           token="viewer")
    assert status == 200 and body == b"RIFF0000WAVEfmt "
    assert headers["Content-Type"] == "audio/wav"
    for sid in ("CAevil", "CArel"):
        status, body, _ = await api.call("GET", f"/v1/calls/{sid}/recording")
        assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await api.call("GET", "/v1/calls/CAnone/recording"))[0] == 404
    for sid in ("..%2F..%2Fsecret", "CA%00x", "%2E%2E"):
        status, body, _ = await api.call("GET", f"/v1/calls/{sid}/recording")
        assert status in (400, 404), (sid, status)
        assert b"not yours" not in (body if isinstance(body, bytes) else b"")


async def test_tokens_over_the_api(api):
    status, made, _ = await api.call("POST", "/v1/tokens", json={"role": "viewer",
                                                                 "label": "grafana"})
    assert status == 201 and set(made) == {"token", "id", "role"}
    assert (await api.call("GET", "/v1/leads", token=made["token"]))[0] == 200
    _, page, _ = await api.call("GET", "/v1/tokens")
    assert made["token"] not in str(page)
    assert {t["id"] for t in page["items"]} >= {made["id"], api.admin_id}
    assert (await api.call("GET", "/v1/tokens", token="viewer"))[0] == 403
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    status, body, _ = await api.call("POST", "/v1/tokens", json={"role": "admin",
                                                                 "expires_at": past})
    assert status == 400 and body["error"]["field"] == "expires_at"
    assert (await api.call("DELETE", f"/v1/tokens/{made['id']}"))[0] == 204
    assert (await api.call("GET", "/v1/leads", token=made["token"]))[0] == 401
    assert (await api.call("DELETE", f"/v1/tokens/{made['id']}"))[0] == 404
    assert (await api.call("DELETE", "/v1/tokens/abc"))[0] == 400


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
async def test_config_is_read_by_viewers_and_written_back_by_admins(api, tmp_path):
    path = tmp_path / "leadline.toml"
    path.write_text("# operator's notes stay\n[vad]\n# how long silence ends a turn\n"
                    "stop_ms = 500\n", encoding="utf-8")
    srv, runner = await start_server({}, config_path=str(path))
    try:
        db = srv.runtime.persistence.db
        _, admin = await db.create_api_token("admin")
        _, viewer = await db.create_api_token("viewer")
        async with aiohttp.ClientSession() as s:
            async def req(method, token, json=None):
                async with s.request(method, srv.url + "/v1/config", json=json,
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                    return r.status, await r.json()

            status, view = await req("GET", viewer)
            assert status == 200 and view["vad"]["stop_ms"] == 500 and view["writable"]
            status, _ = await req("PATCH", viewer, {"vad": {"stop_ms": 700}})
            assert status == 403
            status, body = await req("PATCH", admin, {"vad": {"stop_ms": -5}})
            assert status == 400 and body["error"]["field"].startswith("vad")
            status, body = await req("PATCH", admin, {"vad": {"shoe_size": 9}})
            assert status == 400 and body["error"]["field"] == "vad.shoe_size"
            status, view = await req("PATCH", admin, {"vad": {"stop_ms": 700,
                                                              "barge_in_ms": 150}})
            assert status == 200, view
            assert view["vad"]["stop_ms"] == 700 and view["vad"]["barge_in_ms"] == 150
            assert view["last_reload"]["ok"] is True
        assert srv.runtime.config.vad.stop_ms == 700  # applied to the running server
        text = path.read_text(encoding="utf-8")
        assert "# operator's notes stay" in text and "# how long silence" in text
        assert tomllib.loads(text)["vad"] == {"stop_ms": 700, "barge_in_ms": 150}
    finally:
        await runner.cleanup()
    # Without a config file there is nothing to write back to.
    status, body, _ = await api.call("PATCH", "/v1/config", json={"vad": {"stop_ms": 600}})
    assert status == 409 and body["error"]["code"] == "no_config_file"


async def test_businesses_of_the_config_are_listed(tmp_path):
    path = tmp_path / "leadline.toml"
    path.write_text('[[businesses]]\nname = "Acme Plumbing"\nnumbers = ["+14155550150"]\n'
                    '[[businesses]]\nname = "Bolt Electric"\n', encoding="utf-8")
    srv, runner = await start_server({}, config_path=str(path))
    try:
        _, viewer = await srv.runtime.persistence.db.create_api_token("viewer")
        async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {viewer}"}) as s:
            async with s.get(srv.url + "/v1/businesses?limit=1") as r:
                first = await r.json()
            async with s.get(srv.url + f"/v1/businesses?cursor={first['next_cursor']}") as r:
                rest = await r.json()
            async with s.get(srv.url + "/v1/businesses?limit=0") as r:
                assert r.status == 400
        assert [b["name"] for b in first["items"]] == ["Acme Plumbing"]
        assert [b["name"] for b in rest["items"]] == ["Bolt Electric"]
        assert rest["next_cursor"] is None
    finally:
        await runner.cleanup()
