"""Checks of a row that look at its text as people wrote it, not at its syntax.

Why apart from ``prepare``: each answers a question the file's format cannot
— were letters lost when the file was saved, is this row a totals line of a
CRM export, would a few typographic characters make a text cost double —
and each is a small rule with its own reasons to exist, tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mobizon_batch.errors import InputError
from mobizon_batch.table import InputTable
from mobizon_batch.texts import count_segments, is_gsm7, joined_blocks

REASON_LOST_LETTERS = (
    "letters were lost when the file was saved (they show as ?): its encoding has no "
    "such letters. Save the list as CSV UTF-8 (Excel: File → Save As → CSV UTF-8) or "
    "as .xlsx and try again"
)
REASON_TOTALS = "a totals row, not a recipient"
# No "; " in these sentences: it separates a row's reasons (plansummary.REASON_SEPARATOR).
REASON_UNSAVED_FORMULA = (
    "the {what} is a formula whose value was never saved: open the file in Excel, "
    "save it, and try again"
)

# A "?" where a letter was: inside a Cyrillic word (Г?лн?р, ?лкен), or U+FFFD
# (a byte no decoder could read).  A "?" after a Latin word is left alone:
# a link's query (site.kz/a?id=1) or a sentence end without a space.
_LOST = re.compile(r"[А-Яа-яЁё]\?+[А-Яа-яЁё]|[А-Яа-яЁё]\?+[^\W\d_]|(?:^|\s)\?+[а-яё]{2,}|\ufffd")
_TOTALS_WORDS = ("итого", "всего", "total", "totals", "барлығы", "жиыны", "сумма итого")


def lost_letters(text: str) -> bool:
    """True when letters of ``text`` were replaced by ``?`` (or U+FFFD) on the way."""
    return ("?" in text or "\ufffd" in text) and _LOST.search(text) is not None


def is_totals_row(cells: Sequence[str]) -> bool:
    """True when the row's first value starts with a totals word (Итого, Total…)."""
    first = next((cell.strip() for cell in cells if cell.strip()), "")
    key = first.casefold().lstrip("*# ")
    return any(key.startswith(word) for word in _TOTALS_WORDS)


# Typographic characters that make a text UCS-2, and the GSM-7 character
# that says the same.
LOOKALIKES = {
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",  # thin space
    "«": '"',
    "»": '"',
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
    "\u2026": "...",
}
_LOOKALIKE_TABLE = str.maketrans(LOOKALIKES)
#: finds a text with any of them far faster than translating it (most texts have none)
_ANY_LOOKALIKE = re.compile("[" + re.escape("".join(LOOKALIKES)) + "]")
#: how to name a character that cannot be seen
INVISIBLE_NAMES = {
    "\u00a0": "no-break space",
    "\u202f": "narrow no-break space",
    "\u2009": "thin space",
}


@dataclass(frozen=True)
class LookalikeSaving:
    """What replacing typographic characters would save: rows, segments, the characters."""

    rows: int
    segments: int
    characters: tuple[str, ...]


def lookalike_saving(texts: Sequence[str], counts: Sequence[int]) -> LookalikeSaving:
    """Rows that only a few typographic characters make UCS-2, and the segments they cost.

    ``texts`` are distinct sendable texts and ``counts`` how many rows have
    each.  A text counts when it is not GSM-7 as it is but would be with
    each character of ``LOOKALIKES`` replaced.
    """
    rows = segments = 0
    seen: set[str] = set()
    for text, count in zip(texts, counts, strict=True):
        if _ANY_LOOKALIKE.search(text) is None or is_gsm7(text):
            continue
        plain = text.translate(_LOOKALIKE_TABLE)
        if plain == text or not is_gsm7(plain):
            continue
        saved = count_segments(text).segments - count_segments(plain).segments
        if saved > 0:
            rows += count
            segments += saved * count
            seen.update(ch for ch in text if ch in LOOKALIKES)
    return LookalikeSaving(rows, segments, tuple(sorted(seen)))


def with_lookalikes(texts: list[str]) -> list[str]:
    """The texts holding a character of ``LOOKALIKES``.

    Most lists hold none: looking for each character in all the texts
    joined (a plain substring search) says so in a few passes at C speed,
    faster than one regular-expression search over the same text.
    """
    if not any(character in block for block in joined_blocks(texts) for character in LOOKALIKES):
        return []
    return [text for text in texts if _ANY_LOOKALIKE.search(text) is not None]


def refuse_repeated(table: InputTable, column: str, flag: str) -> None:
    """A column whose name the header repeats: picking the first would be a guess."""
    for name, copies in table.repeated.items():
        if column in copies and (column == name or flag == "the template placeholder"):
            listed = ", ".join(repr(c) for c in copies)
            raise InputError(
                f"the header of {table.path.name} names {len(copies)} columns {name!r}: "
                f"rename all but one in the file, or pick one by its name here ({listed}) "
                f"with {flag if flag.startswith('--') else '--phone-column / --text-column'}"
            )


def totals_rows(frame: pd.DataFrame, phone_reasons: list[str]) -> set[int]:
    """Rows without a usable number whose first value is a totals word (Итого…)."""
    bad = [position for position, reason in enumerate(phone_reasons) if reason]
    if not bad:
        return set()
    cells = frame.iloc[bad]
    return {
        position
        for position, values in zip(bad, cells.itertuples(index=False, name=None), strict=True)
        if is_totals_row(values)
    }


def unsaved_cells(
    table: InputTable, phone_column: str, text_columns: list[str]
) -> dict[int, list[str]]:
    """Rows whose number or text is a formula Excel never computed, with the sentence."""
    found: dict[int, list[str]] = {}
    for position, columns in table.unsaved.items():
        sentences = []
        if phone_column in columns:
            sentences.append(REASON_UNSAVED_FORMULA.format(what=f"number ({phone_column})"))
        for name in text_columns:
            if name in columns:
                sentences.append(REASON_UNSAVED_FORMULA.format(what=f"text ({name})"))
        if sentences:
            found[position] = sentences
    return found
