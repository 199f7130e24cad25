"""Inbound WebSocket messages dispatched synchronously, without a coroutine per message.

aiohttp parses frames in compiled code (`WebSocketReader`: unmasking,
fragments, control frames, `max_msg_size`) and pushes each message into a
`WebSocketDataQueue`; the handler then wakes once per message. At 50 messages
a second per call that wake-up (`receive`, `__anext__`, the `async for` body
resuming) was most of the server's CPU. `MessagePump` keeps aiohttp's parser
but gives it a queue whose `feed_data` calls the handler's `on_message` right
there, inside `data_received`: one call per message, no future, no task.

Control frames are ours then: PING is answered with a PONG written to the
transport, CLOSE / EOF / a parse error end the pump (`finished` resolves). The
same end event is forwarded to aiohttp's own queue, so `ws.close()` sees the
peer's CLOSE (or EOF) and returns at once instead of waiting out its timeout
for a reply we swallowed.

Memory: nothing is queued. A message is handled before the next one is
parsed, so a flooding peer costs CPU on its own socket, never a growing
buffer; the parser's partial-message buffer is bounded by `max_msg_size`.

This leans on aiohttp internals (`ws._reader`, `RequestHandler._payload_parser`,
a Python override of the compiled queue's `cpdef feed_data`). `FAST_PATH` is
decided once at import by checking those names and by pushing real frames
through a probe; when anything differs, the caller uses its plain
`async for msg in ws` loop instead (and `FAST_PATH_REASON` says why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from aiohttp import WSMsgType, web

log = logging.getLogger("leadline.fastws")

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_PING: Final = WSMsgType.PING
_CLOSE: Final = WSMsgType.CLOSE
_PONG_OPCODE: Final = 0x8A

MessageHandler = Callable[[bytes], bool]
"""Takes one TEXT/BINARY payload; returns False to stop reading (end the stream)."""

try:  # the names the fast path needs; any change means the fallback
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp.web_protocol import RequestHandler
except ImportError as exc:  # pragma: no cover - depends on the aiohttp version
    _IMPORT_ERROR: str | None = f"aiohttp internals not importable: {exc}"
    WebSocketDataQueue = object  # type: ignore[assignment,misc]
    WebSocketReader = None  # type: ignore[assignment,misc]
    RequestHandler = None  # type: ignore[assignment,misc]
else:
    _IMPORT_ERROR = None


class _PumpQueue(WebSocketDataQueue):  # type: ignore[misc,valid-type]
    """aiohttp's queue with `feed_data` overridden: hand each message on, keep none."""

    def __init__(self, protocol: Any, loop: Any, pump: MessagePump | _Probe) -> None:
        super().__init__(protocol, 2**16, loop=loop)
        self._deliver = pump._deliver
        self._pump = pump

    def feed_data(self, data: Any, size: int) -> None:
        self._deliver(data)

    def feed_eof(self) -> None:
        self._pump._end("eof", None)

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        self._pump._end("error", exc)


