"""The optional outcome webhook: HMAC-SHA256 over the exact body, retried with backoff
on 5xx and connection errors, given up on a 4xx."""

from __future__ import annotations

import hashlib
import hmac
import json

from aiohttp import web

from agents.compliance.settings import ComplianceSettings
from telephony.dialer.service import DialerService, sign_body
from telephony.dialer.settings import DialerSettings
from telephony.settings import TwilioSettings
from tests.helpers import serve_app

SECRET = "whsec-test"


async def test_signed_and_retried() -> None:
    seen: list[tuple[bytes, str]] = []
    answers = [500, 503, 200]

    async def receive(request: web.Request) -> web.Response:
        seen.append((await request.read(), request.headers.get("X-Leadline-Signature", "")))
        return web.Response(status=answers.pop(0))

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner, port = await serve_app(app)
    settings = DialerSettings(webhook_url=f"http://127.0.0.1:{port}/hook",
                              webhook_secret=SECRET, webhook_attempts=4)
    service = DialerService(lambda: settings, TwilioSettings, ComplianceSettings, lambda: None)
    try:
        await service._webhook("42", {"outcome": "busy", "callSid": "CA1"})
    finally:
        await runner.cleanup()
    assert len(seen) == 3 and service.webhooks_sent == 1
    body, signature = seen[-1]
    assert json.loads(body) == {"jobId": "42", "queue": "leadline-calls", "outcome": "busy",
                                "callSid": "CA1"}
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}" == sign_body(SECRET, body)


async def test_a_4xx_is_not_retried() -> None:
    calls = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=401)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner, port = await serve_app(app)
    settings = DialerSettings(webhook_url=f"http://127.0.0.1:{port}/hook",
                              webhook_secret=SECRET, webhook_attempts=5)
    service = DialerService(lambda: settings, TwilioSettings, ComplianceSettings, lambda: None)
    try:
        await service._webhook("1", {"outcome": "busy"})
    finally:
        await runner.cleanup()
    assert calls == 1 and service.webhooks_failed == 1
