"""The Twilio side of an outbound call: `calls.create` onto our own media path.

The call is created with inline TwiML `<Connect><Stream>` to the same `/twilio/media`
endpoint inbound calls use, with `Direction=outbound-api` and the job's identity as
`<Parameter>`s, so the one media path serves both directions (the stream's start
message carries them to the call). Status callbacks (initiated, ringing, answered,
completed, and the unanswered endings) go to `/twilio/call-status`; answering-machine
detection runs asynchronously (`DetectMessageEnd`), its verdict to `/twilio/amd`, so the
callee is never held in silence while Twilio listens.

The official SDK builds and sends the request (its aiohttp client, against
`twilio.api_base_url` in tests). Failures are sorted for the queue: a 4xx (but 429) is
Twilio refusing this call for good; 5xx, 429, timeouts and a lost connection may pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from twilio.base.exceptions import TwilioRestException

from telephony.twilio.rest import TwilioRest, TwilioTimeout
from telephony.twilio.twiml import connect_stream_twiml

CALL_STATUS_PATH = "/twilio/call-status"
AMD_PATH = "/twilio/amd"
MEDIA_PATH = "/twilio/media"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class DialFailed(RuntimeError):
    """Twilio did not place the call. `permanent`: do not try again."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None,
                 code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class DialRequest:
    to: str
    from_: str
    parameters: Mapping[str, str]
    ring_timeout_s: int
    time_limit_s: int


def callback_urls(base_url: str) -> tuple[str, str, str]:
    """(media ws URL, status URL, AMD URL) under `base_url` (`scheme://host[/prefix]`,
    the scheme as `twilio.public_url` gives it)."""
    base = base_url.rstrip("/")
    ws = "wss://" + base[len("https://"):] if base.startswith("https://") else (
        "ws://" + base[len("http://"):] if base.startswith("http://") else base)
    return f"{ws}{MEDIA_PATH}", f"{base}{CALL_STATUS_PATH}", f"{base}{AMD_PATH}"


def stream_twiml(base_url: str, parameters: Mapping[str, str]) -> str:
    media, _, _ = callback_urls(base_url)
    return connect_stream_twiml(media, {"Direction": "outbound-api", **parameters})


class TwilioCallPlacer(TwilioRest):
    """`calls.create` and hang-up for the dialer, over the shared REST client."""

    async def place(self, request: DialRequest, base_url: str) -> str:
        """Ask Twilio to dial; the new call's SID."""
        _, status_url, amd_url = callback_urls(base_url)
        try:
            # The SDK's async client does not apply its own timeout to the request (it
            # passes the per-request one, None): bound the call here.
            call = await self.bounded(self._sdk().calls.create_async(
                to=request.to,
                from_=request.from_,
                twiml=stream_twiml(base_url, {"From": request.from_, "To": request.to,
                                              **request.parameters}),
                status_callback=status_url,
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=amd_url,
                async_amd_status_callback_method="POST",
                timeout=request.ring_timeout_s,
                time_limit=request.time_limit_s,
            ), "calls.create")
        except TwilioRestException as exc:
            status = exc.status
            permanent = 400 <= status < 500 and status != 429
            raise DialFailed(f"twilio {status}: {exc.code} {exc.msg}"[:500],
                             permanent=permanent, status=status, code=exc.code) from exc
        except TwilioTimeout as exc:
            raise DialFailed(f"twilio timeout: {exc}"[:500], permanent=False) from exc
        except (OSError, TimeoutError) as exc:
            raise DialFailed(f"twilio unreachable: {exc!r}"[:500], permanent=False) from exc
        sid = str(call.sid or "")
        if not sid.startswith("CA"):
            raise DialFailed(f"twilio answered without a call SID: {sid[:40]!r}",
                             permanent=False)
        return sid

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        """A call to `to` from `from_` created at or after `since`, if Twilio has one: how
        a create whose answer was lost (a timeout) is told from one that never happened."""
        try:
            calls = await self.bounded(
                self._sdk().calls.list_async(to=to, from_=from_, limit=20), "calls.list")
        except TwilioRestException as exc:
            raise DialFailed(f"twilio {exc.status}: {exc.code} {exc.msg}"[:500],
                             permanent=False, status=exc.status, code=exc.code) from exc
        except TwilioTimeout as exc:
            raise DialFailed(f"twilio timeout: {exc}"[:500], permanent=False) from exc
        except (OSError, TimeoutError) as exc:
            raise DialFailed(f"twilio unreachable: {exc!r}"[:500], permanent=False) from exc
        # Twilio's dates have whole seconds: allow for the truncation.
        floor = since - timedelta(seconds=2)
        for call in calls:
            created = call.date_created
            if call.sid and created is not None and created >= floor:
                return str(call.sid)
        return None

    async def status(self, call_sid: str) -> str:
        """The call's status as Twilio has it now (`calls(sid).fetch`): how a job
        redelivered after its process died learns that the call ended, when the status
        callback went to the dead process and nobody will send it again."""
        try:
            call = await self.bounded(self._sdk().calls(call_sid).fetch_async(), "calls.fetch")
        except TwilioRestException as exc:
            raise DialFailed(f"twilio {exc.status}: {exc.code} {exc.msg}"[:500],
                             permanent=False, status=exc.status, code=exc.code) from exc
        except TwilioTimeout as exc:
            raise DialFailed(f"twilio timeout: {exc}"[:500], permanent=False) from exc
        except (OSError, TimeoutError) as exc:
            raise DialFailed(f"twilio unreachable: {exc!r}"[:500], permanent=False) from exc
        return str(call.status or "")
