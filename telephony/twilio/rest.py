"""Actions on a live call through the Twilio REST API: hang up, transfer.

Both work by replacing the call's TwiML (`Calls/{sid}.json` with `Twiml=`),
which also ends the `<Connect><Stream>` the call is on: `<Hangup/>` to end it,
`<Dial>` to bridge the caller to a human. The official `twilio` SDK builds the
request (and the TwiML, so numbers are escaped properly) and sends it with its
aiohttp-based async client, so no request blocks the event loop.

`base_url` points the SDK's API domain elsewhere: tests use the fake in
`tests/fakes/twilio_rest.py`, which checks auth and records the TwiML.

Every request is bounded by `timeout_s` here (`bounded`): the SDK's async client
passes its per-request timeout (None) to aiohttp instead of the one it was made with,
so without this a Twilio that accepts the connection and never answers would hold a
hang-up, a transfer or a dial forever.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TypeVar

import phonenumbers
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from telephony.settings import TwilioSettings

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_SIP_URI = re.compile(r"^sips?:[^\s<>\"]+$")


T = TypeVar("T")


class TwilioRestError(RuntimeError):
    """Twilio refused or failed an action on a call."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TwilioTimeout(TimeoutError):
    """Twilio did not answer a REST request within the client's `timeout_s`."""


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def transfer_twiml(
    number: str,
    *,
    caller_id: str | None = None,
    ring_timeout_s: int | None = None,
    announce: str | None = None,
) -> str:
    """`<Dial>` to a phone number (E.164) or a SIP URI, optionally after a short `<Say>`."""
    response = VoiceResponse()
    if announce:
        response.say(announce)
    dial = Dial(caller_id=caller_id, timeout=ring_timeout_s)
    if _SIP_URI.match(number):
        dial.sip(number)
    else:
        dial.number(normalize_number(number))
    response.append(dial)
    return str(response)


def normalize_number(number: str) -> str:
    """E.164 form of a phone number; ValueError if it is not a valid one."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number in E.164 form: {number!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"not a possible phone number: {number!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class TwilioRest:
    """Call control for one Twilio account; one instance per process is enough."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("Twilio account_sid and auth_token are required")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = timeout_s
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    @classmethod
    def from_settings(cls, settings: TwilioSettings, *, base_url: str | None = None) -> TwilioRest:
        return cls(settings.account_sid, settings.auth_token, base_url=base_url)

    def _sdk(self) -> Client:
        # The aiohttp session must be created inside the running loop: lazily.
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=self.timeout_s)
            client = Client(self.account_sid, self._auth_token, http_client=self._http)
            if self.base_url:
                client.api.base_url = self.base_url
            self._client = client
        return self._client

    async def bounded(self, request: Awaitable[T], what: str) -> T:
        """`request` (an SDK coroutine) given at most `timeout_s`; `TwilioTimeout` names
        the request and the limit when Twilio does not answer in time."""
        try:
            return await asyncio.wait_for(request, self.timeout_s)
        except TimeoutError as exc:
            raise TwilioTimeout(f"Twilio did not answer {what} within {self.timeout_s:g} s"
                                ) from exc

    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        """Replace what a live call is doing with `twiml`."""
        if not _CALL_SID.match(call_sid):
            raise ValueError(f"not a call SID: {call_sid!r}")
        try:
            await self.bounded(self._sdk().calls(call_sid).update_async(twiml=twiml),
                               f"the update of call {call_sid}")
        except TwilioRestException as exc:
            raise TwilioRestError(
                f"Twilio refused to update call {call_sid}: {exc.msg}", exc.status, exc.code
            ) from exc
        except TwilioTimeout as exc:
            raise TwilioRestError(str(exc)) from exc
        except (OSError, TimeoutError) as exc:
            raise TwilioRestError(f"Twilio unreachable updating call {call_sid}: {exc!r}") from exc

    async def hangup(self, call_sid: str) -> None:
        await self.update_twiml(call_sid, hangup_twiml())

    async def transfer(
        self,
        call_sid: str,
        number: str,
        *,
        caller_id: str | None = None,
        ring_timeout_s: int | None = None,
        announce: str | None = None,
    ) -> None:
        await self.update_twiml(
            call_sid,
            transfer_twiml(
                number, caller_id=caller_id, ring_timeout_s=ring_timeout_s, announce=announce
            ),
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None
