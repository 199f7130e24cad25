"""The synchronous inbound path: aiohttp's parser, our queue, no coroutine per message.

Raw sockets on the client side, so fragments, pings and close frames are sent
exactly as a peer would; the server is real aiohttp on a free port.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from ops.dev.twilio_side import TwilioSide
from telephony.call import Call
from telephony.twilio.http import TwilioRoutes
from telephony.twilio.signature import SignatureChecker
from telephony.ws import fastws
from tests.helpers import AUTH_TOKEN, serve_app


def test_fast_path_is_the_one_in_use_with_the_installed_aiohttp():
    # An aiohttp upgrade that changes the internals would silently fall back: notice it.
    assert fastws.FAST_PATH_REASON == ""
    assert fastws.FAST_PATH


# --- a bare server whose handler runs a MessagePump -----------------------------------


class Ended:
    def __init__(self) -> None:
        self.how: dict[str, str] = {}
        self.got: dict[str, list[bytes]] = {}
        self.close_code: dict[str, int | None] = {}
        self.errors: dict[str, BaseException | None] = {}
        self.done: dict[str, asyncio.Event] = {}


def _app(ended: Ended, on: Callable[[str, bytes], bool] | None = None) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        name = request.query["name"]
        # A long close timeout: ws.close() returns promptly only if the peer's
        # CLOSE (or EOF) reaches aiohttp's queue through the pump.
        ws = web.WebSocketResponse(max_msg_size=1024, timeout=60.0)
        await ws.prepare(request)
        got = ended.got.setdefault(name, [])
        done = ended.done.setdefault(name, asyncio.Event())

        def on_message(data: bytes) -> bool:
            got.append(data)
            request.transport.write(b"\x81" + bytes((len(data),)) + data)  # echo
            return True if on is None else on(name, data)

        pump = fastws.MessagePump(ws, request, on_message, 1024)
        pump.install()
        ended.how[name] = await pump.finished
        ended.errors[name] = pump.error
        await ws.close()
        ended.close_code[name] = ws.close_code
        done.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


class RawPeer:
    """A WebSocket client at the frame level (masked frames, as RFC 6455 requires)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, name: str) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws?name={name} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        return cls(reader, writer)

    async def answer_close(self) -> None:
        """Skip to the server's CLOSE and reply to it, as a well-behaved peer does."""
        while (frame := await self.frame())[0] != 0x8:
            pass
        self.send(0x8, frame[1][:2])

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes(((0x80 if fin else 0) | opcode,))
        if n < 126:
            head += bytes((0x80 | n,))
        elif n < 65536:
            head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
        else:
            head += bytes((0x80 | 127,)) + n.to_bytes(8, "big")
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + body)

    async def frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await self.reader.readexactly(n)


@pytest.fixture
async def bare() -> AsyncIterator[tuple[Ended, int]]:
    ended = Ended()
    runner, port = await serve_app(_app(ended, on=lambda name, data: _maybe_raise(data)))
    try:
        yield ended, port
    finally:
        await runner.cleanup()


def _maybe_raise(data: bytes) -> bool:
    if data == b"boom":
        raise ValueError("dispatch failed")
    return data != b"stop"


async def test_ping_gets_a_pong_and_messages_keep_flowing(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "ping")
    peer.send(0x9, b"are you there")
    assert await peer.frame() == (0xA, b"are you there")
    peer.send(0x1, b"after")
    assert await peer.frame() == (0x1, b"after")
    peer.send(0x8, struct.pack("!H", 1000))
    assert (await peer.frame())[0] == 0x8
    await ended.done["ping"].wait()
    assert ended.how["ping"] == "peer closed"


async def test_fragmented_text_with_a_ping_between_arrives_whole(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "frag")
    peer.send(0x1, b'{"event":', fin=False)
    peer.send(0x9, b"x")  # control frames may come between fragments
    peer.send(0x0, b'"media",', fin=False)
    peer.send(0x0, b'"n":1}')
    assert await peer.frame() == (0xA, b"x")
    assert await peer.frame() == (0x1, b'{"event":"media","n":1}')
    assert ended.got["frag"] == [b'{"event":"media","n":1}']
    peer.writer.close()


async def test_close_handshake_completes_with_the_peers_code(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "close")
    peer.send(0x1, b"hi")
    await peer.frame()
    peer.send(0x8, struct.pack("!H", 4001) + b"bye")
    opcode, body = await peer.frame()
    assert opcode == 0x8 and struct.unpack("!H", body[:2])[0] == 1000  # our reply
    await ended.done["close"].wait()
    assert ended.how["close"] == "peer closed"
    # 4001 can only come from the peer's frame forwarded to aiohttp's queue; a
    # swallowed CLOSE would have left ws.close() waiting out its 60 s timeout.
    assert ended.close_code["close"] == 4001
    assert await peer.reader.read() == b""  # and the server closed the TCP connection


