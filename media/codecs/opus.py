"""Opus for the WebRTC/LiveKit legs and for compact recordings.

Through PyAV, whose wheels bundle libopus, so there is no system library to
install. Both sides are stateful streams of 20 ms frames: Opus predicts from
the previous frame, so one encoder/decoder per direction per call, never
shared. Errors come out as ValueError so callers need not know about `av`.

The libopus decoder always produces 48 kHz; for other rates the decoder
converts with swresample, which streams with a fixed delay of a couple of
milliseconds (a soxr stream would hand out audio in bursts of several frames).
"""

from __future__ import annotations

from typing import Literal

import av
import av.error

RATES = (8000, 12000, 16000, 24000, 48000)
FRAME_MS = 20
DECODE_RATE = 48000  # what libopus decodes to, whatever was encoded
Application = Literal["voip", "audio", "lowdelay"]


def _check(sample_rate: int, channels: int) -> None:
    if sample_rate not in RATES:
        raise ValueError(f"unsupported Opus sample rate {sample_rate}; expected one of {RATES}")
    if channels not in (1, 2):
        raise ValueError(f"Opus channels must be 1 or 2, got {channels}")


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


class OpusEncoder:
    """PCM16 20 ms frames in, one Opus packet out per frame."""

    __slots__ = (
        "_ctx",
        "_frame",
        "_pts",
        "channels",
        "frame_bytes",
        "frame_samples",
        "sample_rate",
    )

    def __init__(
        self,
        sample_rate: int = 48000,
        channels: int = 1,
        bitrate: int = 32000,
        application: Application = "voip",
    ) -> None:
        _check(sample_rate, channels)
        if not 6000 <= bitrate <= 510_000:
            raise ValueError(f"Opus bitrate must be 6000..510000 bit/s, got {bitrate}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self.frame_bytes = self.frame_samples * channels * 2
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = sample_rate
        ctx.layout = _layout(channels)
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {"application": application, "frame_duration": str(FRAME_MS)}
        ctx.open()
        self._ctx = ctx
        # One frame reused for every call: libopus copies the samples on encode.
        frame = av.AudioFrame(format="s16", layout=_layout(channels), samples=self.frame_samples)
        frame.sample_rate = sample_rate
        self._frame = frame
        self._pts = 0

    def encode(self, pcm16: bytes) -> bytes:
        """Encode exactly one 20 ms frame of interleaved PCM16 (little endian)."""
        if len(pcm16) != self.frame_bytes:
            raise ValueError(
                f"Opus frame must be {self.frame_bytes} bytes (20 ms), got {len(pcm16)}"
            )
        frame = self._frame
        frame.planes[0].update(pcm16)
        frame.pts = self._pts
        self._pts += self.frame_samples
        packets = self._ctx.encode(frame)
        return bytes(packets[0]) if packets else b""


class OpusDecoder:
    """Opus packets in, PCM16 at `sample_rate` out (20 ms per 20 ms packet)."""

    __slots__ = ("_ctx", "_resampler", "channels", "sample_rate")

    def __init__(self, sample_rate: int = 48000, channels: int = 1) -> None:
        _check(sample_rate, channels)
        self.sample_rate = sample_rate
        self.channels = channels
        ctx = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = DECODE_RATE
        ctx.layout = _layout(channels)
        self._ctx = ctx
        self._resampler = (
            None
            if sample_rate == DECODE_RATE
            else av.AudioResampler(format="s16", layout=_layout(channels), rate=sample_rate)
        )

    def decode(self, packet: bytes) -> bytes:
        """Decode one packet; any frame duration the sender chose is accepted."""
        if not packet:
            # An empty packet would put the codec into drain mode for good.
            raise ValueError("empty Opus packet")
        try:
            frames = self._ctx.decode(av.Packet(packet))
        except av.error.FFmpegError as exc:
            raise ValueError(f"invalid Opus packet: {exc}") from exc
        out = b""
        for frame in frames:
            if frame.format.name != "s16" or frame.layout.nb_channels != self.channels:
                raise ValueError(f"unexpected decoder output {frame.format.name}/{frame.layout}")
            if self._resampler is None:
                out += bytes(frame.planes[0])[: frame.samples * self.channels * 2]
            else:
                for converted in self._resampler.resample(frame):
                    out += bytes(converted.planes[0])[: converted.samples * self.channels * 2]
        return out
