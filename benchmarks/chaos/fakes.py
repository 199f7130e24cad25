"""Twilio for the harness: one REST endpoint for Calls (the dialer's fake, which also plays
each callee over a real Media Stream) and Messages (the SMS fake), in the harness's
process so every request it received can be counted after the faults.

The Calls half is `ops.dev.fake_twilio.FakeTwilio`, the code `leadline dev fake-twilio`
serves; the Messages half is `tests.fakes.twilio_rest.FakeTwilioRest`. leadline has one
`twilio.api_base_url`, so both answer on the same port.
"""

from __future__ import annotations

from aiohttp import web

from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio
from tests.fakes.twilio_rest import FakeTwilioRest

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "chaos-auth-token-0123456789"


class Twilio:
    def __init__(self) -> None:
        script = CalleeScript(default=Callee(answer="human", lines=["Hello, front desk."],
                                             max_s=20, quiet_s=0.8))
        self.calls = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, script=script)
        self.messages = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, deliver_callbacks=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return self.calls.base_url

    async def start(self) -> Twilio:
        app = self.calls.app()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json",
                            self.messages.create_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.calls.port = self.messages.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        await self.messages.stop()
        await self.calls.stop()
        if self._runner is not None:
            await self._runner.cleanup()
