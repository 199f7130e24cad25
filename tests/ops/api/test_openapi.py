"""/v1/openapi.json: a valid OpenAPI 3.1 document of every route, with the bearer scheme
applied; then schemathesis fuzzes the GET routes of a live `leadline serve` with it
(few examples per route, a deadline) and every answer must match the document."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from ops.api.server import routes

BIN = Path(sys.executable).parent / "leadline"


async def test_document_is_valid_and_covers_the_route_table(api):
    status, doc, _ = await api.call("GET", "/v1/openapi.json", token="viewer")
    assert status == 200
    validate(doc)  # raises with the offending path when the document is not valid 3.1
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, "/v1" + r.path) for r in routes()}
    for path in ("/v1/leads", "/v1/calls", "/v1/campaigns", "/v1/messages"):
        get = doc["paths"][path]["get"]
        assert get["security"] == [{"bearer": []}]
        names = {p["name"] for p in get["parameters"]}
        assert {"limit", "cursor", "created_at_gte", "created_at_lte"} <= names
        limit = next(p for p in get["parameters"] if p["name"] == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"]) == (1, 1000)
        ok = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        listing = doc["components"]["schemas"][ok.rsplit("/", 1)[1]]
        assert set(listing["properties"]) == {"items", "next_cursor"}
        assert {"400", "401", "429"} <= set(get["responses"])
    post = doc["paths"]["/v1/leads"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = doc["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert {"phone", "first_name", "last_name", "email", "state", "attributes"} <= set(fields)
    assert "201" in post["responses"] and "403" in post["responses"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_schemathesis_against_the_live_server(tmp_path):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADLINE_", "TWILIO_"))}
    env.update({"LEADLINE_SERVER_PORT": str(port), "LEADLINE_SERVER_HOST": "127.0.0.1",
                "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{tmp_path}/api.db",
                "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
                "LEADLINE_API_BURST": "100000", "TWILIO_AUTH_TOKEN": "x" * 32})
    made = subprocess.run([str(BIN), "tokens", "create", "--role", "viewer", "--json"],
                          env=env, capture_output=True, timeout=60, check=True)
    token = json.loads(made.stdout)["token"]
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([str(BIN), "serve"], env=env, cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        req = urllib.request.Request(url + "/v1/openapi.json",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            doc = json.loads(resp.read())
        schema = schemathesis.openapi.from_dict(doc)
        checks = [not_a_server_error, status_code_conformance, content_type_conformance,
                  response_schema_conformance]
        ran: dict[str, int] = {}
        for result in schema.get_all_operations():
            op = result.ok()
            if op.method.upper() != "GET":
                continue

            @settings(max_examples=8, deadline=5000, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def fuzz(case):
                case.call_and_validate(base_url=url, checks=checks, timeout=10,
                                       headers={"Authorization": f"Bearer {token}"})
                ran[case.operation.label] = ran.get(case.operation.label, 0) + 1

            fuzz()
        assert {"GET /v1/leads", "GET /v1/calls", "GET /v1/campaigns",
                "GET /v1/messages"} <= set(ran), ran
        assert all(n >= 1 for n in ran.values())
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()  # our own child; the shutdown itself is not what is tested here
            server.wait(timeout=10)
        log.close()
