"""Every /v1 route is guarded: walked from the route table itself, so a new route
without a token check fails here. Roles, revocation (also by the CLI while the server
runs), rate limits per token."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest

from ops.api.server import routes
from tests.helpers import start_server


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "%2B14155550123", path)


def _request_kwargs(route) -> dict:
    return {"json": {}} if route.body is not None else {}


async def test_every_route_needs_a_token_and_writes_need_admin(api):
    table = routes()
    assert len(table) >= 10
    revoked_rec, revoked = await api.db.create_api_token("admin")
    await api.db.revoke_api_token(revoked_rec.id)
    for route in table:
        path = "/v1" + _concrete(route.path)
        for token in (None, "not-a-token", "Bearer", revoked):
            status, body, headers = await api.call(route.method, path, token=token,
                                                   **_request_kwargs(route))
            assert status == 401, (route.method, path, token, status)
            assert body["error"]["code"] == "unauthorized"
            assert "WWW-Authenticate" in headers
        status, body, _ = await api.call(route.method, path, token="viewer",
                                         **_request_kwargs(route))
        if route.method != "GET":
            assert route.role == "admin", f"{route.method} {path} must need an admin token"
        if route.role == "admin":
            assert status == 403, (route.method, path, status, body)
            assert body["error"]["code"] == "forbidden"
        else:
            assert status not in (401, 403, 500), (route.method, path, status, body)
    # Paths that match no route still answer in the API's error shape.
    status, body, _ = await api.call("GET", "/v1/no-such-thing")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
async def test_cli_tokens_work_at_once_on_a_running_server(api, tmp_path):
    url = str(api.server.runtime.config.store.database_url)

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "tokens", *args, "--database-url", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode()

    import msgspec

    code, out = await cli("create", "--role", "viewer", "--json")
    assert code == 0
    made = msgspec.json.decode(out)
    assert set(made) == {"token", "id", "role"} and made["role"] == "viewer"
    status, _, _ = await api.call("GET", "/v1/leads", token=made["token"])
    assert status == 200
    code, _ = await cli("revoke", str(made["id"]))
    assert code == 0
    status, body, _ = await api.call("GET", "/v1/leads", token=made["token"])
    assert status == 401 and body["error"]["code"] == "unauthorized"
    code, _ = await cli("revoke", str(made["id"]))
    assert code == 2


async def test_flood_from_one_token_is_429_and_others_are_unaffected(tmp_path):
    srv, runner = await start_server({"LEADLINE_API_RATE_PER_S": "1",
                                      "LEADLINE_API_BURST": "5"})
    try:
        db = srv.runtime.persistence.db
        _, noisy = await db.create_api_token("viewer")
        _, quiet = await db.create_api_token("viewer")
        async with aiohttp.ClientSession() as s:
            async def get(token: str) -> tuple[int, dict, dict]:
                async with s.get(srv.url + "/v1/leads",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                    return r.status, await r.json(), dict(r.headers)

            answers = [await get(noisy) for _ in range(12)]
            statuses = [a[0] for a in answers]
            assert statuses[:5] == [200] * 5
            assert statuses.count(429) >= 6
            limited = next(a for a in answers if a[0] == 429)
            assert limited[1]["error"]["code"] == "rate_limited"
            assert int(limited[2]["Retry-After"]) >= 1
            assert (await get(quiet))[0] == 200
    finally:
        await runner.cleanup()
