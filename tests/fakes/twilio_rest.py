"""A fake of the part of the Twilio REST API leadline uses: updating a live call.

`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with a form body
(`Twiml`, `Url`, `Status`), HTTP basic auth of the account SID and auth token,
answered like Twilio: the call resource as JSON, or Twilio's error JSON with
its error codes (20003 authenticate, 20404 not found, 12100 TwiML parse
failure, 21220 call not in progress). Every request is recorded, with the
TwiML parsed, for assertions.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


@dataclass
class CallUpdate:
    call_sid: str
    form: dict[str, str]
    twiml: ET.Element | None = None


@dataclass
class FakeTwilioRest:
    account_sid: str
    auth_token: str
    # Calls that exist and are live; None: every well-formed SID is a live call.
    live_calls: set[str] | None = None
    updates: list[CallUpdate] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _error(self, status: int, code: int, message: str) -> web.Response:
        self.rejected.append((code, message))
        return web.json_response(
            {"code": code, "message": message,
             "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
            status=status,
        )

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    async def update_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        account, call_sid = request.match_info["account"], request.match_info["call"]
        if account != self.account_sid:
            return self._error(403, 20003, "Authenticate")
        if not _CALL_SID.match(call_sid) or (
            self.live_calls is not None and call_sid not in self.live_calls
        ):
            return self._error(
                404, 20404,
                f"The requested resource /2010-04-01/Accounts/{account}/Calls/{call_sid}.json "
                "was not found",
            )
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        twiml = None
        if "Twiml" in form:
            try:
                twiml = ET.fromstring(form["Twiml"])
            except ET.ParseError:
                return self._error(400, 12100, "Document parse failure")
            if twiml.tag != "Response":
                return self._error(400, 12100, "Document parse failure")
        elif "Url" not in form and "Status" not in form:
            return self._error(400, 21220, "Invalid call state: nothing to update")
        self.updates.append(CallUpdate(call_sid, form, twiml))
        status = "completed" if twiml is not None and twiml.find("Hangup") is not None \
            else "in-progress"
        return web.json_response(self._call_json(account, call_sid, status))

    @staticmethod
    def _call_json(account: str, sid: str, status: str) -> dict[str, Any]:
        return {
            "sid": sid, "account_sid": account, "status": status,
            "api_version": "2010-04-01", "direction": "inbound",
            "from": "+14155550100", "to": "+14155550199",
            "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json",
            "date_created": "Tue, 10 Jun 2025 10:00:00 +0000",
            "date_updated": "Tue, 10 Jun 2025 10:00:05 +0000",
            "subresource_uris": {},
        }

    async def start(self) -> FakeTwilioRest:
        app = web.Application()
        app.router.add_post(
            "/2010-04-01/Accounts/{account}/Calls/{call}.json", self.update_call
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
