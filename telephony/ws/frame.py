"""Non-blocking WebSocket text frames for the outbound media path.

aiohttp's `send_*` are coroutines that may wait on drain; awaited from the
media clock's tick they would let one slow peer stall every call. Server
frames are unmasked and trivially framed, so after aiohttp's handshake the
media path writes whole frames straight to the transport and checks its write
buffer: a peer that stops reading overflows its own bound and is dropped,
while the tick moves on. Reading and closing stay with aiohttp; both run on
the one event loop thread, so frames never interleave.

A tick hands a call one media frame and often a mark: written one by one that
is a `write` syscall each, which profiled as the largest single cost of the
server. So frames are `queue`d and leave in one `write` per `flush` (once per
call per tick); `send` writes at once, after whatever is queued (a `clear`
must not wait for the next tick: barge-in latency).
"""

from __future__ import annotations

import asyncio
from typing import Final

_FIN_TEXT: Final = 0x81
# Queued frames beyond this are written without waiting for `flush` (a caller
# that never flushes must not grow the list): two list entries per frame.
_MAX_QUEUED_ENTRIES: Final = 2 * 64


def text_frame_header(size: int) -> bytes:
    if size < 126:
        return bytes((_FIN_TEXT, size))
    if size < 65536:
        return bytes((_FIN_TEXT, 126)) + size.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + size.to_bytes(8, "big")


class FrameWriter:
    """Writes text frames without awaiting; refuses once `limit` bytes are queued.

    The write-buffer bound is checked when a batch starts (first `queue` after
    a flush) and on every `send`, so a batch can exceed `limit` by at most one
    tick's frames.
    """

    __slots__ = ("_pending", "_transport", "frames", "limit", "overflowed", "writes")

    def __init__(self, transport: asyncio.WriteTransport | None, limit: int = 256 * 1024) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self.limit = limit
        self.overflowed = False
        self.frames = 0  # frames written
        self.writes = 0  # transport.write calls

    def _usable(self) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.limit:
            self.overflowed = True
            return False
        return True

    def ready(self) -> bool:
        """Whether a frame queued now could go out (peer there, write buffer in bound)."""
        return bool(self._pending) or self._usable()

    def queue(self, payload: bytes) -> bool:
        """Add one text frame to the batch; False when the peer is gone or too far behind."""
        pending = self._pending
        if not pending:
            if not self._usable():
                return False
        elif len(pending) >= _MAX_QUEUED_ENTRIES:
            self.flush()
            if not self._usable():
                return False
        pending.append(text_frame_header(len(payload)))
        pending.append(payload)
        return True

    def flush(self) -> None:
        """Write the batch in one call (nothing if empty, dropped if the peer is gone)."""
        pending = self._pending
        if not pending:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(pending))
            self.frames += len(pending) >> 1
            self.writes += 1
        pending.clear()

    def send(self, payload: bytes) -> bool:
        """Write one text frame now, after the queued batch; False when it cannot go out."""
        if not self._usable():
            self._pending.clear()
            return False
        self._pending.append(text_frame_header(len(payload)))
        self._pending.append(payload)
        self.flush()
        return True
