"""A fake Twilio for outbound calls that also plays the callee: `leadline dev fake-twilio`.

REST, as the official SDK speaks it: `POST /2010-04-01/Accounts/{sid}/Calls.json` (basic
auth of the account SID and auth token; To, From, Twiml, StatusCallback with its events,
MachineDetection, AsyncAmd, AsyncAmdStatusCallback) answers 201 with the call resource,
or Twilio's error JSON (20003 authenticate, 21201 no To, 21212 bad From, 21205 no
Twiml/Url, and scripted `faults`: an HTTP status with a code, or a hang past the client's
timeout). `POST .../Calls/{CallSid}.json` with `<Hangup/>` TwiML or `Status=completed`
ends a live call; `GET .../Calls/{CallSid}.json` reads its status.

Then the callee, per its script (TOML, by number, with a default): the status callbacks
signed with the auth token like Twilio's (initiated, ringing, answered → in-progress,
then completed with CallDuration; or busy / no-answer / failed), and for an answered
call the Media Stream to the TwiML's `<Stream url>`: the upgrade signed, `connected` and
`start` with the `<Parameter>`s, then 20 ms frames of what the callee says (eSpeak NG
speech), paced in real time, marks echoed as they would have played (Twilio's side of
the wire is `ops.dev.twilio_side`, its buffer model `ops.dev.sim.Playout`). The AMD
verdict goes to AsyncAmdStatusCallback. Everything is recorded per call: the form, the
callbacks and their answers, how much agent audio the callee heard.

Behaviours: `human` (says its lines, each after the agent has finished speaking, then
waits for an answer and hangs up), `machine` (a voicemail greeting and a beep, then
listens until we hang up; AMD machine_end_beep), `silence` (answers and says nothing;
AMD unknown), `ivr` (a phone menu repeated until the agent keys the right digit in-band
— heard with a Goertzel DTMF ear — then a human; gives up after `ivr_repeats` menus),
`busy`, `no-answer`, `failed`.

Messages live in `tests/fakes/twilio_rest.py`; both fakes answer the same account.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import secrets
import struct
import time
import tomllib
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

import aiohttp
import msgspec
from aiohttp import web

from agents.tts import synthesize_ulaw_async
from media.codecs import ulaw
from ops.dev.sim import Playout, parse_stream_twiml
from ops.dev.twilio_side import (
    ServerClear,
    ServerError,
    ServerMark,
    ServerMedia,
    TwilioSide,
    parse_server,
)
from telephony.twilio.signature import SIGNATURE_HEADER, SignatureChecker

log = logging.getLogger("leadline.dev.fake_twilio")
FRAME_S = ulaw.FRAME_MS / 1000
Answer = Literal["human", "machine", "silence", "ivr", "busy", "no-answer", "failed"]


class Callee(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How one number behaves when called."""

    answer: Answer = "human"
    lines: list[str] = msgspec.field(default_factory=lambda: ["Hello, front desk."])
    greeting: str = "Hi, you have reached the front desk. Please leave a message after the tone."
    ring_ms: int = 200
    # After answering, when the AMD verdict is posted (human/silence; a machine's comes
    # at the end of its greeting).
    amd_after_ms: int = 600
    # The AnsweredBy Twilio posts; empty: what `answer` implies (human, unknown, or
    # machine_end_beep at the end of a machine's greeting). "unknown" on a machine or a
    # person is Twilio unable to tell, which our own detector then decides.
    amd: str = ""
    # The agent's silence that counts as "your turn" before the callee speaks.
    quiet_s: float = 1.0
    # Longest the callee stays on the line.
    max_s: float = 30.0
    # ivr: the menu played until the caller (our agent) keys `ivr_digit` in-band; then the
    # callee is a human saying `lines`. A wrong digit is refused; after `ivr_repeats`
    # menus without the right one the IVR hangs up.
    menu: str = "Thank you for calling. For appointments press 1. For the front desk press 2."
    ivr_digit: str = "2"
    ivr_repeats: int = 3
    # A second level: after `ivr_digit`, this menu until `ivr_digit2` (empty: none).
    menu2: str = ""
    ivr_digit2: str = "1"


