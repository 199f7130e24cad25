"""`leadline bench calls`: N concurrent simulated Twilio calls, one JSON line of figures.

A load figure is only worth something if the generator is not the thing being
measured, so the generator is built to be much cheaper per frame than the
server: caller audio is pre-rendered once (eSpeak speech, trimmed, each 20 ms
frame already base64) and a media message is one `%` format of three counters
into a per-call template; ONE task sends every call's frame on a shared 20 ms
absolute-deadline tick; replies are read in picows protocol callbacks (no task
or reader coroutine per connection, no per-frame timer). It also measures
itself (CPU, how late its own frames left) and says when its figures are not
to be trusted (`generator_bottleneck`, `valid`).

Each call behaves like a person on the phone, on a loop: wait for the agent,
talk over the first second of every other response (barge-in), stay silent for
the end of turn, let the next response play out fully, say a whole sentence,
and so on. Agent audio is played through `sim.Playout`, the model of Twilio's
outbound buffer, so marks are echoed only when their audio would have played
(and at once on `clear`), exactly as Twilio does, and underruns are counted
where a caller would hear them.

`CallerScript` is the sans-I/O core (caller behaviour plus latency samples on
an injected clock); `bench_calls` is the asyncio shell; `run_bench` the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import enum
import math
import os
import resource
import secrets
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import msgspec
import picows

from media.codecs import ulaw
from ops.dev.sim import Playout, parse_stream_twiml, stream_connect_url
from ops.dev.twilio_side import (
    TWILIO_MEDIA,
    ServerClear,
    ServerError,
    ServerMark,
    ServerMedia,
    TwilioSide,
    parse_server,
)
from telephony.twilio.signature import SIGNATURE_HEADER, SignatureChecker

FRAME_S: Final = ulaw.FRAME_MS / 1000
# Sub-ticks per 20 ms frame period: calls are spread over them (see `_Run.tick`).
SLOTS: Final = 4
SLOT_S: Final = FRAME_S / SLOTS
# Behind by more than this many frames, the tick skips ahead (as Twilio does)
# instead of bursting a backlog at the server.
MAX_LAG_FRAMES: Final = 10
# The generator is "the bottleneck" above this much CPU, or when its p99
# frame send lag is above this many ms: then its figures describe itself.
GENERATOR_MAX_CPU: Final = 0.85
GENERATOR_MAX_SEND_LAG_MS: Final = 20.0
# Frames quieter than this (PCM16 RMS) at either end of an utterance are cut,
# so "speech onset" and "speech end" are the first and last voiced frame.
SPEECH_EDGE_RMS: Final = 300
# Most calls one generator process drives (file descriptors, sanity).
MAX_CALLS: Final = 5000
HTTP_TIMEOUT_S: Final = 5.0
HANDSHAKE_TIMEOUT_S: Final = 5.0
HANGUP_TIMEOUT_S: Final = 5.0
# Calls that are still connecting this long after the ramp are given up on.
CONNECT_GRACE_S: Final = 2 * (HTTP_TIMEOUT_S + HANDSHAKE_TIMEOUT_S)
MAX_SERVER_MESSAGE: Final = 1 << 20

TURN_TEXT: Final = "Hello, I would like to book an appointment for Tuesday afternoon."
BARGE_TEXT: Final = "Sorry to interrupt, I have a quick question about my booking."


class BenchError(RuntimeError):
    """The bench could not run at all (server unreachable, /health unreadable)."""


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    url: str = "http://127.0.0.1:8080"
    calls: int = 50
    seconds: float = 30.0
    ramp_seconds: float = 5.0
    auth_token: str = ""  # sign webhook and upgrade like Twilio; "" sends no signature
    # Talk over an agent response once it has played this long.
    barge_after_s: float = 1.0
    # Agent silence after a response that counts as "it finished talking".
    quiet_s: float = 0.8
    # No agent audio this long after the caller spoke: speak again (counted).
    wait_for_agent_s: float = 5.0
    turn_text: str = TURN_TEXT
    barge_text: str = BARGE_TEXT
    voice_path: str = "/twilio/voice"
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"

    def __post_init__(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise ValueError(f"calls must be between 1 and {MAX_CALLS}")
        if not 0 < self.seconds <= 3600:
            raise ValueError("seconds must be positive and at most 3600")
        if not 0 <= self.ramp_seconds <= 600:
            raise ValueError("ramp_seconds must be between 0 and 600")
        if self.barge_after_s < 0 or self.quiet_s < 0 or self.wait_for_agent_s <= 0:
            raise ValueError("barge_after_s/quiet_s must be >= 0, wait_for_agent_s > 0")
        if not self.turn_text.strip() or not self.barge_text.strip():
            raise ValueError("turn_text and barge_text must say something")


# ---------------------------------------------------------------------------
# Pre-rendered caller audio
# ---------------------------------------------------------------------------


def b64_frames(ulaw_audio: bytes) -> tuple[bytes, ...]:
    """Voiced span of `ulaw_audio` as base64 20 ms frames (quiet edges cut, tail padded).

    Rendered once per run and shared by every call: the send path then never
    encodes audio. Raises ValueError if nothing in it is voiced.
    """
    n = ulaw.FRAME_BYTES
    chunks = [ulaw_audio[i : i + n] for i in range(0, len(ulaw_audio), n)]
    if chunks and len(chunks[-1]) < n:
        chunks[-1] = chunks[-1] + ulaw.SILENT_FRAME[len(chunks[-1]) :]
    voiced = [i for i, c in enumerate(chunks) if ulaw.rms(ulaw.decode(c)) > SPEECH_EDGE_RMS]
    if not voiced:
        raise ValueError("the utterance has no voiced frame")
    return tuple(
        binascii.b2a_base64(c, newline=False) for c in chunks[voiced[0] : voiced[-1] + 1]
    )


SILENT_B64: Final = binascii.b2a_base64(ulaw.SILENT_FRAME, newline=False)


# ---------------------------------------------------------------------------
# The caller, sans I/O
# ---------------------------------------------------------------------------


class Phase(enum.Enum):
    AWAIT_AGENT = "await_agent"  # silent until a response starts
    BARGE_WAIT = "barge_wait"  # response playing; about to talk over it
    LISTENING = "listening"  # letting a response play out
    SPEAKING = "speaking"


class CallerScript:
    """One caller's behaviour and the latencies it observes, on an injected clock.

    Every other agent response (the greeting first) is talked over after
    `barge_after_s`; the caller keeps talking to the end of its sentence and
    then stays silent. The responses in between are heard to the end, then
    the caller says a full sentence. Samples are `(t, ms)` pairs so the shell
    can keep only those inside its measuring window:

    - `barge_in`: first voiced frame sent → `clear` received;
    - `end_of_turn`: last voiced frame sent → first frame of the next response
      received, minus the server's `stop_ms` (the silence it must wait by
      design), so what is left is VAD lag + pipeline + network.

    `payload(now)` is called once per 20 ms tick and returns the base64
    frame to send; the `agent_*` methods return mark names due for echo.
    """

    __slots__ = (
        "_barge",
        "_barge_next",
        "_measure_eot",
        "_onset_at",
        "_pos",
        "_response_at",
        "_since",
        "_speech",
        "_speech_end_at",
        "_stop_ms",
        "_turn",
        "_waiting_clear",
        "barge_after_s",
        "barge_in",
        "barge_missed",
        "clears",
        "end_of_turn",
        "no_reply",
        "phase",
        "playout",
        "quiet_s",
        "wait_for_agent_s",
    )

    def __init__(
        self,
        turn: Sequence[bytes],
        barge: Sequence[bytes],
        *,
        stop_ms: float,
        barge_after_s: float = 1.0,
        quiet_s: float = 0.8,
        wait_for_agent_s: float = 5.0,
        start: float = 0.0,
        response_gap_ms: int = 400,
    ) -> None:
        if not turn or not barge:
            raise ValueError("utterances must not be empty")
        self._turn = turn
        self._barge = barge
        self._stop_ms = stop_ms
        self.barge_after_s = barge_after_s
        self.quiet_s = quiet_s
        self.wait_for_agent_s = wait_for_agent_s
        self.playout = Playout(response_gap_ms=response_gap_ms, keep_audio=False)
        self.playout.advance(start)
        self.phase = Phase.AWAIT_AGENT
        self._since = start
        self._barge_next = True  # the greeting is talked over
        self._speech: Sequence[bytes] = turn
        self._pos = 0
        self._onset_at = 0.0
        self._speech_end_at: float | None = None
        self._measure_eot = False
        self._waiting_clear = False
        self._response_at = 0.0
        self.barge_in: list[tuple[float, float]] = []
        self.end_of_turn: list[tuple[float, float]] = []
        self.barge_missed = 0  # talked over a response that was never cleared
        self.no_reply = 0  # spoke and no response came within wait_for_agent_s
        self.clears = 0

    # -- the caller's side, once per tick ---------------------------------------

    def _say(self, speech: Sequence[bytes], now: float, *, barge: bool) -> None:
        self.phase = Phase.SPEAKING
        self._speech = speech
        self._pos = 0
        self._waiting_clear = barge
        self._since = now

    def payload(self, now: float) -> bytes:
        phase = self.phase
        if phase is Phase.SPEAKING:
            return self._next_speech(now)
        if phase is Phase.LISTENING:
            if not self.playout.busy and self.playout.idle_for(now) >= self.quiet_s:
                self._say(self._turn, now, barge=False)
                return self._next_speech(now)
        elif phase is Phase.BARGE_WAIT:
            if now - self._response_at >= self.barge_after_s:
                if self.playout.busy:
                    self._say(self._barge, now, barge=True)
                    return self._next_speech(now)
                self.phase = Phase.LISTENING  # it was shorter than that: hear it out
        elif now - self._since >= self.wait_for_agent_s:  # AWAIT_AGENT, nothing came
            self.no_reply += 1
            self._say(self._turn, now, barge=False)
            return self._next_speech(now)
        return SILENT_B64

    def _next_speech(self, now: float) -> bytes:
        speech, pos = self._speech, self._pos
        if pos == 0:  # the frame sent now holds the 20 ms just before it
            self._onset_at = now - FRAME_S
        frame = speech[pos]
        pos += 1
        self._pos = pos
        if pos == len(speech):
            self._speech_end_at = now
            self._measure_eot = True
            if self._waiting_clear:  # sentence over and still not cut off
                self._waiting_clear = False
                self.barge_missed += 1
                self._measure_eot = False  # the next audio may be the old response
            self.phase = Phase.AWAIT_AGENT
            self._since = now
        return frame

    # -- the agent's side, as messages arrive -------------------------------------

    def agent_media(self, now: float, audio: bytes) -> list[str]:
        due, kind = self.playout.media(now, audio)
        if kind == "response_start" and self.phase is Phase.AWAIT_AGENT:
            end = self._speech_end_at
            if self._measure_eot and end is not None:
                self.end_of_turn.append((now, (now - end) * 1000.0 - self._stop_ms))
            self._measure_eot = False
            self._response_at = now
            self.phase = Phase.BARGE_WAIT if self._barge_next else Phase.LISTENING
            self._barge_next = not self._barge_next
        return due

    def agent_mark(self, now: float, name: str) -> list[str]:
        return self.playout.mark(now, name)

    def agent_clear(self, now: float) -> list[str]:
        self.clears += 1
        if self._waiting_clear:
            self._waiting_clear = False
            self.barge_in.append((now, (now - self._onset_at) * 1000.0))
        due, flushed = self.playout.clear(now)
        return due + flushed

    def advance(self, now: float) -> list[str]:
        return self.playout.advance(now)


# ---------------------------------------------------------------------------
# The asyncio shell
# ---------------------------------------------------------------------------


class _BenchSide(TwilioSide):
    """`TwilioSide` that takes the payload already in base64 (rendered once per run)."""

    __slots__ = ()

    def media_b64(self, payload_b64: bytes) -> bytes:
        """One 20 ms inbound media message, numbered exactly as `TwilioSide.media` does."""
        self._seq += 1
        self._chunk += 1
        ts = self._ts
        self._ts = ts + ulaw.FRAME_MS
        return TWILIO_MEDIA % (self._seq, self._chunk, ts, payload_b64, self._media_tail)


_TEXT = picows.WSMsgType.TEXT
_CLOSE = picows.WSMsgType.CLOSE
_PING_PONG = (picows.WSMsgType.PING, picows.WSMsgType.PONG)
_MEDIA_TAIL = b'"}}'


class _Call(picows.WSListener):  # type: ignore[misc]
    """One simulated call's connection: picows callbacks in, sync sends out."""

    def __init__(self, index: int, script: CallerScript, side: _BenchSide) -> None:
        super().__init__()
        self.index = index
        self.script = script
        self.side = side
        self.transport: picows.WSTransport | None = None
        sid = msgspec.json.encode(side.stream_sid)
        # What our server's `Outbound.media` sends; anything else takes the slow path.
        self._media_prefix = b'{"event":"media","streamSid":' + sid + b',"media":{"payload":"'
        self._prefix_len = len(self._media_prefix)
        self.live = False
        self.hanging_up = False
        self.dropped: str | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.marks_echoed = 0
        self.protocol_errors = 0

    # picows callbacks ----------------------------------------------------------

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind == _TEXT and frame.fin:
            self.receive(frame.get_payload_as_bytes(), time.monotonic())
        elif kind == _CLOSE:
            if not self.hanging_up:
                self.drop("server closed the stream")
            self.live = False
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif kind not in _PING_PONG:  # binary or fragmented: Twilio would reject it
            self.protocol_errors += 1

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if not self.hanging_up:
            self.drop("connection lost")
        self.live = False

    # in ------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """One server message; the media fast path skips the JSON decoder."""
        if data.startswith(self._media_prefix) and data.endswith(_MEDIA_TAIL):
            try:
                audio = binascii.a2b_base64(
                    memoryview(data)[self._prefix_len : -3], strict_mode=True
                )
            except ValueError:
                self.protocol_errors += 1
                return
            # One message may carry several frames (the server sends chunks).
            self.frames_received += len(audio) // ulaw.FRAME_BYTES
            due = self.script.agent_media(now, audio)
            if due:
                self.echo(due)
            return
        try:
            msg = parse_server(data, MAX_SERVER_MESSAGE)
        except UnicodeDecodeError:  # msgspec raises it for bad UTF-8 inside a string
            self.protocol_errors += 1
            return
        if type(msg) is ServerError or msg.stream_sid != self.side.stream_sid:  # type: ignore[union-attr]
            self.protocol_errors += 1
            return
        if type(msg) is ServerMedia:
            self.frames_received += len(msg.audio) // ulaw.FRAME_BYTES
            due = self.script.agent_media(now, msg.audio)
        elif type(msg) is ServerMark:
            due = self.script.agent_mark(now, msg.name)
        else:
            assert type(msg) is ServerClear
            due = self.script.agent_clear(now)
        if due:
            self.echo(due)

    # out -----------------------------------------------------------------------

    def echo(self, names: list[str]) -> None:
        transport = self.transport
        if transport is None or not self.live:
            return
        side = self.side
        for name in names:
            transport.send(_TEXT, side.mark(name))
        self.marks_echoed += len(names)

    def tick(self, now: float) -> None:
        """This call's 20 ms: release marks whose audio played, send one frame."""
        script = self.script
        due = script.advance(now)
        if due:
            self.echo(due)
        self.transport.send(_TEXT, self.side.media_b64(script.payload(now)))  # type: ignore[union-attr]
        self.frames_sent += 1

    def drop(self, reason: str) -> None:
        if self.dropped is None:
            self.dropped = reason

    async def hang_up(self) -> None:
        """Send `stop`, close, and wait (bounded) for the server to close too."""
        self.hanging_up = True
        transport = self.transport
        if transport is None:
            return
        if not transport.is_disconnected:
            if self.live:
                transport.send(_TEXT, self.side.stop())
            transport.send_close(picows.WSCloseCode.OK)
        self.live = False
        try:
            await asyncio.wait_for(transport.wait_disconnected(), HANGUP_TIMEOUT_S)
        except Exception:  # timeout, or a callback raised: the call is over either way
            transport.disconnect(False)


