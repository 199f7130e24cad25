"""A fake of the part of the Twilio REST API leadline uses: live calls and Messages.

`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with a form body
(`Twiml`, `Url`, `Status`), HTTP basic auth of the account SID and auth token,
answered like Twilio: the call resource as JSON, or Twilio's error JSON with
its error codes (20003 authenticate, 20404 not found, 12100 TwiML parse
failure, 21220 call not in progress). Every request is recorded, with the
TwiML parsed, for assertions.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (To, From or
MessagingServiceSid, Body, StatusCallback) answers 201 with the message
resource (status "queued"), or Twilio's errors: 21604 To missing, 21602 Body
missing, 21603 From missing, 21211 invalid To, 21610 unsubscribed recipient
(numbers in `unsubscribed`), and any scripted `faults` (an HTTP status with a
Twilio code, or a hang longer than the client's timeout). With
`deliver_callbacks`, it then posts signed status callbacks (sent, delivered)
to StatusCallback, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


@dataclass
class CallUpdate:
    call_sid: str
    form: dict[str, str]
    twiml: ET.Element | None = None


@dataclass
class SentMessage:
    """One message the fake accepted, as Twilio would hold it."""

    sid: str
    to: str
    from_: str
    messaging_service_sid: str
    body: str
    status_callback: str
    at: float


@dataclass
class Fault:
    """The answer to the next Messages request instead of a success: an HTTP status with a
    Twilio error code, or (`hang_s` > 0) no answer for that long (a client timeout)."""

    status: int = 500
    code: int = 20500
    message: str = "Internal Server Error"
    hang_s: float = 0.0


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class FakeTwilioRest:
    account_sid: str
    auth_token: str
    # Calls that exist and are live; None: every well-formed SID is a live call.
    live_calls: set[str] | None = None
    updates: list[CallUpdate] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    # Messages: accepted sends, recipients who texted STOP, scripted failures (FIFO).
    messages: list[SentMessage] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    message_requests: int = 0
    deliver_callbacks: bool = False
    callbacks_posted: list[tuple[str, str, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
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

    async def create_message(self, request: web.Request) -> web.Response:
        self.message_requests += 1
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        account = request.match_info["account"]
        if account != self.account_sid:
            return self._error(403, 20003, "Authenticate")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if self.faults:
            fault = self.faults.pop(0)
            if fault.hang_s > 0:
                await asyncio.sleep(fault.hang_s)
            return self._error(fault.status, fault.code, fault.message)
        to = form.get("To", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if "Body" not in form and "MediaUrl" not in form:
            return self._error(400, 21602, "Message body is required.")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        if not sender and not service:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not _E164.match(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.unsubscribed:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + uuid.uuid4().hex
        msg = SentMessage(sid, to, sender, service, form["Body"], form.get("StatusCallback", ""),
                          time.time())
        self.messages.append(msg)
        if self.deliver_callbacks and msg.status_callback:
            task = asyncio.get_running_loop().create_task(self._callbacks(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(self._message_json(account, msg, "queued"), status=201)

    async def _callbacks(self, msg: SentMessage) -> None:
        """sent, then delivered, signed like Twilio's own status callbacks."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        validator = RequestValidator(self.auth_token)
        for status in ("sent", "delivered"):
            await asyncio.sleep(0.01)
            form = {"MessageSid": msg.sid, "SmsSid": msg.sid, "MessageStatus": status,
                    "SmsStatus": status, "AccountSid": self.account_sid, "To": msg.to,
                    "From": msg.from_, "ApiVersion": "2010-04-01"}
            signature = validator.compute_signature(msg.status_callback, form)
            try:
                async with self._session.post(msg.status_callback, data=form,
                                              headers={"X-Twilio-Signature": signature}) as r:
                    self.callbacks_posted.append((msg.sid, status, r.status))
            except aiohttp.ClientError:
                self.callbacks_posted.append((msg.sid, status, 0))

    @staticmethod
    def _message_json(account: str, msg: SentMessage, status: str) -> dict[str, Any]:
        now = formatdate(msg.at, usegmt=True).replace("GMT", "+0000")
        return {
            "sid": msg.sid, "account_sid": account, "status": status, "body": msg.body,
            "to": msg.to, "from": msg.from_ or None,
            "messaging_service_sid": msg.messaging_service_sid or None,
            "direction": "outbound-api", "api_version": "2010-04-01",
            "num_segments": "1", "num_media": "0", "price": None, "price_unit": "USD",
            "error_code": None, "error_message": None,
            "date_created": now, "date_updated": now, "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{msg.sid}.json",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{account}/Messages/{msg.sid}/Media.json"},
        }

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
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json",
                            self.create_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def main(argv: list[str] | None = None) -> int:
    """Run the fake on its own (demos, the README's worked example): every message it
    accepts is printed as one JSON line.

        python -m tests.fakes.twilio_rest --port 8002 --account-sid AC… --auth-token T
    """
    import argparse
    import json
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.twilio_rest")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--deliver-callbacks", action="store_true",
                        help="post signed sent/delivered status callbacks, as Twilio does")
    args = parser.parse_args(argv)

    class _Printing(FakeTwilioRest):
        async def create_message(self, request: web.Request) -> web.Response:
            before = len(self.messages)
            response = await super().create_message(request)
            if len(self.messages) > before:
                m = self.messages[-1]
                print(json.dumps({"sid": m.sid, "to": m.to, "from": m.from_ or
                                  m.messaging_service_sid, "body": m.body}), flush=True)
            return response

    async def run() -> None:
        fake = _Printing(args.account_sid, args.auth_token,
                         deliver_callbacks=args.deliver_callbacks)
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", fake.create_message)
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", fake.update_call)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        print(f"fake Twilio REST on http://127.0.0.1:{args.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await fake.stop()
        await runner.cleanup()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