class CalleeScript(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    default: Callee = msgspec.field(default_factory=Callee)
    numbers: dict[str, Callee] = msgspec.field(default_factory=dict)

    def for_number(self, number: str) -> Callee:
        return self.numbers.get(number, self.default)

    @classmethod
    def load(cls, path: str | Path) -> CalleeScript:
        return msgspec.convert(tomllib.loads(Path(path).read_text("utf-8")), cls)


@dataclass
class Fault:
    """The answer to the next create instead of a success."""

    status: int = 500
    code: int = 20500
    message: str = "Internal Server Error"
    hang_s: float = 0.0
    # The call is placed all the same (Twilio did its part; the answer was lost): the
    # ambiguity a client timeout leaves.
    created: bool = False


@dataclass
class PlacedCall:
    sid: str
    to: str
    from_: str
    form: dict[str, Any]
    created_at: float
    callee: Callee
    events: list[str] = field(default_factory=list)
    callbacks: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, value, HTTP)
    stream_url: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    answered_at: float | None = None
    ended_at: float | None = None
    status: str = "queued"
    heard_ms: int = 0
    agent_responses: int = 0
    closed_by_server: bool = False
    lines_said: int = 0
    hangup_requested: bool = False
    # time.time() of calls.create's arrival and of the agent's first audio on the stream.
    first_agent_audio_at: float | None = None
    # When the callee finished its first line ("Hello, front desk."), and the agent's
    # first audio after that: the "we answer within a second of hello" figure.
    first_line_end_at: float | None = None
    reply_after_line_at: float | None = None
    # DTMF digits heard in the agent's audio (in-band tones), in order.
    digits_heard: list[str] = field(default_factory=list)
    ws: aiohttp.ClientWebSocketResponse | None = None


_DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
_DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
_DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


class DtmfEar:
    """The callee's ear for in-band DTMF: Goertzel power at the eight DTMF frequencies per
    20 ms frame; a digit is heard once its tone pair dominates two frames running (ITU-T
    Q.24 asks for 40 ms), and again only after a frame without it."""

    def __init__(self) -> None:
        import numpy as np

        n = ulaw.FRAME_SAMPLES
        t = np.arange(n)
        freqs = _DTMF_LOW + _DTMF_HIGH
        self._basis = np.exp(-2j * np.pi * np.outer(freqs, t) / ulaw.SAMPLE_RATE)
        self._np = np
        self._last: str | None = None
        self._run = 0
        self._reported = False

    def frame(self, ulaw_frame: bytes) -> str | None:
        np = self._np
        if len(ulaw_frame) != ulaw.FRAME_BYTES:
            return None
        pcm = np.frombuffer(ulaw.decode(ulaw_frame), dtype="<i2").astype(np.float64)
        total = float(np.dot(pcm, pcm)) + 1e-9
        power = np.abs(self._basis @ pcm) ** 2 * 2 / len(pcm)
        low, high = int(np.argmax(power[:4])), int(np.argmax(power[4:]))
        tone = power[low] + power[4 + high]
        digit = _DTMF_KEYS[low][high] if tone > 0.6 * total and total > 1e5 * len(pcm) \
            else None
        if digit is not None and digit == self._last:
            self._run += 1
        else:
            self._run, self._reported = (1 if digit else 0), False
        self._last = digit
        if digit is not None and self._run >= 2 and not self._reported:
            self._reported = True
            return digit
        return None


