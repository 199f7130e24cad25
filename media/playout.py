"""Paced, bounded playout of agent audio for one call, whatever the carrier.

A phone leg plays whatever it is sent in real time and buffers the rest, so
audio sent early cannot be taken back except by a clear, and the caller only
hears what the leg played. This core therefore (1) hands out audio at the pace
it is played, plus a small cushion against jitter, so a barge-in has little to
flush, and (2) follows each stretch of audio with a checkpoint `(item_id, ms)`.
The leg reports a checkpoint back through `played(item_id, ms)` once the audio
before it has played, which tells exactly how much of a response the caller
heard. How the leg learns that is its own business: Twilio echoes a mark we
name after the checkpoint, a LiveKit leg counts the frames its audio source has
consumed. The number is what a brain may truncate its own transcript to, so it
is never more than was sent, and reports that arrive after a clear (Twilio
echoes flushed marks too) are ignored.

The ms of a checkpoint counts real audio bytes of the item, not the silence
that pads its last frame: a brain's item is exactly as long as the audio it
produced, and a truncation past its end is an error.

Audio sits in one bytearray read with a moving offset; it is compacted only
when drained or when the consumed head is large, so a frame costs one slice.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from media.codecs.ulaw import FRAME_BYTES, FRAME_MS, SILENCE_BYTE
from media.settings import MediaSettings

_BYTES_PER_MS = FRAME_BYTES // FRAME_MS  # 8 (8 kHz μ-law)
# Consumed head size from which the buffer is compacted even while not drained.
_COMPACT_BYTES = 64 * 1024
# Items remembered after they are done, so late reports and late audio of a
# cleared response are recognised (and ignored) rather than taken as new.
_REMEMBER_ITEMS = 64

# Audio up to `ms` of `item_id` has been handed out (reported back via `played`).
Checkpoint = tuple[str, int]
Frame = tuple[bytes | None, Checkpoint | None]
_NOTHING: Sequence[Frame] = ()


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class Truncation(NamedTuple):
    """What the caller heard of the item being played when it was cleared."""

    item_id: str
    heard_ms: int
    sent_ms: int


class _Item:
    __slots__ = (
        "audio_bytes",
        "cleared",
        "final_marked",
        "finished",
        "heard_ms",
        "item_id",
        "marked_ms",
        "next_mark",
        "queued",
        "sent_bytes",
    )

    def __init__(self, item_id: str, mark_bytes: int) -> None:
        self.item_id = item_id
        # Real audio accepted (no padding).
        self.audio_bytes = 0
        # Bytes of this item in the buffer, not yet handed out (padding included).
        self.queued = 0
        # Bytes handed out (whole frames, padding included).
        self.sent_bytes = 0
        self.next_mark = mark_bytes
        # ms of the latest checkpoint handed out; -1 = none yet.
        self.marked_ms = -1
        # ms of the latest checkpoint reported played; -1 = none yet.
        self.heard_ms = -1
        self.finished = False
        self.final_marked = False
        self.cleared = False

    @property
    def sent_ms(self) -> int:
        sent = self.sent_bytes if self.sent_bytes < self.audio_bytes else self.audio_bytes
        return sent // _BYTES_PER_MS


class Playout:
    """Outbound audio of one call. Not thread-safe; driven from the media clock.

    `frames_due(n)` is called once per clock tick with the number of periods
    elapsed; it returns `(frame, checkpoint)` pairs to send in order: `frame`
    is a 160-byte μ-law frame or None (a checkpoint alone), `checkpoint` an
    `(item_id, ms)` for the leg to report back once it has played, or None.
    """

    def __init__(
        self, settings: MediaSettings, *, clock: Callable[[], float] = _monotonic_ms
    ) -> None:
        self._clock = clock
        self._buf = bytearray()
        self._off = 0
        # Items with audio or a checkpoint still to hand out, in buffer order.
        self._sendq: deque[_Item] = deque()
        # Items not yet fully heard (superset of _sendq), in play order.
        self._unsettled: deque[_Item] = deque()
        self._items: dict[str, _Item] = {}
        # Frames the leg is estimated to hold beyond the one playing now.
        self._ahead = 0
        self._unsent = 0
        self.sent_frames = 0
        self.underruns = 0
        self._dropped_bytes = 0
        self._discarded_bytes = 0
        self.idle_since_ms: float | None = clock()
        self.update_settings(settings)

    def update_settings(self, settings: MediaSettings) -> None:
        """Takes effect from the next frame; audio already queued is kept."""
        self._settings = settings
        self._mark_bytes = settings.mark_interval_ms * _BYTES_PER_MS
        self._lead = settings.lead_frames
        self._chunk = settings.send_chunk_frames
        self._max_bytes = settings.max_playout_ms * _BYTES_PER_MS

    # -- observers -------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """Agent audio is queued, or handed out and (by estimate) still playing.

        `CallMedia._tick` inlines this and `idle` (hot path): change both together."""
        return bool(self._sendq) or self._ahead > 0

    @property
    def idle(self) -> bool:
        """Everything handed out was heard (or flushed) and nothing is queued."""
        return not self._unsettled

    @property
    def dropped_ms(self) -> int:
        """Audio refused because the buffer was full (max_playout_ms)."""
        return self._dropped_bytes // _BYTES_PER_MS

    @property
    def discarded_ms(self) -> int:
        """Audio refused because its item was already finished or cleared."""
        return self._discarded_bytes // _BYTES_PER_MS

    @property
    def queued_ms(self) -> int:
        return self._unsent // _BYTES_PER_MS

    @property
    def current_item(self) -> str | None:
        """The item the caller is hearing (or will hear next)."""
        return self._unsettled[0].item_id if self._unsettled else None

    def heard_ms(self, item_id: str) -> int:
        item = self._items.get(item_id)
        if item is None or item.heard_ms < 0:
            return 0
        return item.heard_ms

    def sent_ms(self, item_id: str) -> int:
        item = self._items.get(item_id)
        return 0 if item is None else item.sent_ms

    # -- inputs ----------------------------------------------------------

    def push(self, item_id: str, ulaw: bytes) -> int:
        """Queue agent audio of `item_id`; returns the bytes accepted.

        A push for a new item finishes the previous open one (audio is played
        in the order it arrives). Audio of a finished or cleared item is
        discarded: a cancelled response may stream a few late deltas.
        """
        n = len(ulaw)
        if n == 0:
            return 0
        item = self._items.get(item_id)
        if item is None:
            tail = self._sendq[-1] if self._sendq else None
            if tail is not None and not tail.finished:
                self._finish(tail)
            item = self._new_item(item_id)
        elif item.finished:
            self._discarded_bytes += n
            return 0
        room = self._max_bytes - self._unsent
        if n > room:
            if room <= 0:
                self._dropped_bytes += n
                return 0
            self._dropped_bytes += n - room
            ulaw = ulaw[:room]
            n = room
        self._buf += ulaw
        item.audio_bytes += n
        item.queued += n
        self._unsent += n
        return n

    def finish(self, item_id: str) -> None:
        """No more audio for `item_id`; its last partial frame is padded with silence."""
        item = self._items.get(item_id)
        if item is None:
            # Finished without audio: remember it, so late audio is discarded.
            item = self._new_item(item_id)
        if not item.finished:
            self._finish(item)

    def frames_due(self, n: int = 1) -> Sequence[Frame]:
        """Frames to send now, `n` clock periods after the previous call.

        Keeps the leg's buffer at least `lead_frames` ahead of real time, fed
        `send_chunk_frames` (c) at a time: the first call after the buffer ran
        dry hands out lead_frames + c frames, then nothing until the leg is down
        to lead_frames, then c (more after a late tick, to refill what was
        played). With c = 1 that is one frame per period. Chunks cut the sends
        per call c-fold; the cushion before the leg runs dry is the same, and a
        clear flushes what the leg holds, so barge-in is not slower. Checkpoints
        still fall every mark_interval_ms of audio, inside or at the end of a
        chunk, so truncation is as precise.
        """
        ahead = self._ahead - n
        if ahead < 0:
            ahead = 0
        sendq = self._sendq
        if not sendq:
            self._ahead = ahead
            return _NOTHING
        lead = self._lead
        # Frames the leg lacks to hold the cushion: short of that is an underrun.
        need = lead + 1 - ahead
        if ahead <= lead:
            want = lead + self._chunk - ahead
        elif sendq[0].queued >= FRAME_BYTES:  # above the cushion, mid-item: nothing due
            self._ahead = ahead
            return _NOTHING
        else:  # above the cushion: no audio now, but a final checkpoint still goes
            want = 0
        out: list[Frame] = []
        buf = self._buf
        sent = 0
        while sendq:
            item = sendq[0]
            if item.queued >= FRAME_BYTES:
                if sent >= want:
                    break
                off = self._off
                frame = bytes(buf[off : off + FRAME_BYTES])
                self._off = off + FRAME_BYTES
                item.queued -= FRAME_BYTES
                item.sent_bytes += FRAME_BYTES
                sent += 1
                out.append((frame, self._mark_after_frame(item)))
                if item.finished and item.queued == 0:
                    sendq.popleft()
                    self._settle(item)
                continue
            if item.finished:
                # Only a final checkpoint can be missing (the audio's last frame
                # went out before finish() came).
                if not item.final_marked:
                    mark = self._final_mark(item)
                    if mark is not None:
                        out.append((None, mark))
                sendq.popleft()
                self._settle(item)
                continue
            # An open item without a whole frame: the brain is behind.
            if item.sent_bytes and sent < need:
                self.underruns += 1
            break
        self._unsent -= sent * FRAME_BYTES
        self.sent_frames += sent
        self._ahead = ahead + sent
        if self._off >= len(buf):
            buf.clear()
            self._off = 0
        elif self._off >= _COMPACT_BYTES:
            del buf[: self._off]
            self._off = 0
        return out

    def played(self, item_id: str, ms: int) -> bool:
        """The leg played the audio up to checkpoint `(item_id, ms)`; returns whether it counted.

        Unknown and flushed (item cleared) items do not count, and a report
        never raises heard_ms beyond the ms of the latest checkpoint handed out,
        so a leg that misreports cannot make a truncation overshoot.
        """
        item = self._items.get(item_id)
        if item is None or item.cleared or ms < 0 or ms > item.marked_ms:
            return False
        if ms > item.heard_ms:
            item.heard_ms = ms
        self._settle(item)
        return True

    def clear(self) -> Truncation | None:
        """Barge-in: drop all unsent audio; checkpoints still out now count as flushed.

        Returns what the caller heard of the item being played (the oldest not
        fully heard), or None if nothing was playing or queued. heard_ms never
        exceeds sent_ms. Every item touched is closed: its late audio is
        discarded.
        """
        truncation = None
        if self._unsettled:
            head = self._unsettled[0]
            sent = head.sent_ms
            heard = head.heard_ms if head.heard_ms > 0 else 0
            truncation = Truncation(head.item_id, heard if heard < sent else sent, sent)
            for item in self._unsettled:
                item.cleared = True
                item.finished = True
        self._unsettled.clear()
        self._sendq.clear()
        self._buf.clear()
        self._off = 0
        self._unsent = 0
        self._ahead = 0
        if self.idle_since_ms is None:
            self.idle_since_ms = self._clock()
        return truncation

    # -- internals -------------------------------------------------------

    def _new_item(self, item_id: str) -> _Item:
        item = _Item(item_id, self._mark_bytes)
        items = self._items
        if len(items) >= _REMEMBER_ITEMS:
            self._forget_old()
        items[item_id] = item
        self._sendq.append(item)
        self._unsettled.append(item)
        self.idle_since_ms = None
        return item

    def _forget_old(self) -> None:
        """Drop the oldest remembered items that are done (never a live one)."""
        live = {id(item) for item in self._unsettled}
        excess = len(self._items) - _REMEMBER_ITEMS // 2
        for key in [k for k, v in self._items.items() if id(v) not in live][:excess]:
            del self._items[key]

    def _finish(self, item: _Item) -> None:
        item.finished = True
        pad = -item.queued % FRAME_BYTES
        if pad:
            self._buf += bytes([SILENCE_BYTE]) * pad
            item.queued += pad
            self._unsent += pad
        if item.queued == 0 and item in self._sendq and item.sent_bytes == 0:
            # No audio at all: nothing to play, nothing to hear.
            self._sendq.remove(item)
            item.final_marked = True
            self._settle(item)

    def _mark_after_frame(self, item: _Item) -> Checkpoint | None:
        if item.finished and item.queued == 0:
            return self._final_mark(item)
        sent = item.sent_bytes if item.sent_bytes < item.audio_bytes else item.audio_bytes
        if sent < item.next_mark:
            return None
        item.next_mark = sent + self._mark_bytes
        return self._mark(item, sent // _BYTES_PER_MS)

    def _final_mark(self, item: _Item) -> Checkpoint | None:
        item.final_marked = True
        ms = item.audio_bytes // _BYTES_PER_MS
        if ms == item.marked_ms:
            return None  # the latest interval checkpoint already says it
        return self._mark(item, ms)

    def _mark(self, item: _Item, ms: int) -> Checkpoint:
        item.marked_ms = ms
        return (item.item_id, ms)

    def _settle(self, item: _Item) -> None:
        """Retire `item` once its final checkpoint was played (or it had no audio)."""
        if not (item.final_marked and item.queued == 0 and item.heard_ms >= item.marked_ms):
            return
        try:
            self._unsettled.remove(item)
        except ValueError:
            return
        if not self._unsettled:
            self.idle_since_ms = self._clock()