def _pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (0–100), None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[i], 3)


def _cpu_seconds() -> tuple[float, float]:
    """This process's (user, system) CPU seconds."""
    t = os.times()
    return t.user, t.system


def _split(user: float | None, system: float | None, wall: float, calls: int
           ) -> dict[str, float | None]:
    """User and kernel CPU over `wall` seconds: cores, and CPU-ms per call per second.

    The kernel's share is reported apart because at hundreds of calls most of
    a core goes to socket sends and receives, which `user` alone hides.
    """
    if user is None or system is None:
        return {"user_cores": None, "system_cores": None,
                "user_ms_per_call_s": None, "system_ms_per_call_s": None}
    return {
        "user_cores": round(user / wall, 3),
        "system_cores": round(system / wall, 3),
        "user_ms_per_call_s": round(user / wall / calls * 1000, 3),
        "system_ms_per_call_s": round(system / wall / calls * 1000, 3),
    }


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass
class _Snapshot:
    at: float
    cpu: tuple[float, float]  # this process's (user, system) seconds
    frames_sent: int
    frames_received: int
    underruns: int
    health: dict[str, Any]


@dataclass
class _Run:
    """State of one bench run: the calls, the tick, the window."""

    options: BenchOptions
    turn: tuple[bytes, ...]
    barge: tuple[bytes, ...]
    stop_ms: float
    t0: float
    signer: SignatureChecker | None
    calls: list[_Call] = field(default_factory=list)
    slots: list[list[_Call]] = field(default_factory=lambda: [[] for _ in range(SLOTS)])
    failed: dict[str, int] = field(default_factory=dict)
    send_lag_ms: array[float] = field(default_factory=lambda: array("d"))
    window: tuple[float, float] = (math.inf, math.inf)
    stopping: bool = False
    ticks_skipped: int = 0

    # -- setup of one call -----------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1

    async def place(self, index: int, http: aiohttp.ClientSession) -> None:
        """Webhook, TwiML, signed upgrade, `connected` + `start`; then the tick drives it."""
        o = self.options
        call_sid = "CA" + secrets.token_hex(16)
        account_sid = "AC" + secrets.token_hex(16)
        url = o.url.rstrip("/") + o.voice_path
        params = {
            "AccountSid": account_sid, "ApiVersion": "2010-04-01", "CallSid": call_sid,
            "CallStatus": "ringing", "Direction": "inbound", "From": o.from_number,
            "To": o.to_number, "Caller": o.from_number, "Called": o.to_number,
        }
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = self.signer.sign(url, params)
        try:
            async with http.post(url, data=params, headers=headers) as resp:
                body = await resp.text()
                if resp.status != 200:
                    self._fail(f"webhook {resp.status}")
                    return
            stream = parse_stream_twiml(body)
        except Exception as exc:
            self._fail(f"webhook {type(exc).__name__}")
            return
        if stream is None:  # e.g. <Say>busy</Say><Hangup/>
            self._fail("twiml without stream")
            return
        stream_url, parameters = stream
        ws_headers = {"User-Agent": "Twilio.TmeWs/1.0"}
        if self.signer is not None:
            ws_headers[SIGNATURE_HEADER] = self.signer.sign(stream_url, {})
        side = _BenchSide("MZ" + secrets.token_hex(16), call_sid, account_sid, parameters)
        script = CallerScript(
            self.turn, self.barge, stop_ms=self.stop_ms, barge_after_s=o.barge_after_s,
            quiet_s=o.quiet_s, wait_for_agent_s=o.wait_for_agent_s, start=time.monotonic(),
        )
        call = _Call(index, script, side)
        try:
            transport, _ = await picows.ws_connect(
                lambda: call,
                stream_connect_url(o.url, stream_url),
                extra_headers=ws_headers,
                websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                max_frame_size=MAX_SERVER_MESSAGE,
                logger_name="bench",
            )
        except Exception as exc:
            self._fail(f"upgrade {type(exc).__name__}")
            return
        self.calls.append(call)
        if self.stopping or transport.is_disconnected:
            call.drop("closed before start")
            return
        transport.send(_TEXT, side.connected())
        transport.send(_TEXT, side.start())
        call.script.playout.advance(time.monotonic())
        call.live = True
        self.slots[index % SLOTS].append(call)

    async def _place_counted(self, index: int, http: aiohttp.ClientSession) -> None:
        try:
            await self.place(index, http)
        except Exception as exc:  # a bug here must show in the figures, not vanish
            self._fail(f"bench {type(exc).__name__}: {exc}"[:120])

    async def ramp(self, http: aiohttp.ClientSession) -> None:
        """Start calls evenly over ramp_seconds; wait for every attempt to finish."""
        o = self.options
        spacing = o.ramp_seconds / o.calls
        pending: set[asyncio.Task[None]] = set()
        for i in range(o.calls):
            delay = self.t0 + i * spacing - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.add(asyncio.create_task(self._place_counted(i, http)))
        if pending:
            await asyncio.wait(pending)

    # -- the one sender ----------------------------------------------------------

    async def tick(self) -> None:
        """Every live call's frame on absolute deadlines; records how late each batch left.

        The 20 ms period is cut into `SLOTS` sub-ticks and each call belongs to
        one, so every call still sends one frame per 20 ms on its own fixed
        phase, but the frames of N calls leave in SLOTS smaller bursts, as the
        independent clocks of real calls would spread them.
        """
        t0 = self.t0
        k = 0
        lag = self.send_lag_ms
        slots = self.slots
        while not self.stopping:
            k += 1
            deadline = t0 + k * SLOT_S
            delay = deadline - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > MAX_LAG_FRAMES * FRAME_S:  # fell far behind: skip, don't burst
                behind = int((time.monotonic() - t0) / SLOT_S)
                self.ticks_skipped += (behind - k) // SLOTS
                k = behind
                deadline = t0 + k * SLOT_S
            now = time.monotonic()
            slot = k % SLOTS
            calls = slots[slot]
            dead = False
            for call in calls:
                if call.live:
                    call.tick(now)
                else:
                    dead = True
            if dead:
                slots[slot] = [c for c in calls if c.live]
            done = time.monotonic()
            start, end = self.window
            if start <= now < end:
                lag.append((done - deadline) * 1000.0)

    # -- figures -----------------------------------------------------------------

    def totals(self) -> tuple[int, int, int]:
        sent = received = underruns = 0
        for c in self.calls:
            sent += c.frames_sent
            received += c.frames_received
            underruns += c.script.playout.underruns
        return sent, received, underruns