def _beep(ms: int = 400, hz: float = 1000.0) -> bytes:
    n = ulaw.SAMPLE_RATE * ms // 1000
    pcm = struct.pack(f"<{n}h", *(int(9000 * math.sin(2 * math.pi * hz * i / ulaw.SAMPLE_RATE))
                                  for i in range(n)))
    return ulaw.encode(pcm)


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str, *,
                 script: CalleeScript | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.script = script or CalleeScript()
        self.signer = SignatureChecker(auth_token)
        self.calls: dict[str, PlacedCall] = {}
        self.creates = 0
        self.rejected: list[tuple[int, str]] = []
        self.faults: list[Fault] = []
        self.updates: list[tuple[str, dict[str, str]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls.json", self.create_call)
        app.router.add_get("/2010-04-01/Accounts/{account}/Calls.json", self.list_calls)
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", self.update_call)
        app.router.add_get("/2010-04-01/Accounts/{account}/Calls/{call}.json", self.fetch_call)
        return app

    async def start(self, port: int = 0) -> FakeTwilio:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, status: int, code: int, message: str) -> web.Response:
        self.rejected.append((code, message))
        return web.json_response({"code": code, "message": message, "status": status,
                                  "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                                 status=status)

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token \
            and request.match_info["account"] == self.account_sid

    def _call_json(self, call: PlacedCall) -> dict[str, Any]:
        now = formatdate(call.created_at, usegmt=True).replace("GMT", "+0000")
        return {"sid": call.sid, "account_sid": self.account_sid, "status": call.status,
                "to": call.to, "from": call.from_, "direction": "outbound-api",
                "api_version": "2010-04-01", "date_created": now, "date_updated": now,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json",
                "subresource_uris": {}}

    async def create_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        self.creates += 1
        post = await request.post()
        form: dict[str, Any] = {k: str(v) for k, v in post.items()}
        form["StatusCallbackEvent"] = [str(v) for v in post.getall("StatusCallbackEvent", [])]
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None and not fault.created:
            if fault.hang_s:
                await asyncio.sleep(fault.hang_s)
            return self._error(fault.status, fault.code, fault.message)
        to, from_ = form.get("To", ""), form.get("From", "")
        if not to:
            return self._error(400, 21201, "No 'To' number is specified")
        if not from_.startswith("+"):
            return self._error(400, 21212, f"Invalid From number: {from_}")
        if not form.get("Twiml") and not form.get("Url"):
            return self._error(400, 21205, "Url or Twiml parameter is required")
        call = PlacedCall("CA" + secrets.token_hex(16), to, from_, form, time.time(),
                          self.script.for_number(to))
        self.calls[call.sid] = call
        task = asyncio.create_task(self._play(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if fault is not None:  # placed, but the client never hears so
            await asyncio.sleep(fault.hang_s)
            return self._error(fault.status, fault.code, fault.message)
        return web.json_response(self._call_json(call), status=201)

    async def list_calls(self, request: web.Request) -> web.Response:
        """`GET Calls.json?To=&From=`: newest first, one page, Twilio's paging keys."""
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        to, from_ = request.query.get("To"), request.query.get("From")
        found = [c for c in sorted(self.calls.values(), key=lambda c: -c.created_at)
                 if (to is None or c.to == to) and (from_ is None or c.from_ == from_)]
        size = int(request.query.get("PageSize", "50"))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        return web.json_response({
            "calls": [self._call_json(c) for c in found[:size]], "page": 0,
            "page_size": size, "start": 0, "end": max(0, min(size, len(found)) - 1),
            "uri": uri, "first_page_uri": uri, "next_page_uri": None,
            "previous_page_uri": None})

    async def fetch_call(self, request: web.Request) -> web.Response:
        """`GET Calls/{CallSid}.json`: the call resource with its status now."""
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["call"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        return web.json_response(self._call_json(call))

    async def update_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["call"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.updates.append((call.sid, form))
        hang = form.get("Status") == "completed" or "<Hangup" in form.get("Twiml", "")
        if hang and call.ended_at is None:
            call.hangup_requested = True
            if call.ws is not None:
                await call.ws.close()
        return web.json_response(self._call_json(call))

    # -- the callee -------------------------------------------------------------------

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._http

    async def _post(self, call: PlacedCall, url: str, params: dict[str, str], kind: str,
                    value: str) -> None:
        if not url:
            return
        headers = {SIGNATURE_HEADER: self.signer.sign(url, params),
                   "User-Agent": "TwilioProxy/1.1"}
        try:
            async with self._http_session().post(url, data=params, headers=headers) as resp:
                call.callbacks.append((kind, value, resp.status))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("callback failed: %r", exc)
            call.callbacks.append((kind, value, 0))

    def _base_params(self, call: PlacedCall) -> dict[str, str]:
        return {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": call.sid,
                "From": call.from_, "To": call.to, "Direction": "outbound-api",
                "Called": call.to, "Caller": call.from_}

    async def _status(self, call: PlacedCall, status: str, event: str | None = None,
                      **extra: str) -> None:
        call.status = status
        call.events.append(status)
        wanted = call.form.get("StatusCallbackEvent") or []
        if event is not None and event not in wanted:
            return
        params = {**self._base_params(call), "CallStatus": status,
                  "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(len(call.events) - 1),
                  "Timestamp": formatdate(time.time(), usegmt=True), **extra}
        await self._post(call, call.form.get("StatusCallback", ""), params, "status", status)

    async def _amd(self, call: PlacedCall, answered_by: str) -> None:
        if call.form.get("AsyncAmd") != "true":
            return
        params = {**self._base_params(call), "AnsweredBy": answered_by,
                  "MachineDetectionDuration": "1800"}
        await self._post(call, call.form.get("AsyncAmdStatusCallback", ""), params, "amd",
                         answered_by)

    async def _play(self, call: PlacedCall) -> None:
        c = call.callee
        await self._status(call, "initiated", "initiated")
        await asyncio.sleep(c.ring_ms / 2000)
        await self._status(call, "ringing", "ringing")
        await asyncio.sleep(c.ring_ms / 2000)
        if c.answer in ("busy", "no-answer", "failed"):
            call.ended_at = time.time()
            await self._status(call, c.answer, None, CallDuration="0")
            return
        call.answered_at = time.time()
        await self._status(call, "in-progress", "answered")
        try:
            await self._stream(call)
        except Exception:
            log.exception("fake callee stream failed")
        finally:
            call.ended_at = time.time()
            duration = str(round(call.ended_at - (call.answered_at or call.ended_at)))
            await self._status(call, "completed", None, CallDuration=duration)

    async def _stream(self, call: PlacedCall) -> None:
        parsed = parse_stream_twiml(call.form.get("Twiml", "<Response/>"))
        if parsed is None:
            return
        call.stream_url, call.parameters = parsed
        headers = {SIGNATURE_HEADER: self.signer.sign(call.stream_url, {}),
                   "User-Agent": "Twilio.TmeWs/1.0"}
        ws = await self._http_session().ws_connect(call.stream_url, headers=headers,
                                                   max_msg_size=1 << 22)
        call.ws = ws
        side = TwilioSide("MZ" + secrets.token_hex(16), call.sid, self.account_sid,
                          call.parameters)
        playout = Playout(keep_audio=False)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        now = lambda: loop.time() - t0  # noqa: E731
        receiver = asyncio.create_task(self._receive(call, ws, side, playout, now))
        try:
            await ws.send_str(side.connected().decode())
            await ws.send_str(side.start().decode())
            await self._talk(call, ws, side, playout, now)
            if not ws.closed:
                await ws.send_str(side.stop().decode())
                await ws.close()
        except (aiohttp.ClientError, ConnectionResetError):
            pass
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(receiver, 5)
            call.heard_ms = playout.played_bytes * 1000 // ulaw.SAMPLE_RATE
            call.agent_responses = playout.responses

    async def _receive(self, call: PlacedCall, ws: aiohttp.ClientWebSocketResponse,
                       side: TwilioSide, playout: Playout, now: Any) -> None:
        async def echo(names: list[str]) -> None:
            for name in names:
                if not ws.closed:
                    await ws.send_str(side.mark(name).decode())

        ear = DtmfEar() if call.callee.answer == "ivr" else None
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            m = parse_server(msg.data)
            t = now()
            if ear is not None and isinstance(m, ServerMedia):
                for i in range(0, len(m.audio) - ulaw.FRAME_BYTES + 1, ulaw.FRAME_BYTES):
                    digit = ear.frame(m.audio[i:i + ulaw.FRAME_BYTES])
                    if digit is not None:
                        call.digits_heard.append(digit)
            if isinstance(m, ServerError):
                continue
            if isinstance(m, ServerMedia):
                if call.first_agent_audio_at is None:
                    call.first_agent_audio_at = time.time()
                if call.first_line_end_at is not None and call.reply_after_line_at is None:
                    call.reply_after_line_at = time.time()
                due, _ = playout.media(t, m.audio)
                await echo(due)
            elif isinstance(m, ServerMark):
                await echo(playout.mark(t, m.name))
            elif isinstance(m, ServerClear):
                due, flushed = playout.clear(t)
                await echo(due + flushed)
        if not call.hangup_requested:
            call.closed_by_server = True

    async def _talk(self, call: PlacedCall, ws: aiohttp.ClientWebSocketResponse,
                    side: TwilioSide, playout: Playout, now: Any) -> None:
        """The callee's frames, one per 20 ms on absolute deadlines, until someone hangs up."""
        c = call.callee
        loop = asyncio.get_running_loop()
        if c.answer == "ivr":
            if not await self._ivr(call, ws, side, playout, now):
                return
            if c.menu2 and not await self._ivr(call, ws, side, playout, now,
                                               menu_text=c.menu2, digit=c.ivr_digit2):
                return
            c = msgspec.structs.replace(c, answer="human")
        if c.answer == "machine":
            queue = [await synthesize_ulaw_async(c.greeting) + _beep()]
        elif c.answer == "human":
            queue = [await synthesize_ulaw_async(line) for line in c.lines]
        else:
            queue = []
        t0 = loop.time()
        tick = 0
        audio = b""
        pos = 0
        amd_due = c.amd_after_ms / 1000 if c.answer != "machine" else None
        waiting_since = 0.0
        # Agent responses heard when the callee last finished speaking: a later one is
        # the answer it waits for (the greeting, for the first line).
        responses_before = playout.responses - 1 if playout.responses else 0
        while not ws.closed:
            tick += 1
            delay = t0 + tick * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t = now()
            if t >= c.max_s:
                return
            for name in playout.advance(t):
                await ws.send_str(side.mark(name).decode())
            if amd_due is not None and t >= amd_due:
                amd_due = None
                verdict = c.amd or ("human" if c.answer == "human" else "unknown")
                self._spawn(self._amd(call, verdict))
            if pos >= len(audio):
                if audio:  # just finished saying something
                    audio, pos = b"", 0
                    if call.first_line_end_at is None:
                        call.first_line_end_at = time.time()
                    waiting_since = t
                    responses_before = playout.responses
                    if c.answer == "machine":
                        self._spawn(self._amd(call, c.amd or "machine_end_beep"))
                answered = playout.responses > responses_before and \
                    playout.idle_for(t) >= c.quiet_s
                ready = c.answer == "machine" or answered
                if queue and (ready or (t - waiting_since > 6.0 and not playout.busy)):
                    audio, pos = queue.pop(0), 0
                    call.lines_said += 1
                elif not queue and c.answer == "human" and call.lines_said and answered:
                    return  # answered after the last line: the callee hangs up
            frame = audio[pos:pos + ulaw.FRAME_BYTES] if pos < len(audio) else b""
            pos += ulaw.FRAME_BYTES
            if len(frame) < ulaw.FRAME_BYTES:
                frame += ulaw.SILENT_FRAME[len(frame):]
            try:
                await ws.send_str(side.media(frame).decode())
            except (ConnectionResetError, aiohttp.ClientError):
                return

    async def _ivr(self, call: PlacedCall, ws: aiohttp.ClientWebSocketResponse,
                   side: TwilioSide, playout: Playout, now: Any, *,
                   menu_text: str | None = None, digit: str | None = None) -> bool:
        """Play the menu until the right digit is keyed; False: the IVR gave up."""
        c = call.callee
        wanted = c.ivr_digit if digit is None else digit
        loop = asyncio.get_running_loop()
        menu = await synthesize_ulaw_async(c.menu if menu_text is None else menu_text)
        invalid = await synthesize_ulaw_async("Sorry, that is not a valid option.")
        silence = ulaw.SILENT_FRAME * 100  # 2 s between menus
        plays = 0
        audio, pos, checked = b"", 0, len(call.digits_heard)  # keys of this menu only
        t0, tick = loop.time(), 0
        while not ws.closed and now() < c.max_s:
            tick += 1
            delay = t0 + tick * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for name in playout.advance(now()):
                await ws.send_str(side.mark(name).decode())
            heard = call.digits_heard[checked:]
            if heard:
                checked = len(call.digits_heard)
                if wanted in heard:
                    return True
                audio, pos = invalid + silence, 0
            if pos >= len(audio):
                if plays >= c.ivr_repeats:
                    return False
                audio, pos = menu + silence, 0
                plays += 1
            frame = audio[pos:pos + ulaw.FRAME_BYTES]
            pos += ulaw.FRAME_BYTES
            if len(frame) < ulaw.FRAME_BYTES:
                frame += ulaw.SILENT_FRAME[len(frame):]
            await ws.send_str(side.media(frame).decode())
        return False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def serve(port: int, account_sid: str, auth_token: str, script: str | None) -> None:
    import signal

    fake = FakeTwilio(account_sid, auth_token,
                      script=CalleeScript.load(script) if script else None)
    await fake.start(port)
    print(f"fake Twilio (calls + callee) on {fake.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()
