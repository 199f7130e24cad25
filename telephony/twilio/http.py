"""aiohttp handlers for Twilio: the voice webhook, the Media Streams socket, stream status.

Thin shells: signatures come from `signature`, TwiML from `twiml`, the stream
protocol from `streams`; calls from `telephony.calls`. Inbound messages are
dispatched synchronously as aiohttp parses them (`fastws`), with a plain
`async for` loop as the fallback; outbound frames leave through a non-blocking
`FrameWriter`, batched to one write per call per tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from agents.brain import CallContext
from agents.business.flow import CallFlow
from agents.business.registry import BusinessRegistry, no_voice_message
from agents.business.settings import BusinessSettings
from telephony.call import Call
from telephony.calls import CallManager
from telephony.settings import TwilioSettings
from telephony.twilio import streams
from telephony.twilio.leg import MediaStreamLeg
from telephony.twilio.signature import SignatureChecker
from telephony.twilio.twiml import connect_stream_twiml, say_hangup_twiml
from telephony.ws import fastws
from telephony.ws.frame import FrameWriter

log = logging.getLogger("leadline.twilio")

MEDIA_PATH = "/twilio/media"
VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/stream-status"


# How a `fastws.MessagePump` ends by itself; anything else is a hang-up reason.
_PUMP_ENDS = frozenset({"peer closed", "eof", "error", "handler error", "stopped"})


class TwilioStats:
    """Process-wide counters, read by the metrics collector (plain ints: cheap)."""

    def __init__(self) -> None:
        self.protocol_errors: dict[str, int] = dict.fromkeys(streams.ERROR_KINDS, 0)
        self.forged_signatures = 0
        self.slow_peers = 0
        self.webhooks = 0
        self.streams_opened = 0
        self.rejected_busy = 0
        # Calls to a business whose plan has no voice agent (told politely, owner texted).
        self.rejected_no_voice = 0


class _MediaStreamConnection:
    """What one Media Stream socket has seen, and the dispatch of its messages.

    `handle` is called once per inbound message, synchronously, by either
    path (the fast pump or the `async for` loop); False means stop reading.
    """

    __slots__ = ("call", "logged", "protocol", "reason", "routes", "stop", "writer", "ws")

    def __init__(self, routes: TwilioRoutes, ws: web.WebSocketResponse, writer: FrameWriter,
                 protocol: streams.StreamProtocol) -> None:
        self.routes = routes
        self.ws = ws
        self.writer = writer
        self.protocol = protocol
        self.call: Call | None = None
        self.reason = "stream closed"
        self.logged: set[str] = set()
        self.stop: Callable[[str], None] | None = None

    def handle(self, data: bytes) -> bool:
        event = self.protocol.receive(data)
        call = self.call
        # Nearly every message is media: one exact type test, cheaper than a match.
        if type(event) is streams.Media:
            if call is not None:
                call.caller_audio(event.audio)
            return not self.writer.overflowed
        match event:
            case streams.Mark(name=name):
                if call is not None:
                    call.leg.mark_echoed(name)  # type: ignore[attr-defined]
            case streams.ProtocolError(kind=kind, detail=detail, fatal=fatal):
                self.routes._count_error(self.protocol, kind, self.logged, detail)
                if fatal:
                    self.reason = f"protocol error: {kind}"
                    return False
            case streams.Dtmf(digit=digit):
                if call is not None:
                    call.caller_dtmf(digit)
            case streams.Start() as start:
                self.call = self.routes._open(start, self.ws, self.writer, self.stop)
                if self.call is None:
                    self.reason = "busy"
                    return False
            case streams.Stop():
                self.reason = "caller hung up"
                return False
        return not self.writer.overflowed

    def socket_error(self, exc: BaseException | None) -> None:
        self.reason = "socket error"
        self.routes._count_error(self.protocol, "oversized" if "size" in str(exc) else
                                 "malformed_json", self.logged, str(exc))


def _public_host(request: web.Request, settings: TwilioSettings) -> str:
    if settings.public_url:
        url = settings.public_url
        if "://" in url:
            parts = urlsplit(url)
            return parts.netloc + parts.path.rstrip("/")
        return url.rstrip("/")
    return request.headers.get("X-Forwarded-Host") or request.host


def _scheme(request: web.Request | None, settings: TwilioSettings, secure: str,
            plain: str) -> str:
    """The scheme Twilio uses to reach us: an explicit one in `public_url` is taken as given
    (a local `http://127.0.0.1:8080` must be signed and called back over plain HTTP); a
    bare host means TLS, the only way Twilio reaches a public host in production."""
    if settings.public_url:
        if "://" in settings.public_url:
            given = urlsplit(settings.public_url).scheme.lower()
            return secure if given in ("https", "wss") else plain
        return secure
    if request is None:
        return plain
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    return secure if proto in ("https", "wss") else plain


def public_base_url(settings: TwilioSettings, request: web.Request | None = None) -> str | None:
    """`scheme://host[/prefix]` Twilio reaches us at, for callback URLs and signature checks.

    Without `public_url` it comes from the request (Host / X-Forwarded-*); with neither
    there is nothing Twilio could reach, so None.
    """
    if not settings.public_url and request is None:
        return None
    if request is None:
        url = settings.public_url
        host = (urlsplit(url).netloc + urlsplit(url).path.rstrip("/")) if "://" in url \
            else url.rstrip("/")
    else:
        host = _public_host(request, settings)
    return f"{_scheme(request, settings, 'https', 'http')}://{host}"


class TwilioRoutes:
    def __init__(
        self,
        settings: Callable[[], TwilioSettings],
        calls: CallManager,
        stats: TwilioStats | None = None,
        businesses: Callable[[], BusinessRegistry | None] | None = None,
        on_no_voice: Callable[[BusinessSettings, dict[str, str]], None] | None = None,
    ) -> None:
        self._settings = settings
        self.calls = calls
        self.stats = stats or TwilioStats()
        # The business table (hot reloaded with the config) and what to do when a
        # business's plan has no voice agent (the composition root texts the owner).
        self._businesses = businesses or (lambda: None)
        self._on_no_voice = on_no_voice

    def business_for(self, to_number: str, direction: str = "inbound",
                     from_number: str = "", name: str = "") -> BusinessSettings | None:
        """The business a call is for: a name the call carries (outbound work names
        its business), else our number (`To` inbound, `From` outbound), else the default."""
        registry = self._businesses()
        if registry is None:
            return None
        if name:
            return registry.by_name(name)
        ours = from_number if direction.startswith("outbound") else to_number
        return registry.for_number(ours)

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(VOICE_PATH, self.voice)
        app.router.add_get(MEDIA_PATH, self.media)
        app.router.add_post(STATUS_PATH, self.stream_status)

    def _check(self, request: web.Request, url: str, params: dict[str, str]) -> bool:
        settings = self._settings()
        if not settings.validate_signatures:
            return True
        signature = request.headers.get("X-Twilio-Signature", "")
        if (
            settings.auth_token
            and signature
            and SignatureChecker(settings.auth_token).valid(url, params, signature)
        ):
            return True
        self.stats.forged_signatures += 1
        log.warning(
            "rejected request with a bad Twilio signature",
            extra={"path": request.path, "remote": request.remote or ""},
        )
        return False

    async def voice(self, request: web.Request) -> web.Response:
        settings = self._settings()
        self.stats.webhooks += 1
        form = {k: str(v) for k, v in (await request.post()).items()}
        host = _public_host(request, settings)
        url = f"{_scheme(request, settings, 'https', 'http')}://{host}{request.path_qs}"
        if not self._check(request, url, form):
            return web.Response(status=403, text="invalid signature")
        if self.calls.full:
            self.stats.rejected_busy += 1
            log.warning("at capacity, rejecting call", extra={"call_sid": form.get("CallSid")})
            return web.Response(
                text=say_hangup_twiml("Sorry, all our lines are busy. Please call again soon."),
                content_type="application/xml",
            )
        business = self.business_for(form.get("To", ""), form.get("Direction", "inbound"),
                                     form.get("From", ""))
        if business is not None and not business.voice_enabled:
            return self._no_voice(business, form)
        ws_scheme = _scheme(request, settings, "wss", "ws")
        http_scheme = _scheme(request, settings, "https", "http")
        parameters = {
            key: form[key] for key in ("From", "To", "CallSid", "Direction") if form.get(key)
        }
        twiml = connect_stream_twiml(
            f"{ws_scheme}://{host}{MEDIA_PATH}",
            parameters,
            f"{http_scheme}://{host}{STATUS_PATH}",
        )
        return web.Response(text=twiml, content_type="application/xml")

    def _no_voice(self, business: BusinessSettings, form: dict[str, str]) -> web.Response:
        """The plan has no voice agent: a polite message, never silence, and the owner
        hears of the call (the notice must not delay or break the caller's answer)."""
        self.stats.rejected_no_voice += 1
        log.info("plan has no voice agent; caller told, owner notified", extra={
            "call_sid": form.get("CallSid", ""), "business": business.name,
            "plan": business.plan})
        if self._on_no_voice is not None:
            try:
                self._on_no_voice(business, form)
            except Exception:
                log.exception("owner notice for a no-voice call failed",
                              extra={"call_sid": form.get("CallSid", "")})
        return web.Response(
            text=say_hangup_twiml(no_voice_message(business), business.say_voice or None),
            content_type="application/xml")

    async def stream_status(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = {k: str(v) for k, v in (await request.post()).items()}
        host = _public_host(request, settings)
        url = f"{_scheme(request, settings, 'https', 'http')}://{host}{request.path_qs}"
        if not self._check(request, url, form):
            return web.Response(status=403, text="invalid signature")
        log.info(
            "stream status",
            extra={
                "call_sid": form.get("CallSid", ""),
                "stream_event": form.get("StreamEvent", ""),
                "stream_error": form.get("StreamError", ""),
            },
        )
        return web.Response(status=204)

    async def media(self, request: web.Request) -> web.StreamResponse:
        settings = self._settings()
        host = _public_host(request, settings)
        url = f"{_scheme(request, settings, 'wss', 'ws')}://{host}{request.path_qs}"
        if not self._check(request, url, {}):
            return web.Response(status=403, text="invalid signature")
        ws = web.WebSocketResponse(
            max_msg_size=settings.max_message_bytes, compress=False, autoping=True
        )
        await ws.prepare(request)
        self.stats.streams_opened += 1
        connection = _MediaStreamConnection(self, ws, FrameWriter(request.transport),
                                streams.StreamProtocol(settings.max_message_bytes))
        fastws.announce()
        close: tuple[int, bytes] = (WSCloseCode.OK, b"")
        try:
            if fastws.FAST_PATH:
                close = await self._pump(request, ws, settings.max_message_bytes, connection)
            else:
                await self._read_loop(ws, connection)
        except Exception:
            connection.reason = "handler error"
            log.exception("media stream handler failed",
                          extra={"call_sid": connection.protocol.call_sid})
        finally:
            if connection.writer.overflowed:
                self.stats.slow_peers += 1
                connection.reason = "slow peer"
                log.warning("peer stopped reading; dropping call",
                            extra={"call_sid": connection.protocol.call_sid})
            call = connection.call
            if call is not None:
                await self.calls.close(call, call.hangup_reason or connection.reason)
            if not ws.closed:
                await ws.close(code=close[0], message=close[1])
        return ws

    async def _pump(self, request: web.Request, ws: web.WebSocketResponse, max_size: int,
                    connection: _MediaStreamConnection) -> tuple[int, bytes]:
        """Fast path: messages are dispatched inside `data_received`; wait for the end."""
        pump = fastws.MessagePump(ws, request, connection.handle, max_size)
        connection.stop = pump.stop
        pump.install()
        how = await pump.finished
        if how == "error":
            connection.socket_error(pump.error)
            code = getattr(pump.error, "code", None)
            return (code if isinstance(code, int) else WSCloseCode.PROTOCOL_ERROR), b""
        if how == "handler error":
            connection.reason = "handler error"
            log.error("media stream handler failed", exc_info=pump.error,
                      extra={"call_sid": connection.protocol.call_sid})
            return WSCloseCode.INTERNAL_ERROR, b""
        if how in _PUMP_ENDS:
            return WSCloseCode.OK, b""
        return WSCloseCode.OK, how[:100].encode()  # our hang-up: its reason

    async def _read_loop(self, ws: web.WebSocketResponse,
                         connection: _MediaStreamConnection) -> None:
        """Fallback when aiohttp's internals are not as `fastws` expects: a wake-up per message."""
        handle = connection.handle
        async for msg in ws:
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                if not handle(msg.data):
                    break
            elif msg.type is WSMsgType.ERROR:
                connection.socket_error(ws.exception())
                break

    def _count_error(
        self, protocol: streams.StreamProtocol, kind: str, logged: set[str], detail: str
    ) -> None:
        self.stats.protocol_errors[kind] = self.stats.protocol_errors.get(kind, 0) + 1
        if kind not in logged:  # once per kind per call: a flood must not flood the log
            logged.add(kind)
            log.warning(
                "media stream protocol error",
                extra={"call_sid": protocol.call_sid, "kind": kind, "detail": detail[:200]},
            )

    def _open(
        self, start: streams.Start, ws: web.WebSocketResponse, writer: FrameWriter,
        stop: Callable[[str], None] | None = None,
    ) -> Call | None:
        if self.calls.full:
            self.stats.rejected_busy += 1
            return None
        params: dict[str, Any] = dict(start.custom_parameters)
        context = CallContext(
            call_sid=start.call_sid or params.get("CallSid", ""),
            from_number=params.get("From", ""),
            to_number=params.get("To", ""),
            direction="outbound"
            if params.get("Direction", "").startswith("outbound")
            else "inbound",
            parameters=params,
        )
        context.business = self.business_for(context.to_number, context.direction,
                                             context.from_number, params.get("Business", ""))
        if context.business is not None:
            caller = context.to_number if context.direction == "outbound" else context.from_number
            context.flow = CallFlow(context.business, caller_number=caller)
        leg = MediaStreamLeg(ws, writer, start.stream_sid, stop)
        call = self.calls.open(context, leg)
        leg.on_played = call.played
        return call
