"""The signed callbacks: forged ones refused and counted, strangers' answered 204 and
counted, statuses written forward-only, AMD after the end recorded but not acted on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from store.database import Database, open_database
from telephony.dialer.http import DialerRoutes
from telephony.dialer.observer import OutboundCalls
from telephony.dialer.settings import DialerSettings
from telephony.dialer.worker import CallWaiters
from telephony.settings import TwilioSettings
from telephony.twilio.signature import SignatureChecker
from tests.helpers import serve_app

TOKEN = "http-test-token"
SID = "CA" + "3" * 32


@dataclass
class Hook:
    url: str
    db: Database
    routes: DialerRoutes
    http: aiohttp.ClientSession

    async def post(self, path: str, form: dict[str, str], *, sign: bool = True,
                   token: str = TOKEN) -> int:
        url = self.url + path
        headers = {"X-Twilio-Signature": SignatureChecker(token).sign(url, form)} if sign else {}
        async with self.http.post(url, data=form, headers=headers) as resp:
            return resp.status


@pytest.fixture
async def hook(tmp_path: Path) -> AsyncIterator[Hook]:
    db = await open_database(f"sqlite:///{tmp_path}/h.db")
    waiters = CallWaiters()
    settings = [TwilioSettings(auth_token=TOKEN)]
    routes = DialerRoutes(lambda: settings[0], lambda: db, waiters,
                          OutboundCalls(DialerSettings, lambda: db, waiters))
    app = web.Application()
    routes.add_to(app)
    runner, port = await serve_app(app)
    url = f"http://127.0.0.1:{port}"
    settings[0] = TwilioSettings(auth_token=TOKEN, public_url=url)
    async with aiohttp.ClientSession() as http:
        yield Hook(url, db, routes, http)
    await runner.cleanup()
    await db.close()


async def placed(db: Database) -> None:
    await db.reserve_dial(dial_key="k", queue="q", job_id="1", attempt=0,  # type: ignore[attr-defined]
                          phone="+14155552671", caller_id="+14155550100")
    await db.dial_placed("k", SID)  # type: ignore[attr-defined]


async def test_statuses_forward_only(hook: Hook) -> None:
    await placed(hook.db)
    base = {"CallSid": SID, "AccountSid": "AC" + "0" * 32}
    assert await hook.post("/twilio/call-status", {**base, "CallStatus": "ringing"}) == 204
    assert await hook.post("/twilio/call-status", {**base, "CallStatus": "in-progress"}) == 204
    assert await hook.post("/twilio/call-status", {**base, "CallStatus": "ringing"}) == 204
    assert await hook.post("/twilio/call-status", {**base, "CallStatus": "completed",
                                                   "CallDuration": "42"}) == 204
    record = await hook.db.get_dial("k")  # type: ignore[attr-defined]
    assert record.status == "completed" and record.duration_s == 42
    assert record.answered_at is not None


async def test_forged_and_bad_callbacks(hook: Hook) -> None:
    await placed(hook.db)
    form = {"CallSid": SID, "CallStatus": "completed"}
    assert await hook.post("/twilio/call-status", form, sign=False) == 403
    assert await hook.post("/twilio/call-status", form, token="other") == 403
    assert await hook.post("/twilio/amd", {"CallSid": SID, "AnsweredBy": "human"},
                           token="other") == 403
    assert hook.routes.stats.forged == 3
    assert (await hook.db.get_dial("k")).status == "queued"  # type: ignore[attr-defined]
    assert await hook.post("/twilio/call-status", {"CallSid": SID, "CallStatus": "boom"}) == 400
    assert await hook.post("/twilio/call-status", {"CallStatus": "completed"}) == 400
    assert await hook.post("/twilio/amd", {"CallSid": SID}) == 400
    assert hook.routes.stats.bad_callbacks == 3


async def test_unknown_calls_are_answered_and_counted(hook: Hook) -> None:
    stranger = "CA" + "9" * 32
    assert await hook.post("/twilio/call-status",
                           {"CallSid": stranger, "CallStatus": "completed"}) == 204
    assert await hook.post("/twilio/amd", {"CallSid": stranger, "AnsweredBy": "human"}) == 204
    assert hook.routes.stats.unknown_calls == 2


async def test_amd_after_the_call_ended_is_recorded_not_acted_on(hook: Hook) -> None:
    await placed(hook.db)
    await hook.post("/twilio/call-status", {"CallSid": SID, "CallStatus": "completed"})
    assert await hook.post("/twilio/amd", {"CallSid": SID,
                                           "AnsweredBy": "machine_end_beep"}) == 204
    record = await hook.db.get_dial("k")  # type: ignore[attr-defined]
    assert record.answered_by == "machine_end_beep" and record.status == "completed"
    assert hook.routes.observer.late_amd == 1 and hook.routes.observer.voicemails_left == 0
