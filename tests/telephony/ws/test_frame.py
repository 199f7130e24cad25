from __future__ import annotations

import base64

import msgspec
import pytest

from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad.base import VadEngine, VadStream
from telephony.twilio.leg import MediaStreamLeg
from telephony.ws.frame import FrameWriter, text_frame_header
from tests.audio import speech_ulaw


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.written: list[bytes] = []
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 300, 65535, 65536, 70000])
def test_header_lengths_follow_rfc6455(size):
    header = text_frame_header(size)
    assert header[0] == 0x81  # FIN + text, unmasked (server to client)
    if size < 126:
        assert header[1:] == bytes([size])
    elif size < 65536:
        assert header[1] == 126 and int.from_bytes(header[2:], "big") == size
    else:
        assert header[1] == 127 and int.from_bytes(header[2:], "big") == size


def test_writes_whole_frames():
    t = FakeTransport()
    w = FrameWriter(t)  # type: ignore[arg-type]
    assert w.send(b'{"event":"clear"}')
    assert t.written == [bytes([0x81, 17]) + b'{"event":"clear"}']
    assert w.frames == 1


def test_peer_that_stops_reading_overflows_without_blocking():
    t = FakeTransport(buffered=10_000)
    w = FrameWriter(t, limit=4096)  # type: ignore[arg-type]
    assert not w.send(b"x" * 300)
    assert w.overflowed
    assert t.written == []


def test_closed_transport_is_refused():
    t = FakeTransport()
    t.closing = True
    w = FrameWriter(t)  # type: ignore[arg-type]
    assert not w.send(b"x")
    assert not w.overflowed
    assert not FrameWriter(None).send(b"x")


# --- one write per call per tick ------------------------------------------------------


def _frames(data: bytes) -> list[bytes]:
    """Split a write into its text-frame payloads (server frames: unmasked)."""
    out = []
    while data:
        assert data[0] == 0x81
        n, start = data[1], 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        out.append(data[start:start + n])
        data = data[start + n:]
    return out


def test_queued_frames_leave_in_one_write_on_flush():
    t = FakeTransport()
    w = FrameWriter(t)  # type: ignore[arg-type]
    assert w.queue(b'{"event":"media"}')
    assert w.queue(b'{"event":"mark"}')
    assert t.written == []
    w.flush()
    assert len(t.written) == 1
    assert _frames(t.written[0]) == [b'{"event":"media"}', b'{"event":"mark"}']
    assert (w.frames, w.writes) == (2, 1)
    w.flush()  # nothing queued: no write
    assert len(t.written) == 1


def test_send_goes_out_at_once_after_what_is_queued():
    t = FakeTransport()
    w = FrameWriter(t)  # type: ignore[arg-type]
    w.queue(b"media")
    assert w.send(b"clear")
    assert [_frames(x) for x in t.written] == [[b"media", b"clear"]]  # order kept, one write


def test_overflow_is_checked_when_a_batch_starts():
    t = FakeTransport(buffered=10_000)
    w = FrameWriter(t, limit=4096)  # type: ignore[arg-type]
    assert not w.queue(b"x")
    assert w.overflowed
    w.flush()
    assert t.written == []


def test_a_writer_never_flushed_stays_bounded():
    t = FakeTransport()
    w = FrameWriter(t)  # type: ignore[arg-type]
    for _ in range(1000):
        assert w.queue(b"m")
    assert len(w._pending) <= 2 * 64
    w.flush()
    assert sum(len(_frames(x)) for x in t.written) == 1000


def test_frames_queued_for_a_closed_peer_are_dropped():
    t = FakeTransport()
    w = FrameWriter(t)  # type: ignore[arg-type]
    w.queue(b"m")
    t.closing = True
    w.flush()
    assert t.written == [] and w._pending == []


class _Vad(VadEngine):
    """No decisions: these tests are about what leaves, not about turns."""

    name = "none"
    window_samples = 160

    class _Stream(VadStream):
        window_samples = 160

        def feed(self, pcm16: bytes) -> None: ...
        def take_decisions(self) -> list[tuple[int, bool, float]]:
            return []

        def reset(self) -> None: ...

    def new_stream(self) -> VadStream:
        return self._Stream()

    def process(self, streams) -> int:  # type: ignore[no-untyped-def]
        return 0

    def configure(self, threshold: float, min_volume: int) -> None: ...


class _Sink:
    """The call's MediaSink, reduced to the leg it delegates to (as `Call` does)."""

    def __init__(self, leg: MediaStreamLeg) -> None:
        self.leg = leg

    def send_media(self, frame: bytes) -> None:
        self.leg.send_media(frame)

    def send_checkpoint(self, item_id: str, ms: int) -> None:
        self.leg.send_checkpoint(item_id, ms)

    def send_clear(self) -> None:
        self.leg.send_clear()

    def flush(self) -> None:
        self.leg.flush()

    def speech_started(self) -> None: ...
    def end_of_turn(self, info: object) -> None: ...
    def barge_in(self, item_id: str | None, heard_ms: int) -> None: ...
    def playout_idle(self) -> None: ...


def test_engine_tick_makes_one_write_per_call_carrying_media_and_mark():
    now = [0.0]
    engine = MediaEngine(_Vad(), VadSettings(), MediaSettings(mark_interval_ms=40, lead_frames=2),
                         clock_now=lambda: now[0])
    t = FakeTransport()
    leg = MediaStreamLeg(None, FrameWriter(t), "MZ" + "1" * 32)  # type: ignore[arg-type]
    media = engine.add_call(_Sink(leg))
    speech = speech_ulaw("One write per tick.")
    media.agent_audio("item-1", speech)
    media.agent_done("item-1")
    writes_per_tick = []
    for _ in range(len(speech) // 160 + 20):
        before = len(t.written)
        now[0] += 20.0
        engine.tick(now[0], 1)
        writes_per_tick.append(len(t.written) - before)
    assert engine.call_errors == 0
    assert set(writes_per_tick) <= {0, 1}  # never more than one syscall per call per tick
    msgs = [[msgspec.json.decode(f) for f in _frames(w)] for w in t.written]
    kinds = [[m["event"] for m in w] for w in msgs]
    audio = b"".join(base64.b64decode(m["media"]["payload"])
                     for w in msgs for m in w if m["event"] == "media")
    assert len(audio) == -(-len(speech) // 160) * 160  # tail padded
    assert audio[: len(speech)] == speech
    assert ["media", "mark"] in kinds  # a mark rides in the same write as its frames
    # Chunks: fewer writes than frames (one per send_chunk_frames once the lead is out).
    assert len(t.written) < len(audio) // 160 // 2
    # A barge-in's clear does not wait for the next tick.
    media.agent_audio("item-2", speech)
    now[0] += 20.0
    engine.tick(now[0], 1)
    count = len(t.written)
    assert media.interrupt()
    assert len(t.written) == count + 1
    assert [msgspec.json.decode(f)["event"] for f in _frames(t.written[-1])] == ["clear"]
