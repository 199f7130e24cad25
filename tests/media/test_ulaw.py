"""G.711 μ-law against the standard's own segment formula, not against audioop.

G.711 defines μ-law on 14-bit linear samples: bias 33, eight segments whose
step doubles each time, four mantissa bits, all bits inverted on the wire.
Our PCM16 maps onto that 14-bit scale by dropping the two low bits (an
arithmetic shift) on encode and restoring them on decode (×4), so the
reference below is written from the formula and compared exhaustively.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.codecs import ulaw

BIAS14 = 33
CLIP14 = 8159  # largest magnitude before the last segment saturates


def ref_encode(sample: int) -> int:
    """One PCM16 sample → μ-law code by G.711's segment formula (14-bit domain)."""
    s14 = sample >> 2
    sign = 0x80 if s14 < 0 else 0x00
    magnitude = min(-s14 if s14 < 0 else s14, CLIP14) + BIAS14
    segment = magnitude.bit_length() - 6  # 33..63 → 0, 64..127 → 1, ...
    if segment > 7:
        code = sign | 0x7F  # saturate
    else:
        mantissa = (magnitude >> (segment + 1)) & 0x0F
        code = sign | (segment << 4) | mantissa
    return code ^ 0xFF


def ref_decode(code: int) -> int:
    """μ-law code → PCM16 reconstruction value (14-bit value × 4)."""
    code ^= 0xFF
    segment = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude14 = (((mantissa << 1) + BIAS14) << segment) - BIAS14
    value = magnitude14 * 4
    return -value if code & 0x80 else value


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples_of(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0x00, -32124),
        (0x80, 32124),
        (0xFF, 0),
        (0x7F, 0),
        (0x7E, -8),
        (0xFE, 8),
        (0xEF, 132),
        (0x70, -120),
        (0x8F, 16764),
        (0x0F, -16764),
    ],
)
def test_decode_reference_points(code: int, value: int) -> None:
    assert ref_decode(code) == value
    assert samples_of(ulaw.decode(bytes([code]))) == [value]


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xFF),
        (32767, 0x80),
        (-32768, 0x00),
        (32124, 0x80),
        (-32124, 0x00),
        (4, 0xFE),
        (8, 0xFE),
        (-1, 0x7E),
        (132, 0xEF),
    ],
)
def test_encode_reference_points(sample: int, code: int) -> None:
    assert ref_encode(sample) == code
    assert ulaw.encode(pcm(sample)) == bytes([code])


def test_decode_table_matches_formula() -> None:
    all_codes = bytes(range(256))
    assert samples_of(ulaw.decode(all_codes)) == [ref_decode(c) for c in range(256)]


def test_encode_matches_formula_for_every_int16() -> None:
    every = list(range(-32768, 32768))
    assert list(ulaw.encode(pcm(*every))) == [ref_encode(s) for s in every]


def test_reconstruction_values_are_fixed_points() -> None:
    # Every code but negative zero (0x7F) survives decode → encode unchanged.
    codes = [c for c in range(256) if c != 0x7F]
    decoded = ulaw.decode(bytes(codes))
    assert list(ulaw.encode(decoded)) == codes
    assert ulaw.encode(ulaw.decode(b"\x7f")) == b"\xff"


def test_encode_is_monotonic() -> None:
    every = list(range(-32768, 32768, 3))
    values = samples_of(ulaw.decode(ulaw.encode(pcm(*every))))
    assert values == sorted(values)


def _max_error(sample: int) -> int:
    """Half a quantisation step of the sample's segment, plus the dropped low bits."""
    magnitude = min(abs(sample) // 4 + 1, CLIP14) + BIAS14
    segment = min(magnitude.bit_length() - 6, 7)
    half_step = 4 << segment  # step is 2^(segment+1) in 14-bit units, ×4 for PCM16
    if abs(sample) > 32124:
        return abs(sample) - 32124 + half_step
    return half_step + 4


@given(st.integers(min_value=-32768, max_value=32767))
def test_round_trip_error_is_bounded(sample: int) -> None:
    (back,) = samples_of(ulaw.decode(ulaw.encode(pcm(sample))))
    assert abs(back - sample) <= _max_error(sample)
    assert (back > 0) <= (sample > 0) and (back < 0) <= (sample < 0)


@given(st.lists(st.integers(min_value=-32768, max_value=32767), max_size=400))
def test_lengths(samples: list[int]) -> None:
    encoded = ulaw.encode(pcm(*samples))
    assert len(encoded) == len(samples)
    assert len(ulaw.decode(encoded)) == 2 * len(samples)


def test_odd_trailing_byte_is_dropped() -> None:
    assert ulaw.encode(pcm(1000, -1000) + b"\x01") == ulaw.encode(pcm(1000, -1000))
    assert ulaw.encode(b"") == b""
    assert ulaw.decode(b"") == b""


def test_silent_frame_and_rms() -> None:
    assert ulaw.decode(ulaw.SILENT_FRAME) == bytes(2 * ulaw.FRAME_SAMPLES)
    assert len(ulaw.SILENT_FRAME) == ulaw.FRAME_BYTES == 160
    assert ulaw.rms(pcm(0, 0, 0, 0)) == 0
    assert ulaw.rms(pcm(300, -300, 300, -300)) == 300
