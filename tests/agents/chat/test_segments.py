"""SMS segment counting against the 3GPP sizes (160/153 septets, 70/67 UCS-2 code units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.chat.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments, encoding_of


@pytest.mark.parametrize("text, expected", [
    ("", (1, "GSM-7")),
    ("a" * 160, (1, "GSM-7")),
    ("a" * 161, (2, "GSM-7")),
    ("a" * 306, (2, "GSM-7")),
    ("a" * 307, (3, "GSM-7")),
    ("a" * 459, (3, "GSM-7")),
    ("€" * 80, (1, "GSM-7")),         # extension: 2 septets each → 160
    ("€" * 81, (2, "GSM-7")),
    ("a" * 159 + "€", (2, "GSM-7")),  # 161 septets
    ("a" * 152 + "[" + "a" * 10, (2, "GSM-7")),  # "[" never split across parts
    ("é" * 160, (1, "GSM-7")),        # é is in the basic table
    ("ç", (1, "UCS-2")),              # only Ç (capital) is GSM
    ("a" * 70, (1, "GSM-7")),
    ("a" * 69 + "😀", (2, "UCS-2")),   # the emoji makes it UCS-2 and costs 2 units: 71
    ("a" * 68 + "😀", (1, "UCS-2")),   # exactly 70 units
    ("😀" * 35, (1, "UCS-2")),
    ("😀" * 36, (2, "UCS-2")),
    ("ä" * 70 + "ł", (2, "UCS-2")),
    ("ł" * 134, (2, "UCS-2")),
    ("ł" * 135, (3, "UCS-2")),
])
def test_known_values(text: str, expected: tuple[int, str]) -> None:
    assert count_segments(text) == expected


def test_surrogate_pair_is_not_split_between_parts() -> None:
    # 134 units would fill two 67-unit parts exactly, but the emoji after 66 units does
    # not fit in part 1 and moves whole to part 2, so a third part is needed.
    assert count_segments("ł" * 66 + "😀" + "ł" * 66) == (3, "UCS-2")
    assert count_segments("ł" * 66 + "😀" + "ł" * 65) == (2, "UCS-2")
    # Likewise an extension character (2 septets) after 152 septets.
    assert count_segments("a" * 152 + "€" + "a" * 152) == (3, "GSM-7")


def test_tables_have_the_standard_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points minus the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@given(st.text(max_size=800))
def test_segments_bound_the_text(text: str) -> None:
    segments, encoding = count_segments(text)
    assert encoding == encoding_of(text)
    if encoding == "GSM-7":
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        assert segments == 1 if septets <= 160 else segments >= -(-septets // 153)
    else:
        units = len(text.encode("utf-16-le")) // 2
        assert segments == 1 if units <= 70 else segments >= -(-units // 67)
        assert segments <= max(1, units)
