"""The layout of a results file: our column names, where they are, which hold numbers.

Why one module: the send pass writes a results file, the status pass fills
in its status columns, the report reads both, and a resumed send carries the
statuses over — four readers and writers that must agree on every name, on
how a name the input already uses is suffixed, and on which cells are
numbers.  Here that layout is written down once; the modules that write or
read a results file ask this one.

It knows nothing of sending or of Mobizon: only names, positions and cells.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

#: The result columns of a results file, in order (see the design).
RESULT_COLUMNS = (
    "recipient",
    "send_status",
    "message_id",
    "campaign_id",
    "text_sent",
    "segments",
    "error_code",
    "error",
    "sent_at",
)
#: The columns the status pass adds after the result columns, in order.
STATUS_COLUMNS = (
    "status",
    "status_final",
    "seg_num",
    "start_send_ts",
    "status_update_ts",
    "status_checked_at",
)
#: The one column the status pass needs: any table with it can be refreshed.
MESSAGE_ID_COLUMN = "message_id"
#: Columns of a results file that hold whole numbers (see ``with_integer_cells``).
INTEGER_COLUMNS = ("message_id", "campaign_id", "segments", "error_code", "seg_num")
#: Columns of a results file that hold TRUE or FALSE (booleans in a workbook).
BOOLEAN_COLUMNS = ("status_final",)
#: Suffix for a result column whose name an input column already has.
CLASH_SUFFIX = "_result"

# Ids above this are not Mobizon ids (and would overflow the API's integers).
_MAX_ID = 2**63 - 1


# ------------------------------------------------------------------- names


def result_column_names(
    input_columns: Iterable[str], wanted: Sequence[str] = RESULT_COLUMNS
) -> dict[str, str]:
    """Output name for each result column: its own, unless the input has it.

    Input columns are kept verbatim, so a result column whose name is taken
    (``recipient`` is a common phone column name) gets ``_result`` appended
    (then ``_result2``, ``_result3``… should that be taken too).
    """
    taken = set(input_columns)
    names: dict[str, str] = {}
    for name in wanted:
        names[name] = free_name(name, taken)
        taken.add(names[name])
    return names


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or the way out of a clash: ``name_result``, ``name_result2``…"""
    candidate, copy = name, 1
    while candidate in taken:
        candidate = f"{name}{CLASH_SUFFIX}" + (str(copy) if copy > 1 else "")
        copy += 1
    return candidate


def locate_columns(columns: Iterable[Any]) -> dict[str, str]:
    """Our columns in a table: design name → the name the column has (or will get) there.

    Why not just look names up: the send pass keeps the input's columns
    verbatim and gives a result column whose name the input already uses a
    suffix (``recipient_result``; ``recipient`` is a common name for a phone
    column).  So in a results file — a table with a ``send_status`` column —
    ours are the result block (the last ``send_status``, the ``recipient``
    before it and the result columns after it) and the status columns after
    that block; a ``status`` column among the input's own is the user's and
    is never written to: the pass appends ``status_result`` instead.  In any
    other table (a list export, someone's spreadsheet) names are taken as
    they are.

    Every name of ``RESULT_COLUMNS`` found is in the answer; the status
    columns always are (absent ones with the name to append them under).
    """
    names = [str(c) for c in columns]
    found: dict[str, str] = {}
    sends = [i for i, name in enumerate(names) if _is_variant(name, "send_status")]
    first_ours = 0
    if sends:
        first_ours = sends[-1]
        if first_ours and _is_variant(names[first_ours - 1], "recipient"):
            first_ours -= 1
        position = first_ours
        for canonical in RESULT_COLUMNS:
            match = next(
                (i for i in range(position, len(names)) if _is_variant(names[i], canonical)), None
            )
            if match is not None:
                found[canonical] = names[match]
                position = match + 1
    else:
        for canonical in RESULT_COLUMNS:
            if canonical in names:
                found[canonical] = canonical
    taken = set(names)
    for canonical in STATUS_COLUMNS:
        if sends:
            present = next((n for n in names[first_ours:] if _is_variant(n, canonical)), None)
        else:
            present = canonical if canonical in names else None
        if present is None:
            present = free_name(canonical, taken)
            taken.add(present)
        found[canonical] = present
    return found


