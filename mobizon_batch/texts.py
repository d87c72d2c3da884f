"""SMS texts: GSM-7 / UCS-2 detection and segment counting.

Why count segments ourselves: Mobizon bills per segment, and a list whose
texts silently switched to UCS-2 (one Cyrillic letter or emoji does it) costs
two or three times what the sender expected.  The estimate is shown before
anything is sent, and ``--max-segments`` turns runaway texts into invalid rows.

The rules (3GPP TS 23.038, as the API notes summarise them):
GSM-7 fits 160 septets in one segment and 153 per segment when split; the
extension characters take two septets each and are never split across
segments.  Anything outside GSM-7 makes the whole message UCS-2: 70 UTF-16
code units in one segment, 67 per segment when split, and a surrogate pair
(an emoji) is never split either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet, without ESC (0x1B), which only introduces
# an extension character and is not a character a text may contain.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters reached through the escape: each costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a text will travel: its encoding, its length in units, its segments."""

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character has a GSM-7 encoding (basic or extension)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def count_segments(text: str) -> SegmentInfo:
    """Encoding, length in septets (GSM-7) or UTF-16 units (UCS-2), and segments.

    An empty text has zero segments; callers treat it as invalid.
    """
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SegmentInfo("GSM-7", sum(sizes), _pack(sizes, GSM7_SINGLE, GSM7_PART))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo("UCS-2", sum(sizes), _pack(sizes, UCS2_SINGLE, UCS2_PART))


def _pack(sizes: list[int], single: int, part: int) -> int:
    """Segments needed for characters of these unit sizes, none split in two."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return segments
