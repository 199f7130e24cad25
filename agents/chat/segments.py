"""How many SMS segments a text costs, and in which encoding.

Carriers bill and rate-limit per segment, so the agent reports the count it will
cause. The alphabet tables are 3GPP TS 23.038 §6.2.1 (GSM 7-bit default alphabet)
and §6.2.1.1 (its extension table, reached by an ESC septet, so each extension
character costs two septets). Segment sizes are 3GPP TS 23.040: 140 octets of user
data = 160 septets or 70 UCS-2 code units; a concatenated message spends a 6-octet
user-data header per part, leaving 153 septets or 67 code units. A text with any
character outside both GSM tables is sent as UCS-2 (UTF-16), where a character
beyond the BMP (most emoji) takes a surrogate pair: two code units. An extension
character or a surrogate pair is never split across parts, as handsets reassemble
per part.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The escape septet (0x1B) is left out: it is how extension characters are sent, not text.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the basic or extension table, else UCS-2."""
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            return "UCS-2"
    return "GSM-7"


def _units(text: str, encoding: Encoding) -> list[int]:
    """Per character, what it costs: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> tuple[int, Encoding]:
    """(segments, encoding) for `text`; an empty text is still one (empty) message."""
    encoding = encoding_of(text)
    units = _units(text, encoding)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if sum(units) <= single:
        return 1, encoding
    segments, used = 1, 0
    for cost in units:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return segments, encoding
