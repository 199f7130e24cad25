"""`leadline sim call`: a Twilio stand-in that places one call against a server.

It does what Twilio does, in the order Twilio does it: POSTs the signed voice
webhook, reads the TwiML, opens the signed Media Stream, sends `connected` and
`start`, then streams the caller in real time (20 ms frames on absolute
deadlines, silence whenever the caller is not talking, so the stream never
stalls while the call is up), and hangs up with `stop`.

The agent's side is played the way Twilio plays it, because that is what makes
barge-in and truncation testable: audio plays in real time from receipt
(`Playout`, a sans-I/O model of Twilio's buffer); a `mark` comes back only once
the audio sent before it has finished playing; `clear` drops the buffer and
returns every pending mark at once. What was actually heard can be written to
a WAV file, and every step lands on a timeline.

The server under test may advertise a public hostname in `<Stream url>` that
does not resolve here; the stream is opened on the host of `SimOptions.url`
with the TwiML's path, while the signature covers the URL exactly as given in
the TwiML, like Twilio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import wave
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from media.codecs import ulaw
from ops.dev.twilio_side import (
    ServerClear,
    ServerError,
    ServerMark,
    ServerMedia,
    TwilioSide,
    parse_server,
)
from telephony.twilio.signature import SIGNATURE_HEADER, SignatureChecker

FRAME_S = ulaw.FRAME_MS / 1000
_SAMPLES_PER_S = ulaw.SAMPLE_RATE
# Behind by more than this, the sender skips ahead (as Twilio skips) instead of
# bursting a backlog of frames at the server.
_MAX_LAG_FRAMES = 10


class SimError(RuntimeError):
    """The call could not be placed: webhook refused, bad TwiML, upgrade refused."""


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    url: str = "http://127.0.0.1:8080"  # where the server really is
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    audio: bytes | None = None  # caller speech, 8 kHz μ-law
    dtmf: str = ""  # digits pressed after the audio
    record: str | None = None  # WAV (PCM16 8 kHz mono) of what the agent said
    auth_token: str = ""  # sign like Twilio; "" sends no signature
    call_sid: str = ""  # "" → random CA + 32 hex
    account_sid: str = ""  # "" → random AC + 32 hex
    hangup_after_s: float = 60.0  # longest call
    wait_for_agent_s: float = 5.0  # how long to wait for the agent to start talking
    json_events: bool = False  # print timeline events as JSON lines as they happen
    # Talk over the greeting this many seconds after it starts (barge-in), instead
    # of waiting for the agent to finish; None = wait politely.
    barge_in_after_s: float | None = None
    # The URL Twilio would have POSTed to, which is what it signs; "" = url.
    public_url: str = ""
    voice_path: str = "/twilio/voice"
    # Agent silence that counts as "done talking" (greeting over, answer over).
    quiet_s: float = 0.8
    dtmf_interval_s: float = 0.3
    # A dry buffer shorter than this between agent audio is an underrun (the
    # caller hears a hole); a longer one starts a new response.
    response_gap_ms: int = 400
    # Where json_events lines go; None = stdout.
    on_event: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.hangup_after_s <= 0:
            raise ValueError("hangup_after_s must be positive")
        if self.wait_for_agent_s < 0 or self.quiet_s < 0:
            raise ValueError("wait_for_agent_s and quiet_s must not be negative")
        bad = set(self.dtmf) - set("0123456789*#ABCDw")
        if bad:
            raise ValueError(f"dtmf has invalid digits: {''.join(sorted(bad))}")


@dataclass
class SimResult:
    timeline: list[dict[str, Any]] = field(default_factory=list)
    agent_audio_ms: int = 0  # agent audio actually played (cleared audio excluded)
    marks_echoed: int = 0  # all marks sent back, played or flushed
    marks_flushed: int = 0  # of those, sent back because of a clear
    clears: int = 0
    underruns: int = 0
    responses: int = 0  # agent utterances (audio after a dry spell or a clear)
    closed_by_server: bool = False
    stream_sid: str = ""
    call_sid: str = ""
    twiml: str = ""
    protocol_errors: int = 0  # server messages Twilio would have rejected


class Playout:
    """Twilio's outbound buffer as a model on an injected clock (seconds).

    Audio plays in real time from the moment it arrives; a mark is due once
    every byte received before it has played or been cleared. The caller of
    each method gets back the mark names due now, in order, to echo.
    """

    def __init__(self, *, response_gap_ms: int = 400, keep_audio: bool = True) -> None:
        self._gap_samples = response_gap_ms * _SAMPLES_PER_S // 1000
        self._keep = keep_audio
        self._buf = bytearray()
        self._pending: deque[tuple[int, str]] = deque()  # (byte position, name)
        self._consumed = 0  # bytes played or cleared, ever
        self._t: int | None = None  # sample clock up to which playout is computed
        self._dry_at = 0  # sample time the buffer last ran dry
        self._in_response = False
        self.played = bytearray()  # what the caller heard (if keep_audio)
        self.played_bytes = 0
        self.cleared_bytes = 0
        self.received_bytes = 0
        self.underruns = 0
        self.responses = 0

    def _now(self, now: float) -> int:
        ns = int(now * _SAMPLES_PER_S)
        if self._t is None:
            self._t = self._dry_at = ns
        return ns

    def advance(self, now: float) -> list[str]:
        ns = self._now(now)
        assert self._t is not None
        if ns > self._t:
            if self._buf:
                n = min(len(self._buf), ns - self._t)
                if self._keep:
                    self.played += self._buf[:n]
                del self._buf[:n]
                self._consumed += n
                self.played_bytes += n
                if not self._buf:
                    self._dry_at = self._t + n
            self._t = ns
        due: list[str] = []
        while self._pending and self._pending[0][0] <= self._consumed:
            due.append(self._pending.popleft()[1])
        return due

    def media(self, now: float, audio: bytes) -> tuple[list[str], str | None]:
        """Queue agent audio. Second value: "response_start", "underrun" or None."""
        due = self.advance(now)
        kind = None
        if audio and not self._buf:
            assert self._t is not None
            if self._in_response and self._t - self._dry_at < self._gap_samples:
                self.underruns += 1
                kind = "underrun"
            else:
                self.responses += 1
                kind = "response_start"
            self._in_response = True
        self._buf += audio
        self.received_bytes += len(audio)
        return due, kind

    def mark(self, now: float, name: str) -> list[str]:
        due = self.advance(now)
        if self._buf:
            self._pending.append((self._consumed + len(self._buf), name))
        else:  # nothing buffered: Twilio answers at once
            due.append(name)
        return due

    def clear(self, now: float) -> tuple[list[str], list[str]]:
        """Drop buffered audio. Returns (marks that had played, marks flushed)."""
        due = self.advance(now)
        self._consumed += len(self._buf)
        self.cleared_bytes += len(self._buf)
        self._buf.clear()
        flushed = [name for _, name in self._pending]
        self._pending.clear()
        self._in_response = False
        assert self._t is not None
        self._dry_at = self._t
        return due, flushed

    @property
    def busy(self) -> bool:
        return bool(self._buf)

    def idle_for(self, now: float) -> float:
        """Seconds the buffer has been dry at `now` (0 while audio is playing).

        Read-only: marks fall due only through the methods that return them.
        """
        ns = self._now(now)
        assert self._t is not None
        dry_at = self._t + len(self._buf) if self._buf else self._dry_at
        return max(0, ns - dry_at) / _SAMPLES_PER_S

    @property
    def pending_marks(self) -> int:
        return len(self._pending)


def _random_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _voice_params(options: SimOptions, call_sid: str, account_sid: str) -> dict[str, str]:
    """The form an inbound call's voice webhook carries (Twilio's field names)."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": options.from_number,
        "To": options.to_number,
        "Caller": options.from_number,
        "Called": options.to_number,
    }
    for side in ("From", "To", "Caller", "Called"):
        params[side + "Country"] = "US"
        params[side + "State"] = ""
        params[side + "City"] = ""
        params[side + "Zip"] = ""
    return params