class _Probe:
    """Collects what a `_PumpQueue` delivers, for the import-time self-test."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def _deliver(self, msg: Any) -> None:
        self.got.append((msg[0], bytes(msg[1]) if msg[0] is not _CLOSE else msg[1]))

    def _end(self, how: str, exc: BaseException | None) -> None:
        self.got.append((how, type(exc).__name__ if exc else None))


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + mask + body


def _check_internals() -> str | None:
    """None if the fast path works with the installed aiohttp, else why not."""
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if "_payload_parser" not in getattr(RequestHandler, "__slots__", ()):
        return "RequestHandler has no _payload_parser slot"
    if not hasattr(web.WebSocketResponse, "_reader"):
        return "WebSocketResponse has no _reader"

    class _Proto:
        _reading_paused = False

    probe = _Probe()
    try:
        queue = _PumpQueue(_Proto(), None, probe)
        reader = WebSocketReader(queue, 1024, compress=False, decode_text=False)
        reader.feed_data(
            _masked(0x1, b"he", fin=False) + _masked(0x9, b"p") + _masked(0x0, b"llo")
            + _masked(0x8, b"\x03\xe8")
        )
        reader.feed_eof()
        over = WebSocketReader(queue, 4, compress=False, decode_text=False)
        over.feed_data(_masked(0x2, b"toolong"))
    except Exception as exc:  # any surprise at all: fall back
        return f"probe failed: {exc!r}"
    expected = [(_PING, b"p"), (_TEXT, b"hello"), (_CLOSE, 1000), ("eof", None),
                ("error", "WebSocketError")]
    if probe.got != expected:
        return f"probe saw {probe.got!r}"
    return None


FAST_PATH_REASON: Final = _check_internals() or ""
FAST_PATH: Final = not FAST_PATH_REASON
_announced = False


def announce() -> None:
    """Log, once per process, which inbound path is in use (called at first use)."""
    global _announced
    if _announced:
        return
    _announced = True
    if FAST_PATH:
        log.info("media streams: synchronous inbound dispatch (fast path)")
    else:
        log.warning("media streams: fast path unavailable, using async for: %s",
                    FAST_PATH_REASON)


class MessagePump:
    """Feeds one server WebSocket's messages to `on_message` as they are parsed.

    Build it after `await ws.prepare(request)`, then `install()`; await
    `finished` for the reason the stream ended: "peer closed" (CLOSE frame),
    "eof" (connection lost), "error" (`error` holds the parse error, e.g. an
    oversized message), "handler error" (`on_message` raised; `error` holds
    it), or what `stop()` was given. After that, messages are ignored.
    """

    __slots__ = (
        "_loop",
        "_on_message",
        "_original",
        "_protocol",
        "_queue",
        "_reader",
        "_transport",
        "close_code",
        "error",
        "finished",
        "messages",
        "pings",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.BaseRequest,
                 on_message: MessageHandler, max_msg_size: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._protocol = request.protocol
        self._transport = request.transport
        self._original = ws._reader  # aiohttp's queue: told how the stream ended
        self._queue = _PumpQueue(self._protocol, self._loop, self)
        self._reader = WebSocketReader(self._queue, max_msg_size, compress=False,
                                       decode_text=False)
        self.finished: asyncio.Future[str] = self._loop.create_future()
        self.error: BaseException | None = None
        self.close_code: int | None = None
        self.messages = 0
        self.pings = 0

    def install(self) -> None:
        """Swap aiohttp's parser for ours; replay anything it already queued."""
        protocol = self._protocol
        original = self._original
        if original is None or protocol is None or protocol._payload_parser is None:
            raise RuntimeError("websocket not prepared")
        protocol._payload_parser = self._reader  # this pump holds the strong ref
        buffered = original._buffer
        while buffered and not self.finished.done():
            self._deliver(buffered.popleft()[0])
        if protocol._reading_paused:
            protocol.resume_reading()

    def stop(self, reason: str) -> None:
        """End the stream from our side (hang-up): `finished` gets `reason`."""
        if not self.finished.done():
            self.finished.set_result(reason)

    # -- called from the parser, inside data_received --------------------------

    def _deliver(self, msg: Any) -> None:
        kind = msg[0]
        if kind is _TEXT or kind is _BINARY:
            if self.finished.done():
                return
            self.messages += 1
            try:
                more = self._on_message(msg[1])
            except Exception as exc:  # ends this stream only
                self.error = exc
                self.finished.set_result("handler error")
                return
            if not more and not self.finished.done():
                self.finished.set_result("stopped")
        elif kind is _PING:
            self.pings += 1
            transport = self._transport
            if transport is not None and not transport.is_closing():
                payload = bytes(msg[1])
                transport.write(bytes((_PONG_OPCODE, len(payload))) + payload)
        elif kind is _CLOSE:
            self.close_code = msg[1]
            if self._original is not None:
                self._original.feed_data(msg, 0)  # so ws.close() completes at once
            if not self.finished.done():
                self.finished.set_result("peer closed")
        # PONG: nothing to do (we send no pings)

    def _end(self, how: str, exc: BaseException | None) -> None:
        original = self._original
        if original is not None:
            if exc is None:
                original.feed_eof()
            else:
                original.set_exception(exc)
        if not self.finished.done():
            self.error = exc
            self.finished.set_result(how)
