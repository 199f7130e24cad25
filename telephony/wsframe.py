"""Non-blocking WebSocket text frames for the outbound media path.

aiohttp's `send_*` are coroutines that may wait on drain; awaited from the
media clock's tick they would let one slow peer stall every call. Server
frames are unmasked and trivially framed, so after aiohttp's handshake the
media path writes whole frames straight to the transport and checks its write
buffer: a peer that stops reading overflows its own bound and is dropped,
while the tick moves on. Reading and closing stay with aiohttp; both run on
the one event loop thread, so frames never interleave.
"""

from __future__ import annotations

import asyncio
from typing import Final

_FIN_TEXT: Final = 0x81


def text_frame_header(size: int) -> bytes:
    if size < 126:
        return bytes((_FIN_TEXT, size))
    if size < 65536:
        return bytes((_FIN_TEXT, 126)) + size.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + size.to_bytes(8, "big")


class FrameWriter:
    """Writes text frames without awaiting; refuses once `limit` bytes are queued."""

    __slots__ = ("_transport", "frames", "limit", "overflowed")

    def __init__(self, transport: asyncio.WriteTransport | None, limit: int = 256 * 1024) -> None:
        self._transport = transport
        self.limit = limit
        self.overflowed = False
        self.frames = 0

    def send(self, payload: bytes) -> bool:
        """Queue one text frame; False when the peer is gone or too far behind."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.limit:
            self.overflowed = True
            return False
        transport.write(text_frame_header(len(payload)) + payload)
        self.frames += 1
        return True