def parse_stream_twiml(twiml: str) -> tuple[str, dict[str, str]] | None:
    """(`<Stream url>`, its `<Parameter>`s) from `<Connect><Stream>`, or None."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise SimError(f"voice webhook answered invalid TwiML: {exc}") from exc
    if root.tag != "Response":
        raise SimError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None
    url = stream.get("url")
    if not url:
        raise SimError("<Stream> has no url")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("./Parameter")}
    return url, params


def stream_connect_url(server_url: str, stream_url: str) -> str:
    """Where to open the stream: the TwiML's path on the server we were given."""
    base = urlsplit(server_url)
    target = urlsplit(stream_url)
    scheme = {"https": "wss", "wss": "wss"}.get(base.scheme, "ws")
    return urlunsplit((scheme, base.netloc, target.path or "/", target.query, ""))


class _Call:
    """One simulated call: the asyncio shell around `TwilioSide` and `Playout`."""

    def __init__(self, options: SimOptions) -> None:
        self.o = options
        self.result = SimResult()
        self.result.call_sid = options.call_sid or _random_sid("CA")
        self.account_sid = options.account_sid or _random_sid("AC")
        self.signer = SignatureChecker(options.auth_token) if options.auth_token else None
        self.playout = Playout(
            response_gap_ms=options.response_gap_ms, keep_audio=options.record is not None
        )
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.side: TwilioSide | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.hanging_up = False
        self.agent_started_at: float | None = None

    # -- timeline ------------------------------------------------------------

    def now(self) -> float:
        return self.loop.time() - self.t0

    def event(self, kind: str, /, **fields: Any) -> None:
        ev: dict[str, Any] = {"t": round(self.now(), 3), "event": kind, **fields}
        self.result.timeline.append(ev)
        if self.o.json_events:
            if self.o.on_event is not None:
                self.o.on_event(ev)
            else:
                sys.stdout.write(msgspec.json.encode(ev).decode() + "\n")
                sys.stdout.flush()

    # -- sending ---------------------------------------------------------------

    async def send(self, data: bytes) -> bool:
        ws = self.ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_frame(data, aiohttp.WSMsgType.TEXT)
        except (ConnectionError, aiohttp.ClientError):
            return False
        return True

    async def echo_marks(self, names: list[str], *, flushed: bool = False) -> None:
        assert self.side is not None
        for name in names:
            if await self.send(self.side.mark(name)):
                self.result.marks_echoed += 1
                self.result.marks_flushed += flushed
                self.event("mark_sent_back", name=name, flushed=flushed)

    # -- the call ----------------------------------------------------------------

    async def run(self) -> SimResult:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            stream = await self.webhook(http)
            if stream is None:
                self.event("twiml_without_stream")
                return self.result
            stream_url, parameters = stream
            await self.stream(http, stream_url, parameters)
        self.finish()
        return self.result

    async def webhook(self, http: aiohttp.ClientSession) -> tuple[str, dict[str, str]] | None:
        o = self.o
        url = o.url.rstrip("/") + o.voice_path
        signed_url = (o.public_url or o.url).rstrip("/") + o.voice_path
        params = _voice_params(o, self.result.call_sid, self.account_sid)
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = self.signer.sign(signed_url, params)
        try:
            async with http.post(url, data=params, headers=headers) as resp:
                body = await resp.text()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise SimError(f"voice webhook {url} failed: {exc}") from exc
        if status != 200:
            raise SimError(f"voice webhook {url} answered {status}: {body[:200]}")
        self.result.twiml = body
        return parse_stream_twiml(body)

    async def stream(
        self, http: aiohttp.ClientSession, stream_url: str, parameters: dict[str, str]
    ) -> None:
        connect_url = stream_connect_url(self.o.url, stream_url)
        headers = {"User-Agent": "Twilio.TmeWs/1.0"}
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = self.signer.sign(stream_url, {})
        try:
            ws = await http.ws_connect(
                connect_url, headers=headers, autoping=True, max_msg_size=1 << 22
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise SimError(f"media stream {connect_url} refused: {exc}") from exc
        self.ws = ws
        stream_sid = _random_sid("MZ")
        self.result.stream_sid = stream_sid
        self.side = TwilioSide(stream_sid, self.result.call_sid, self.account_sid, parameters)
        self.t0 = self.loop.time()
        receiver = asyncio.create_task(self.receive())
        try:
            await self.send(self.side.connected())
            await self.send(self.side.start())
            self.event("sent_start", stream_sid=stream_sid, parameters=parameters)
            await self.talk()
        finally:
            self.hanging_up = True
            if not ws.closed:
                if not self.result.closed_by_server:
                    self.playout.advance(self.now())
                    await self.send(self.side.stop())
                    self.event("stop")
                with contextlib.suppress(Exception):
                    await ws.close()
            done, _ = await asyncio.wait({receiver}, timeout=5.0)
            if not done:  # the server never answered our close
                receiver.cancel()
                await asyncio.wait({receiver})
            elif receiver.exception() is not None:
                raise receiver.exception()  # type: ignore[misc]

    async def talk(self) -> None:
        """The caller's side, one 20 ms frame per tick on absolute deadlines."""
        o, side, playout = self.o, self.side, self.playout
        assert side is not None
        audio = o.audio or b""
        pos = 0
        digits = list(o.dtmf)
        phase = "greeting"
        phase_since = 0.0
        responses_before_answer = 0
        next_digit_at = 0.0
        tick = 0
        while not self.result.closed_by_server:
            tick += 1
            deadline = self.t0 + tick * FRAME_S
            delay = deadline - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > _MAX_LAG_FRAMES * FRAME_S:  # fell far behind: skip, don't burst
                tick = int((self.loop.time() - self.t0) / FRAME_S)
            now = self.now()
            if now >= o.hangup_after_s:
                self.event("hangup_timeout")
                return
            await self.echo_marks(playout.advance(now))

            frame = ulaw.SILENT_FRAME
            if phase == "speaking":
                if pos == 0:
                    self.event("caller_speech_start")
                frame = audio[pos : pos + ulaw.FRAME_BYTES]
                pos += ulaw.FRAME_BYTES
                if len(frame) < ulaw.FRAME_BYTES:
                    frame = frame + ulaw.SILENT_FRAME[len(frame) :]
            if not await self.send(side.media(frame, (tick - 1) * ulaw.FRAME_MS)):
                return

            if phase == "greeting":
                idle = playout.idle_for(now)
                greeted = playout.responses > 0 and idle >= o.quiet_s
                if o.barge_in_after_s is not None and self.agent_started_at is not None:
                    greeted = now - self.agent_started_at >= o.barge_in_after_s
                if greeted or (playout.responses == 0 and now >= o.wait_for_agent_s):
                    phase, phase_since = "speaking", now
            if phase == "speaking" and pos >= len(audio):
                if audio:
                    self.event("caller_speech_end")
                phase, phase_since = "dtmf", now
                responses_before_answer = playout.responses
                next_digit_at = now
            if phase == "dtmf":
                if digits and now >= next_digit_at:
                    digit = digits.pop(0)
                    if digit != "w":  # Twilio's "wait" pseudo-digit: a pause only
                        await self.send(side.dtmf(digit))
                        self.event("dtmf_sent", digit=digit)
                    next_digit_at = now + o.dtmf_interval_s
                elif not digits and now >= next_digit_at:
                    phase, phase_since = "after", now
            if phase == "after" and not playout.busy:
                answered = playout.responses > responses_before_answer
                if answered and playout.idle_for(now) >= o.quiet_s:
                    return
                if not answered and now - phase_since >= o.wait_for_agent_s:
                    self.event("no_answer")
                    return

    async def receive(self) -> None:
        ws, playout = self.ws, self.playout
        assert ws is not None
        stream_sid = self.result.stream_sid
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            m = parse_server(msg.data)
            now = self.now()
            if isinstance(m, ServerError):
                self.result.protocol_errors += 1
                self.event("server_protocol_error", kind=m.kind, detail=m.detail[:200])
                continue
            if m.stream_sid != stream_sid:
                self.result.protocol_errors += 1
                self.event(
                    "server_protocol_error", kind="wrong_stream_sid", detail=m.stream_sid[:64]
                )
                continue
            if msg.type is aiohttp.WSMsgType.BINARY:  # Twilio expects text frames
                self.result.protocol_errors += 1
                self.event("server_protocol_error", kind="binary_frame", detail="")
            if isinstance(m, ServerMedia):
                due, kind = playout.media(now, m.audio)
                await self.echo_marks(due)
                if kind == "response_start":
                    if self.agent_started_at is None:
                        self.agent_started_at = now
                    self.event("agent_audio_start")
                elif kind == "underrun":
                    self.event("underrun")
            elif isinstance(m, ServerMark):
                await self.echo_marks(playout.mark(now, m.name))
            elif isinstance(m, ServerClear):
                self.result.clears += 1
                due, flushed = playout.clear(now)
                self.event("clear_received", flushed_marks=len(flushed))
                await self.echo_marks(due)
                await self.echo_marks(flushed, flushed=True)
        if not self.hanging_up:
            self.result.closed_by_server = True
            self.event("server_closed")

    def finish(self) -> None:
        p, r = self.playout, self.result
        r.agent_audio_ms = p.played_bytes * 1000 // _SAMPLES_PER_S
        r.underruns = p.underruns
        r.responses = p.responses
        if self.o.record is not None:
            with wave.open(self.o.record, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(_SAMPLES_PER_S)
                w.writeframes(ulaw.decode(bytes(p.played)))


async def sim_call(options: SimOptions) -> SimResult:
    """Place one simulated Twilio call; raises SimError if it cannot be placed."""
    return await _Call(options).run()