def _is_variant(name: str, canonical: str) -> bool:
    """``name`` is ``canonical`` or ``canonical`` with the send pass's clash suffix."""
    if name == canonical:
        return True
    rest = name.removeprefix(canonical + CLASH_SUFFIX)
    return rest != name and (rest == "" or rest.isdigit())


def ensure_status_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Append the status columns that ``frame`` lacks, in the design's order.

    Columns already present stay where they are (they are updated in place).
    Returns ``locate_columns`` of the result.
    """
    names = locate_columns(frame.columns)
    for canonical in STATUS_COLUMNS:
        if names[canonical] not in frame.columns:
            frame[names[canonical]] = ""
    return names


# ------------------------------------------------------------------- cells


def is_blank(cell: Any) -> bool:
    """An empty cell: None, NaN, or only whitespace."""
    if cell is None:
        return True
    if isinstance(cell, str):
        return not cell.strip()
    try:
        return bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def parse_message_id(cell: Any) -> int | None:
    """A message id from a cell as spreadsheets deliver it, else None.

    Accepted: ``41000001``, ``41000001.0`` and ``4.1000001E7`` (a number that
    went through Excel or a float column), ``41000001,0`` (a decimal comma),
    ``41 000 001`` (grouped digits, also with no-break spaces) and a leading
    apostrophe (Excel's "this is text" mark).  Anything that is not a
    positive whole number is not an id.
    """
    if isinstance(cell, str) and cell.isascii() and cell.isdigit():
        value = int(cell)  # the common case, fast: a 100,000-row file is all this
        return value if 0 < value <= _MAX_ID else None
    if isinstance(cell, bool) or is_blank(cell):
        return None
    if isinstance(cell, int):
        number = Decimal(cell)
    elif isinstance(cell, float):
        if not math.isfinite(cell):
            return None
        number = Decimal(repr(cell))
    else:
        text = str(cell).strip().lstrip("'")
        for space in (" ", "\u00a0", "\u202f", "\u2009"):
            text = text.replace(space, "")
        head, comma, tail = text.partition(",")
        if comma and tail and set(tail) == {"0"}:
            text = head
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    value = int(number)
    return value if 0 < value <= _MAX_ID else None


def with_integer_cells(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A shallow copy of ``frame`` whose whole-number cells in ``columns`` are ints.

    ``status_final`` cells ``TRUE``/``FALSE`` become booleans as well.

    ``columns`` defaults to our ``INTEGER_COLUMNS``, wherever ``locate_columns``
    finds them.

    Why: the status pass works on text (as ``read_table`` gives it), but ids,
    counts and codes are numbers in the results file the send pass wrote;
    written back as text they would turn into text cells in a workbook.  Only
    cells that are exactly an integer's digits change (``007`` stays text),
    so anything else in those columns is written back as it was.
    """
    if columns is None:
        located = locate_columns(frame.columns)
        columns = [located[name] for name in INTEGER_COLUMNS if name in located]
    out = frame.copy(deep=False)
    for name in columns:
        if name in out.columns:
            out[name] = pd.Series(
                [_as_integer(cell) for cell in out[name].tolist()], index=out.index, dtype=object
            )
    located = locate_columns(out.columns)
    for canonical in BOOLEAN_COLUMNS:
        found = located.get(canonical)
        if found is not None and found in out.columns:
            out[found] = pd.Series(
                [_as_boolean(cell) for cell in out[found].tolist()], index=out.index, dtype=object
            )
    return out


def _as_boolean(cell: Any) -> Any:
    """``TRUE``/``FALSE`` (as the status pass writes them) → a boolean; anything else as is."""
    if isinstance(cell, str) and cell.strip().upper() in ("TRUE", "FALSE"):
        return cell.strip().upper() == "TRUE"
    return cell


def _as_integer(cell: Any) -> Any:
    if isinstance(cell, str) and cell.isascii() and cell.isdigit() and str(int(cell)) == cell:
        return int(cell)
    return cell
