"""The Twilio Media Streams side of a call, as a carrier-neutral `telephony.call.Leg`.

The call hands every leg the same checkpoints `(item_id, ms)`; Twilio cannot
report playback position itself, so this leg turns each checkpoint into a mark
named `"{item_id}:{ms}"` and, when Twilio echoes it (the audio before it has
played, or was flushed by a clear), turns the name back into
`Call.played(item_id, ms)`. Item ids may contain colons, so the ms is the text
after the last one. Names that did not come from us (a peer inventing marks) do
not parse and are dropped here; the playout still bounds what a parsed one can
claim to what it handed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from telephony.twilio import streams
from telephony.ws.frame import FrameWriter

# Twilio mark names are free text; ours never get near this (ids are short).
MAX_MARK_NAME = 256
# One outbound media message holds at most this much μ-law (1 s); a chunk is
# normally 5–10 frames (800–1600 bytes), so this only bounds a long backlog.
MAX_MEDIA_BYTES = 8000


def mark_name(item_id: str, ms: int) -> str:
    """The Twilio mark for checkpoint `(item_id, ms)`."""
    return f"{item_id}:{ms}"


def parse_mark(name: str) -> tuple[str, int] | None:
    """The checkpoint a mark echoed by Twilio stands for, or None if it is not ours."""
    if len(name) > MAX_MARK_NAME:
        return None
    item_id, sep, ms_text = name.rpartition(":")
    if not sep or not ms_text.isdigit() or not ms_text.isascii():
        return None
    return item_id, int(ms_text)


Played = Callable[[str, int], None]


class MediaStreamLeg:
    """The Twilio side of a call, as `telephony.call.Leg`.

    Media and marks are batched and leave in one write per `flush` (the media
    engine flushes each call once per tick); a clear goes out at once.
    Consecutive frames are joined into one `media` message (Twilio plays a
    payload of any whole number of samples, and plays messages back to back),
    cut only where a mark must sit between them, so a chunk of five frames is
    one message, one base64 and one WebSocket frame instead of five, and the
    marks still fall exactly where the playout put them.
    `on_played` is the call's `played`, bound once the call exists (the leg is
    made first, because the call is built around it).
    """

    __slots__ = ("_audio", "_closing", "_stop", "_ws", "on_played", "outbound", "writer")

    def __init__(self, ws: web.WebSocketResponse, writer: FrameWriter, stream_sid: str,
                 stop: Callable[[str], None] | None = None) -> None:
        self._ws = ws
        self.writer = writer
        self._audio = bytearray()  # frames of the media message being built
        self.outbound = streams.Outbound(stream_sid)
        self._closing = False
        self._stop = stop  # ends the fast-path pump; None on the `async for` path
        self.on_played: Played | None = None

    def send_media(self, ulaw_frame: bytes) -> bool:
        audio = self._audio
        if not audio and not self.writer.ready():
            if self.writer.overflowed:  # the peer stopped reading: its call only
                self.hang_up("slow peer")
            return False
        audio += ulaw_frame
        if len(audio) >= MAX_MEDIA_BYTES:
            self._end_media()
        return True

    def _end_media(self) -> None:
        """Queue the media message built so far (marks and clears must come after it)."""
        audio = self._audio
        if audio:
            self.writer.queue(self.outbound.media(audio))
            audio.clear()

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        self._end_media()
        return self.writer.queue(self.outbound.mark(mark_name(item_id, ms)))

    def mark_echoed(self, name: str) -> bool:
        """Twilio echoed mark `name`; False if it was not one of ours (ignored)."""
        checkpoint = parse_mark(name)
        if checkpoint is None or self.on_played is None:
            return False
        self.on_played(*checkpoint)
        return True

    def send_clear(self) -> bool:
        self._end_media()
        return self.writer.send(self.outbound.clear())

    def flush(self) -> None:
        self._end_media()
        self.writer.flush()

    def hang_up(self, reason: str) -> None:
        """Closing the stream ends `<Connect>`; with no TwiML after it, Twilio hangs up."""
        if not self._closing:
            self._closing = True
            if self._stop is not None:  # the handler closes the socket as it ends
                self._stop(reason)
            else:
                asyncio.get_running_loop().create_task(
                    self._ws.close(message=reason[:100].encode()))
