"""SMS texts: templates, GSM-7 / UCS-2 detection and segment counting.

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

Templates live here too because a template is nothing but a way to make a
text: ``parse_template`` checks the syntax once, before any row is read, and
``prepare`` fills the placeholders column by column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mobizon_batch.errors import ConfigError

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet, without ESC (0x1B), which only introduces
# an extension character and is not a character a text may contain.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters reached through the escape: each costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

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
    return GSM7_ALL.issuperset(text)


def count_segments(text: str) -> SegmentInfo:
    """Encoding, length in septets (GSM-7) or UTF-16 units (UCS-2), and segments.

    An empty text has zero segments; callers treat it as invalid.  Called once
    per distinct text of a list (a million of them in the benchmark), so the
    common cases are done with C-speed string methods and the exact packing
    loop only runs when a character that may not be split sits in a long text.
    """
    if GSM7_ALL.issuperset(text):
        escapes = sum(map(text.count, GSM7_EXTENSION))
        units = len(text) + escapes
        if units <= GSM7_SINGLE:
            return SegmentInfo("GSM-7", units, 1 if units else 0)
        if not escapes:
            return SegmentInfo("GSM-7", units, math.ceil(units / GSM7_PART))
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SegmentInfo("GSM-7", units, _pack(sizes, GSM7_SINGLE, GSM7_PART))
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units <= UCS2_SINGLE:
        return SegmentInfo("UCS-2", units, 1)
    if units == len(text):
        return SegmentInfo("UCS-2", units, math.ceil(units / UCS2_PART))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo("UCS-2", units, _pack(sizes, UCS2_SINGLE, UCS2_PART))


def count_segments_many(
    texts: Sequence[str],
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.object_]]]:
    """Segments and encodings (``""`` for an empty text) of many texts at once.

    The same answers as ``count_segments`` text by text, but the common
    cases — GSM-7 without extension characters, UCS-2 without emoji — are
    worked out for all texts together (one C-level pass each); only the
    texts that need the exact packing loop go through ``count_segments``.
    """
    count = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=count)
    basic = np.fromiter(map(GSM7_BASIC.issuperset, texts), dtype=bool, count=count)
    segments = np.where(lengths <= GSM7_SINGLE, 1, -(-lengths // GSM7_PART))
    segments[lengths == 0] = 0
    # Filled by assignment, not np.where: each cell then refers to one shared
    # string instead of a new copy per text (tens of megabytes on a big list).
    encodings = np.empty(count, dtype=object)
    encodings[:] = "UCS-2"
    encodings[basic] = "GSM-7"
    encodings[lengths == 0] = ""
    others = np.flatnonzero(~basic)
    if len(others):
        values = np.empty(count, dtype=object)
        values[:] = texts
        plain_ucs2 = others[~_astral(values[others].tolist())]
        gsm = np.fromiter(map(GSM7_ALL.issuperset, values[plain_ucs2]), bool, len(plain_ucs2))
        plain_ucs2 = plain_ucs2[~gsm]
        size = lengths[plain_ucs2]
        segments[plain_ucs2] = np.where(size <= UCS2_SINGLE, 1, -(-size // UCS2_PART))
        exact = np.setdiff1d(others, plain_ucs2, assume_unique=True)
        for position in exact.tolist():
            info = count_segments(texts[position])
            segments[position] = info.segments
            encodings[position] = info.encoding if info.units else ""
    return segments.astype(np.int64), encodings


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_JOIN_BLOCK = 50_000


def joined_blocks(texts: Sequence[str]) -> Iterator[str]:
    """The texts joined, a block of them at a time.

    Why: asking whether *any* text holds a character is one C-level search
    of the joined text, where most lists then need no look at each text; in
    blocks, so that a big list is never copied whole.
    """
    for start in range(0, len(texts), _JOIN_BLOCK):
        yield "".join(texts[start : start + _JOIN_BLOCK])


def _astral(texts: list[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which texts hold a character beyond U+FFFF (an emoji: two UCS-2 units).

    Most lists have none, and encoding the joined texts says so (such a
    character takes two UTF-16 units, any other one); only then is each
    text searched.
    """
    if all(
        len(block.encode("utf-16-le", "surrogatepass")) == 2 * len(block)
        for block in joined_blocks(texts)
    ):
        return np.zeros(len(texts), dtype=bool)
    return np.fromiter(map(bool, map(_ASTRAL.search, texts)), dtype=bool, count=len(texts))


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


# ------------------------------------------------------------------ templates

_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True, slots=True)
class Template:
    """A text with ``{column}`` placeholders, already checked for syntax.

    ``literals`` has one more item than ``fields``: the text is
    ``literals[0] + value(fields[0]) + literals[1] + ...``.  ``{{`` and ``}}``
    stand for literal braces, as in Python's ``str.format``; anything inside
    single braces is a column name (spaces around it ignored), so names with
    spaces, dots or Cyrillic letters work: ``{Имя клиента}``.
    """

    source: str
    literals: tuple[str, ...]
    fields: tuple[str, ...]

    def render(self, values: Mapping[str, str]) -> str:
        """The text for one row; ``values`` maps each field to its cell."""
        parts = [self.literals[0]]
        for field, literal in zip(self.fields, self.literals[1:], strict=True):
            parts.append(values[field])
            parts.append(literal)
        return "".join(parts)


def parse_template(source: str) -> Template:
    """Split a template into literal text and placeholders, or raise ConfigError.

    Why strict: a template is typed once by a person and then used for
    thousands of messages, so a stray brace is far more likely a typo than
    an intended character, and it is cheap to write ``{{`` for the latter.
    """
    if not source.strip():
        raise ConfigError("the template is empty: give a text such as --template 'Hello {name}'")
    literals: list[str] = []
    fields: list[str] = []
    current: list[str] = []
    position = 0
    for match in _TEMPLATE_TOKEN.finditer(source):
        current.append(source[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            current.append(token[0])
        elif token in ("{", "}"):
            raise ConfigError(
                f"the template has an unmatched {token!r} at character {match.start() + 1}: "
                f"write {token * 2!r} for a literal brace"
            )
        else:
            name = (match.group(1) or "").strip()
            if not name:
                raise ConfigError(
                    f"the template has an empty placeholder '{{}}' at character "
                    f"{match.start() + 1}: put a column name inside, such as {{name}}"
                )
            literals.append("".join(current))
            current = []
            fields.append(name)
    current.append(source[position:])
    literals.append("".join(current))
    return Template(source, tuple(literals), tuple(fields))