async def test_abrupt_disconnect_ends_the_pump(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "eof")
    peer.send(0x1, b"one")
    await peer.frame()
    peer.writer.transport.abort()
    await ended.done["eof"].wait()
    assert ended.how["eof"] == "eof"


async def test_oversized_message_ends_only_that_socket(bare):
    ended, port = bare
    good = await RawPeer.connect(port, "good")
    big = await RawPeer.connect(port, "big")
    big.send(0x1, b"x" * 5000)  # max_msg_size is 1024
    opcode, _ = await big.frame()
    assert opcode == 0x8  # closed
    await ended.done["big"].wait()
    assert ended.how["big"] == "error"
    assert "size" in str(ended.errors["big"])
    good.send(0x1, b"still here")
    assert await good.frame() == (0x1, b"still here")
    assert "good" not in ended.how
    good.writer.close()


async def test_exception_in_dispatch_ends_only_that_stream(bare):
    ended, port = bare
    good = await RawPeer.connect(port, "calm")
    bad = await RawPeer.connect(port, "boom")
    bad.send(0x1, b"boom")
    await bad.answer_close()
    await ended.done["boom"].wait()
    assert ended.how["boom"] == "handler error"
    assert isinstance(ended.errors["boom"], ValueError)
    good.send(0x1, b"fine")
    assert await good.frame() == (0x1, b"fine")
    assert "calm" not in ended.how
    good.writer.close()


async def test_handler_asking_to_stop_ends_the_stream(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "stopper")
    peer.send(0x1, b"stop")
    peer.send(0x1, b"ignored after the end")
    await peer.answer_close()
    await ended.done["stopper"].wait()
    assert ended.how["stopper"] == "stopped"
    assert ended.got["stopper"] == [b"stop"]


async def test_a_flood_is_dispatched_as_parsed_never_queued(bare):
    ended, port = bare
    peer = await RawPeer.connect(port, "flood")
    for i in range(2000):
        peer.send(0x1, b"m%d" % i)
    peer.send(0x8, struct.pack("!H", 1000))
    await ended.done["flood"].wait()
    assert len(ended.got["flood"]) == 2000  # all handled, in order, none dropped
    assert ended.got["flood"][-1] == b"m1999"


# --- through the real Twilio handler -------------------------------------------------


async def _connect(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws_url = url.replace("http://", "ws://") + "/twilio/media"
    signature = SignatureChecker(AUTH_TOKEN).sign(ws_url, {})
    return await http.ws_connect(ws_url, headers={"X-Twilio-Signature": signature})


def _side(n: int) -> TwilioSide:
    return TwilioSide(f"MZfast{n:028d}", f"CAfast{n:028d}", "AC" + "0" * 32,
                      {"From": "+15005550006", "To": "+15005550001"})


async def test_real_handler_uses_the_fast_path_and_a_failing_call_ends_alone(monkeypatch):
    from tests.helpers import start_server

    async def no_fallback(self, ws, session):  # the async-for loop must not run
        raise AssertionError("fell back to the async for loop")

    monkeypatch.setattr(TwilioRoutes, "_read_loop", no_fallback)
    dtmf = Call.caller_dtmf

    def caller_dtmf(self: Call, digit: str) -> None:
        if digit == "9":
            raise RuntimeError("dtmf handler bug")
        dtmf(self, digit)

    monkeypatch.setattr(Call, "caller_dtmf", caller_dtmf)
    srv, runner = await start_server({})
    try:
        async with aiohttp.ClientSession() as http:
            a, b = _side(1), _side(2)
            ws_a, ws_b = await _connect(http, srv.url), await _connect(http, srv.url)
            for ws, side in ((ws_a, a), (ws_b, b)):
                await ws.send_bytes(side.connected())
                await ws.send_bytes(side.start())
            for ws in (ws_a, ws_b):  # both calls are live: the greeting streams out
                msg = await ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT and b'"event":"media"' in (
                    msg.data.encode())
            await ws_a.send_bytes(a.dtmf("9"))
            while (msg := await ws_a.receive()).type is aiohttp.WSMsgType.TEXT:
                pass
            assert msg.type is aiohttp.WSMsgType.CLOSE
            await ws_b.send_bytes(b.dtmf("1"))
            await ws_b.send_bytes(b.media(b"\xff" * 160))
            msg = await ws_b.receive()  # the other call carries on
            assert msg.type is aiohttp.WSMsgType.TEXT
            assert list(srv.runtime.calls.active) == [b.call_sid]
            await ws_b.send_bytes(b.stop())
            while (msg := await ws_b.receive()).type is aiohttp.WSMsgType.TEXT:
                pass
            assert msg.type is aiohttp.WSMsgType.CLOSE
            await ws_a.close()
            await ws_b.close()
    finally:
        await runner.cleanup()