async def _health(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    url = base.rstrip("/") + "/health"
    try:
        async with http.get(url) as resp:
            if resp.status != 200:
                raise BenchError(f"{url} answered {resp.status}")
            return msgspec.json.decode(await resp.read())  # type: ignore[no-any-return]
    except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
        raise BenchError(f"cannot read {url}: {type(exc).__name__}: {exc}") from exc


async def _snapshot(run: _Run, http: aiohttp.ClientSession) -> _Snapshot:
    at, cpu = time.monotonic(), _cpu_seconds()
    sent, received, underruns = run.totals()
    return _Snapshot(at, cpu, sent, received, underruns, await _health(http, run.options.url))


def _render(options: BenchOptions) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    from agents.tts import synthesize_ulaw

    return b64_frames(synthesize_ulaw(options.turn_text)), b64_frames(
        synthesize_ulaw(options.barge_text)
    )


async def bench_calls(options: BenchOptions) -> dict[str, Any]:
    """Run the bench; the figures as a JSON-ready dict. Raises BenchError if it cannot run."""
    _raise_fd_limit(2 * options.calls + 256)
    turn, barge = await asyncio.to_thread(_render, options)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        before = await _health(http, options.url)
        stop_ms = float(before["config"]["vad"]["stop_ms"])
        signer = SignatureChecker(options.auth_token) if options.auth_token else None
        run = _Run(options, turn, barge, stop_ms, time.monotonic(), signer)
        ticker = asyncio.create_task(run.tick())
        ramp = asyncio.create_task(run.ramp(http))
        try:
            await asyncio.sleep(max(0.0, run.t0 + options.ramp_seconds - time.monotonic()))
            # Measure once every call is up (or has failed), however long that took.
            await asyncio.wait({ramp}, timeout=CONNECT_GRACE_S)
            start = await _snapshot(run, http)
            run.window = (start.at, start.at + options.seconds)
            await asyncio.sleep(max(0.0, start.at + options.seconds - time.monotonic()))
            end = await _snapshot(run, http)
            run.window = (start.at, end.at)
        finally:
            run.stopping = True
            ramp.cancel()
            await asyncio.gather(ticker, ramp, return_exceptions=True)
            await asyncio.gather(*(c.hang_up() for c in run.calls), return_exceptions=True)
    if not ticker.cancelled() and ticker.exception() is not None:
        raise ticker.exception()  # type: ignore[misc]  # a bug in the sender: no figures
    return _figures(run, before, start, end)


def _figures(run: _Run, before: dict[str, Any], start: _Snapshot, end: _Snapshot
             ) -> dict[str, Any]:
    o = run.options
    lo, hi = run.window
    wall = end.at - start.at
    h0, h1 = start.health, end.health
    server_wall = max(1e-9, h1["uptimeSeconds"] - h0["uptimeSeconds"])
    barge = [ms for c in run.calls for t, ms in c.script.barge_in if lo <= t < hi]
    eot = [ms for c in run.calls for t, ms in c.script.end_of_turn if lo <= t < hi]
    drops = dict(run.failed)
    for c in run.calls:
        if c.dropped is not None:
            drops[c.dropped] = drops.get(c.dropped, 0) + 1
    dropped = sum(drops.values())
    gen_user, gen_system = (end.cpu[0] - start.cpu[0]), (end.cpu[1] - start.cpu[1])
    gen_cpu = (gen_user + gen_system) / wall
    p0, p1 = h0["process"], h1["process"]
    if "userSeconds" in p0 and "userSeconds" in p1:
        srv_user: float | None = p1["userSeconds"] - p0["userSeconds"]
        srv_system: float | None = p1["systemSeconds"] - p0["systemSeconds"]
    else:  # a server from before the split
        srv_user = srv_system = None
    send_lag_p99 = _pct(run.send_lag_ms, 99)
    bottleneck = gen_cpu > GENERATOR_MAX_CPU or (
        send_lag_p99 is not None and send_lag_p99 > GENERATOR_MAX_SEND_LAG_MS
    )
    rss_before, rss = before["memory"]["rss"], h1["memory"]["rss"]
    media0, media1 = h0["media"], h1["media"]
    return {
        "calls": o.calls,
        "seconds": round(wall, 3),
        "ramp_seconds": o.ramp_seconds,
        "calls_connected": len(run.calls),
        "frames_in": media1["framesIn"] - media0["framesIn"],
        "frames_out": media1["framesOut"] - media0["framesOut"],
        "frames_sent": end.frames_sent - start.frames_sent,
        "frames_received": end.frames_received - start.frames_received,
        "server_lag_ms": dict(media1["tickLagMs"]),
        "barge_in_ms": {"p50": _pct(barge, 50), "p95": _pct(barge, 95), "n": len(barge)},
        "end_of_turn_ms": {"p50": _pct(eot, 50), "p99": _pct(eot, 99), "n": len(eot)},
        "underruns": end.underruns - start.underruns,
        "dropped_calls": dropped,
        "drop_reasons": drops,
        "barge_in_missed": sum(c.script.barge_missed for c in run.calls),
        "no_reply": sum(c.script.no_reply for c in run.calls),
        "clears": sum(c.script.clears for c in run.calls),
        "marks_echoed": sum(c.marks_echoed for c in run.calls),
        "protocol_errors": sum(c.protocol_errors for c in run.calls),
        "server_cpu_cores": round(
            (h1["process"]["cpuSeconds"] - h0["process"]["cpuSeconds"]) / server_wall, 3
        ),
        "server_cpu": _split(srv_user, srv_system, server_wall, max(1, len(run.calls))),
        "server_rss_mb": round(rss / 2**20, 1),
        "server_rss_per_call_kb": round((rss - rss_before) / o.calls / 1024, 1),
        "generator_cpu_cores": round(gen_cpu, 3),
        "generator_cpu": _split(gen_user, gen_system, wall, max(1, len(run.calls))),
        "generator_send_lag_ms": {"p50": _pct(run.send_lag_ms, 50), "p99": send_lag_p99},
        "generator_ticks_skipped": run.ticks_skipped,
        "generator_bottleneck": bottleneck,
        "valid": not bottleneck and dropped == 0,
        "vad": media1["vadEngine"],
        "brain": (h1.get("brain") or {}).get("kind"),
        "server_pid": h1["process"]["pid"],
    }


def resolve_auth_token(explicit: str | None, config_path: str | None = None) -> str:
    """The token to sign with, found the way `leadline sim call` finds it.

    `--auth-token` wins; then the config (file if given, then
    `LEADLINE_TWILIO_AUTH_TOKEN` / `TWILIO_AUTH_TOKEN`), so a bench against a
    server started from the same environment is signed without repeating
    the secret on the command line (an unsigned bench gets 403 on every call).
    """
    if explicit is not None:
        return explicit
    from ops import config

    try:
        return config.load(config_path).twilio.auth_token
    except config.ConfigError:
        return os.environ.get("LEADLINE_TWILIO_AUTH_TOKEN") or os.environ.get(
            "TWILIO_AUTH_TOKEN", ""
        )


def run_bench(args: argparse.Namespace) -> int:
    """CLI entry: one JSON line on stdout; errors on stderr (2: bad arguments, 1: no run)."""
    import uvloop

    try:
        options = BenchOptions(
            url=args.url,
            calls=args.calls,
            seconds=args.seconds,
            ramp_seconds=args.ramp_seconds,
            auth_token=resolve_auth_token(args.auth_token, getattr(args, "config", None)),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bound = options.ramp_seconds + options.seconds + CONNECT_GRACE_S + 4 * HTTP_TIMEOUT_S + 30

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(bench_calls(options), bound)

    try:
        figures = uvloop.run(bounded())
    except (BenchError, TimeoutError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(msgspec.json.encode(figures).decode() + "\n")
    sys.stdout.flush()
    return 0
