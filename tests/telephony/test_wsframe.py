from __future__ import annotations

import pytest

from telephony.wsframe import FrameWriter, text_frame_header


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
