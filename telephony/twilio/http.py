"""aiohttp handlers for Twilio: the voice webhook, the Media Streams socket, stream status.

Thin shells: signatures come from `signature`, TwiML from `twiml`, the stream
protocol from `streams`; calls from `telephony.calls`. One coroutine per call
reads the socket; outbound frames leave through a non-blocking `FrameWriter`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from agents.brain import CallContext
from telephony.call import Call
from telephony.calls import CallManager
from telephony.settings import TwilioSettings
from telephony.twilio import streams
from telephony.twilio.signature import SignatureChecker
from telephony.twilio.twiml import connect_stream_twiml, say_hangup_twiml
from telephony.wsframe import FrameWriter

log = logging.getLogger("leadline.twilio")

MEDIA_PATH = "/twilio/media"
VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/stream-status"


class TwilioStats:
    """Process-wide counters, read by the metrics collector (plain ints: cheap)."""

    def __init__(self) -> None:
        self.protocol_errors: dict[str, int] = dict.fromkeys(streams.ERROR_KINDS, 0)
        self.forged_signatures = 0
        self.slow_peers = 0
        self.webhooks = 0
        self.streams_opened = 0
        self.rejected_busy = 0


class MediaStreamLeg:
    """The Twilio side of a call, as `telephony.call.Leg`."""

    __slots__ = ("_closing", "_ws", "outbound", "writer")

    def __init__(self, ws: web.WebSocketResponse, writer: FrameWriter, stream_sid: str) -> None:
        self._ws = ws
        self.writer = writer
        self.outbound = streams.Outbound(stream_sid)
        self._closing = False

    def send_media(self, ulaw_frame: bytes) -> bool:
        if self.writer.send(self.outbound.media(ulaw_frame)):
            return True
        if self.writer.overflowed:  # the peer stopped reading: its call only
            self.hang_up("slow peer")
        return False

    def send_mark(self, name: str) -> bool:
        return self.writer.send(self.outbound.mark(name))

    def send_clear(self) -> bool:
        return self.writer.send(self.outbound.clear())

    def hang_up(self, reason: str) -> None:
        """Closing the stream ends `<Connect>`; with no TwiML after it, Twilio hangs up."""
        if not self._closing:
            self._closing = True
            asyncio.get_running_loop().create_task(self._ws.close(message=reason[:100].encode()))


def _public_host(request: web.Request, settings: TwilioSettings) -> str:
    if settings.public_url:
        url = settings.public_url
        if "://" in url:
            parts = urlsplit(url)
            return parts.netloc + parts.path.rstrip("/")
        return url.rstrip("/")
    return request.headers.get("X-Forwarded-Host") or request.host


def _scheme(request: web.Request, settings: TwilioSettings, secure: str, plain: str) -> str:
    if settings.public_url:
        return secure
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    return secure if proto in ("https", "wss") else plain


class TwilioRoutes:
    def __init__(
        self,
        settings: Callable[[], TwilioSettings],
        calls: CallManager,
        stats: TwilioStats | None = None,
    ) -> None:
        self._settings = settings
        self.calls = calls
        self.stats = stats or TwilioStats()

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
        writer = FrameWriter(request.transport)
        protocol = streams.StreamProtocol(settings.max_message_bytes)
        call: Call | None = None
        reason = "stream closed"
        logged: set[str] = set()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    event = protocol.receive(msg.data)
                elif msg.type is WSMsgType.ERROR:
                    reason = "socket error"
                    self._count_error(
                        protocol,
                        "oversized" if "size" in str(ws.exception()) else "malformed_json",
                        logged,
                        str(ws.exception()),
                    )
                    break
                else:
                    continue
                kind = type(event)
                if kind is streams.Media:
                    if call is not None:
                        call.caller_audio(event.audio)  # type: ignore[union-attr]
                elif kind is streams.Mark:
                    if call is not None:
                        call.mark_played(event.name)  # type: ignore[union-attr]
                elif kind is streams.ProtocolError:
                    self._count_error(protocol, event.kind, logged, event.detail)  # type: ignore[union-attr]
                    if event.fatal:  # type: ignore[union-attr]
                        reason = f"protocol error: {event.kind}"  # type: ignore[union-attr]
                        break
                elif kind is streams.Dtmf:
                    if call is not None:
                        call.caller_dtmf(event.digit)  # type: ignore[union-attr]
                elif kind is streams.Start:
                    call = self._open(event, ws, writer)  # type: ignore[arg-type]
                    if call is None:
                        reason = "busy"
                        break
                elif kind is streams.Stop:
                    reason = "caller hung up"
                    break
                if writer.overflowed:
                    break
        except Exception:
            reason = "handler error"
            log.exception("media stream handler failed", extra={"call_sid": protocol.call_sid})
        finally:
            if writer.overflowed:
                self.stats.slow_peers += 1
                reason = "slow peer"
                log.warning("peer stopped reading; dropping call",
                            extra={"call_sid": protocol.call_sid})
            if call is not None:
                await self.calls.close(call, call.hangup_reason or reason)
            if not ws.closed:
                await ws.close()
        return ws

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
        self, start: streams.Start, ws: web.WebSocketResponse, writer: FrameWriter
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
        leg = MediaStreamLeg(ws, writer, start.stream_sid)
        return self.calls.open(context, leg)
