"""Opus round trips on real speech: lossy, but recognisably the same signal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs.opus import OpusDecoder, OpusEncoder
from media.resample import resample
from tests.audio import silence_pcm, speech_pcm


@pytest.fixture(scope="module")
def speech8k() -> bytes:
    return speech_pcm()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def round_trip(pcm16: bytes, sample_rate: int, channels: int, bitrate: int = 32000):
    encoder = OpusEncoder(sample_rate, channels, bitrate=bitrate)
    decoder = OpusDecoder(sample_rate, channels)
    frames = split(pcm16, encoder.frame_bytes)
    packets = [encoder.encode(f) for f in frames]
    decoded = [decoder.decode(p) for p in packets]
    return b"".join(frames), packets, decoded


def aligned_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int):
    """Best correlation over codec delays 0..max_lag, and that delay."""
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        n = min(len(reference), len(decoded) - lag)
        c = float(np.corrcoef(reference[:n], decoded[lag : lag + n])[0, 1])
        best = max(best, (c, lag))
    return best


@pytest.mark.parametrize(
    ("sample_rate", "channels"), [(48000, 1), (16000, 1), (8000, 1), (48000, 2)]
)
def test_speech_round_trip(speech8k: bytes, sample_rate: int, channels: int) -> None:
    mono = np.frombuffer(resample(speech8k, 8000, sample_rate), dtype=np.int16)
    signal = np.repeat(mono, channels) if channels == 2 else mono
    sent, packets, decoded = round_trip(signal.tobytes(), sample_rate, channels)

    # One packet per 20 ms frame, at about the bitrate asked for.
    assert all(packets)
    assert len(packets) == len(sent) // (sample_rate // 50 * channels * 2)
    bits_per_second = sum(map(len, packets)) * 8 / (len(packets) * 0.02)
    assert 0.5 * 32000 < bits_per_second < 1.5 * 32000

    ref = np.frombuffer(sent, dtype=np.int16).astype(np.float64)[::channels]
    out = np.frombuffer(b"".join(decoded), dtype=np.int16).astype(np.float64)[::channels]
    # Total output equals input, give or take the resampler's couple of ms.
    assert len(ref) - sample_rate // 200 <= len(out) <= len(ref)
    # Opus looks ahead 6.5 ms; the encoder's delay is the lag that lines them up.
    corr, lag = aligned_correlation(ref, out, max_lag=sample_rate // 100)
    assert corr > 0.85
    assert 0 < lag <= sample_rate * 8 // 1000
    n = len(out) - lag
    energy = np.sqrt(np.mean(out[lag:] ** 2)) / np.sqrt(np.mean(ref[:n] ** 2))
    assert 0.7 < energy < 1.3


def test_decoded_frames_are_20ms_at_48k(speech8k: bytes) -> None:
    pcm48 = resample(speech8k, 8000, 48000)
    _, _, decoded = round_trip(pcm48, 48000, 1)
    assert {len(d) for d in decoded} == {960 * 2}


def test_stereo_keeps_channels_apart(speech8k: bytes) -> None:
    pcm48 = np.frombuffer(resample(speech8k, 8000, 48000), dtype=np.int16)
    stereo = np.stack([pcm48, np.zeros_like(pcm48)], axis=1).reshape(-1)
    _, _, decoded = round_trip(stereo.tobytes(), 48000, 2, bitrate=64000)
    out = np.frombuffer(b"".join(decoded), dtype=np.int16).reshape(-1, 2).astype(np.float64)
    left, right = np.sqrt(np.mean(out**2, axis=0))
    assert left > 20 * right


def test_silence_stays_silent() -> None:
    _, _, decoded = round_trip(silence_pcm(1000) * 6, 48000, 1)  # 1 s at 48 kHz
    out = np.frombuffer(b"".join(decoded), dtype=np.int16)
    assert np.max(np.abs(out)) < 8


def test_bitrate_controls_size(speech8k: bytes) -> None:
    pcm48 = resample(speech8k, 8000, 48000)
    _, low, _ = round_trip(pcm48, 48000, 1, bitrate=12000)
    _, high, _ = round_trip(pcm48, 48000, 1, bitrate=64000)
    assert sum(map(len, high)) > 2.5 * sum(map(len, low))


@pytest.mark.parametrize("size", [0, 958, 962, 3840, 1])
def test_wrong_frame_size_is_rejected(size: int) -> None:
    with pytest.raises(ValueError):
        OpusEncoder(48000, 1).encode(bytes(size))


@pytest.mark.parametrize(("rate", "channels"), [(44100, 1), (22050, 1), (48000, 3), (8000, 0)])
def test_bad_configuration_is_rejected(rate: int, channels: int) -> None:
    with pytest.raises(ValueError):
        OpusEncoder(rate, channels)
    with pytest.raises(ValueError):
        OpusDecoder(rate, channels)


@pytest.mark.parametrize("bitrate", [0, 5999, 600_000])
def test_bad_bitrate_is_rejected(bitrate: int) -> None:
    with pytest.raises(ValueError):
        OpusEncoder(bitrate=bitrate)


def test_empty_packet_is_rejected_and_decoder_survives(speech8k: bytes) -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    frame = resample(speech8k, 8000, 48000)[: encoder.frame_bytes]
    with pytest.raises(ValueError):
        decoder.decode(b"")
    assert len(decoder.decode(encoder.encode(frame))) == encoder.frame_bytes


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_garbage_packets_raise_value_error_or_decode(packet: bytes) -> None:
    # A peer can send anything: the decoder either decodes it (Opus packets
    # have little redundancy) or raises ValueError, and stays usable.
    decoder = OpusDecoder(48000, 1)
    try:
        out = decoder.decode(packet)
    except ValueError:
        pass
    else:
        assert len(out) % 2 == 0
        assert len(out) <= 120 * 48 * 2  # Opus packets hold at most 120 ms
    encoder = OpusEncoder(48000, 1)
    assert len(decoder.decode(encoder.encode(bytes(encoder.frame_bytes)))) == 1920
