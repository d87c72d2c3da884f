"""The table a list is read into, and how one is built from raw rows.

Why apart from the readers: CSV and XLSX rows end up in the same shape —
text columns, empty rows dropped, ragged rows evened out, blank and
repeated names made unique, each row's source line kept — and those rules
must be the same whichever reader produced the rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mobizon_batch.errors import InputError

Format = Literal["csv", "xlsx"]
SPAN_LIMIT = 20  # a record over more lines than this is most likely an unmatched quote
#: how many non-empty records at the top may come before the header (titles, notes)
HEADER_SCAN = 30
#: a header check: does this record name the columns?
HeaderCheck = Callable[[Sequence[str]], bool]
#: a column's cells: a tuple from the row readers, an object array from the C reader
Cells = Sequence[str] | np.ndarray[Any, np.dtype[np.object_]]


@dataclass(frozen=True, eq=False)
class InputTable:
    """A list as read: text columns, and where each row came from.

    ``frame`` has one ``str`` column per input column, in the input's order
    and with its names (trimmed); missing cells are ``""``.  Fully empty
    rows are gone, so ``source_lines[i]`` gives the line of the file (CSV,
    counting from 1 with the header) or the spreadsheet row (XLSX) that
    ``frame`` row ``i`` came from.  ``row_problems`` maps a row position to
    a sentence when the line itself was malformed (more fields than the
    header); ``prepare`` makes such rows invalid.
    """

    frame: pd.DataFrame
    source_lines: np.ndarray[Any, np.dtype[np.int64]]
    path: Path
    format: Format
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    row_problems: Mapping[int, str] = field(default_factory=dict)
    #: the header's line (CSV) or row (XLSX): rows above it (a title) were skipped
    header_line: int = 1
    #: for a workbook, the cells as Excel typed them (numbers, dates, booleans), else None
    typed: pd.DataFrame | None = None
    #: row position → columns whose cell is a formula Excel never saved a value for
    unsaved: Mapping[int, frozenset[str]] = field(default_factory=dict)
    #: a name the header repeats → the names its columns got (``phone``, ``phone (2)``)
    repeated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def typed_frame(self, text_columns: Iterable[str] = ()) -> pd.DataFrame:
        """``frame`` with a workbook's numbers, dates and booleans as Excel typed them.

        Text cells (and every cell of ``text_columns``: the phones) stay the
        text ``frame`` has; a CSV's table is ``frame`` itself.
        """
        if self.typed is None:
            return self.frame
        keep_text = set(text_columns)
        out = self.frame.copy(deep=False)
        for name in self.frame.columns:
            if name in keep_text or name not in self.typed.columns:
                continue
            values = self.typed[name].tolist()
            if all(v is None or isinstance(v, str) for v in values):
                continue
            texts = self.frame[name].tolist()
            out[name] = pd.Series(
                [v if _is_typed(v) else t for v, t in zip(values, texts, strict=True)],
                index=self.frame.index,
                dtype=object,
            )
        return out

    def describe(self) -> str:
        """``list.csv (CSV, UTF-8, delimiter ';')`` — for summaries and messages."""
        if self.format == "xlsx":
            return f"{self.path.name} (XLSX, sheet {self.sheet!r})"
        delimiter = "tab" if self.delimiter == "\t" else repr(self.delimiter)
        return f"{self.path.name} (CSV, {self.encoding}, delimiter {delimiter})"


def _is_typed(value: Any) -> bool:
    """A cell worth keeping as Excel typed it: a finite number, a date or time, a boolean."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | dt.date | dt.time)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small containers are made.

    Each row is a new list or tuple; without the pause the collector runs
    over the ever-growing heap again and again, which doubles the time to
    read a million rows.  Rows of strings form no cycles, so nothing is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def table_from_rows(
    source: Path,
    header: Sequence[Any],
    rows: list[list[str]],
    first_lines: np.ndarray[Any, Any],
    spans: np.ndarray[Any, Any] | None,
    *,
    fmt: Format,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    header_line: int = 1,
    typed_rows: list[list[Any]] | None = None,
    unsaved: Mapping[int, frozenset[int]] | None = None,
) -> InputTable:
    """Drop empty rows, even out ragged ones, name the columns, build the frame.

    ``typed_rows`` (a workbook's cells as typed, aligned with ``rows``) and
    ``unsaved`` (row position in ``rows`` → column positions of formulas
    without a saved value) are carried over to the kept rows.
    """
    names = header_names(header)
    width = len(names)
    keep: list[int] = []
    problems: dict[int, str] = {}
    ragged = False
    for position, row in enumerate(rows):
        if not any(row) or (not row[0].strip() and not "".join(row).strip()):
            continue  # a fully empty row (the first cell is checked first: it is cheap)
        if len(row) != width:
            ragged = True
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                problems[len(keep)] = (
                    f"the line has {len(row)} fields but the header has {width} "
                    f"(an unquoted {_delimiter_word(delimiter)} in a value?)"
                )
        if spans is not None and spans[position] > SPAN_LIMIT:
            problems[len(keep)] = (
                'a quote (") in this row is never closed, so it takes in the lines after it'
            )
        keep.append(position)
    if not keep:
        raise InputError(
            f"{source.name} has a header line but no data rows"
            if rows or names
            else f"{source.name} is empty: it needs a header line and at least one row"
        )
    if len(keep) != len(rows):
        rows = [rows[i] for i in keep]
    if ragged:
        rows = [r[:width] if len(r) >= width else r + [""] * (width - len(r)) for r in rows]
    lines = first_lines
    if len(keep) != len(first_lines):
        lines = first_lines[np.asarray(keep, dtype=np.int64)]
    columns: list[Cells] = list(zip(*rows, strict=True)) if width else []
    del rows
    return table_from_columns(
        source,
        names,
        columns,
        lines,
        problems,
        fmt=fmt,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        header_line=header_line,
        typed_rows=typed_rows,
        unsaved=unsaved,
        keep=keep,
    )


def header_names(header: Sequence[Any]) -> list[str]:
    """The header's cells as column names: trimmed, a stray byte-order mark removed."""
    return [str(h).replace("\ufeff", "").strip() for h in header]


def blank_rows(columns: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which rows have only empty or space-only cells, judged on whole columns.

    The rule ``table_from_rows`` applies row by row, for a reader that
    gives columns: the first cell is checked for every row (one C-level
    pass), the other cells only where the first one is blank.
    """
    if not columns:
        return np.zeros(0, dtype=bool)
    blank = _blank_cells(columns[0])
    candidates = np.flatnonzero(blank)
    for column in columns[1:]:
        if not len(candidates):
            break
        still = _blank_cells(column[candidates])
        blank[candidates[~still]] = False
        candidates = candidates[still]
    return blank


def _blank_cells(cells: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.fromiter(map(operator.not_, map(str.strip, cells)), dtype=bool, count=len(cells))


def table_from_columns(
    source: Path,
    names: list[str],
    columns: list[Cells],
    lines: np.ndarray[Any, Any],
    problems: dict[int, str],
    *,
    fmt: Format,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    header_line: int = 1,
    typed_rows: list[list[Any]] | None = None,
    unsaved: Mapping[int, frozenset[int]] | None = None,
    keep: list[int] | None = None,
    zero_bytes: bool = True,
) -> InputTable:
    """Name the columns and build the frame from rows already kept and evened out.

    ``names`` are the header's trimmed names, ``columns`` one sequence of
    cells per name (empty rows gone, every column as long as ``lines``),
    ``problems`` the kept rows' malformed-line sentences.  ``keep`` maps a
    kept row to its position among the rows ``typed_rows`` and ``unsaved``
    count (None: the same rows).  ``zero_bytes=False``: the reader knows no
    cell holds a NUL, so the columns need not be searched for one.
    """
    unique = _unique_names(names)
    if zero_bytes:
        _note_zero_bytes(columns, problems)
    data: dict[str, pd.Series] = {}
    for index, (name, values) in enumerate(zip(unique, columns, strict=True)):
        if not names[index] and not any(values):
            continue  # an unnamed, empty column: a trailing delimiter, not data
        data[name] = pd.Series(_shared(values), dtype="str")
    frame = pd.DataFrame(data)
    frame.index = pd.RangeIndex(len(frame))
    kept_positions = keep if keep is not None else list(range(len(lines)))
    typed = None
    if typed_rows is not None:
        typed = _typed_frame(typed_rows, kept_positions, unique, list(data), len(names))
    kept_unsaved: dict[int, frozenset[str]] = {}
    if unsaved:
        where = {position: kept for kept, position in enumerate(kept_positions)}
        for position, cells in unsaved.items():
            if position in where:
                kept_unsaved[where[position]] = frozenset(
                    unique[c] for c in cells if c < len(names) and unique[c] in data
                )
    repeated: dict[str, tuple[str, ...]] = {}
    for name in {n for n in names if n and names.count(n) > 1}:
        repeated[name] = tuple(u for n, u in zip(names, unique, strict=True) if n == name)
    return InputTable(
        frame=frame,
        source_lines=np.asarray(lines, dtype=np.int64),
        path=source,
        format=fmt,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        row_problems=problems,
        header_line=header_line,
        typed=typed,
        unsaved=kept_unsaved,
        repeated=repeated,
    )


def _typed_frame(
    typed_rows: list[list[Any]], keep: list[int], unique: list[str], kept: list[str], width: int
) -> pd.DataFrame:
    """The typed cells of the kept rows and columns (a gap is None)."""
    chosen = [typed_rows[i] for i in keep]
    even = [r[:width] if len(r) >= width else [*r, *([None] * (width - len(r)))] for r in chosen]
    columns = list(zip(*even, strict=True)) if width and even else [()] * width
    wanted = set(kept)
    data = {
        name: pd.Series(list(values), dtype=object)
        for name, values in zip(unique, columns, strict=True)
        if name in wanted
    }
    return pd.DataFrame(data, index=pd.RangeIndex(len(keep)))


def pick_header(
    candidates: Sequence[tuple[int, Sequence[str]]],
    header_row: int | None,
    looks_like_header: Callable[[Sequence[str]], bool] | None,
    source: Path,
) -> int:
    """Which of the first records is the header: its position in ``candidates``.

    ``candidates`` are ``(line, cells)`` of the first non-empty records.
    ``header_row`` (a line of the file, a row of the sheet) wins; else the
    first record ``looks_like_header`` accepts (the one whose phone or text
    column is recognised: CRM exports put a title and a blank row above
    it); else the first record, as a plain list has it.
    """
    if header_row is not None:
        for position, (line, _) in enumerate(candidates):
            if line == header_row:
                return position
        raise InputError(
            f"{source.name}: line {header_row} (--header-row) is empty or past the first "
            f"{len(candidates)} lines with values; give the line of the column names"
        )
    if looks_like_header is not None:
        for position, (_, cells) in enumerate(candidates):
            if looks_like_header(cells):
                return position
    return 0


def _shared(cells: Cells) -> np.ndarray[Any, np.dtype[np.object_]]:
    """A column's cells, a repeated value kept once (when the column repeats itself).

    The readers make a new string for every cell; a column of a few names
    or a template's fixed words then holds a million copies.  Sharing them
    (as pandas' own reader does) takes tens of megabytes off a big list.
    Cheap to skip: only a column whose first cells repeat is looked at.
    """
    values = np.array(cells, dtype=object)
    sample = cells[:2000]
    if len(set(sample)) > len(sample) // 2:
        return values
    seen: dict[str, str] = {}
    values[:] = list(map(seen.setdefault, cells, cells))
    return values


NUL_PROBLEM = (
    "the line holds a zero byte (NUL): the file was damaged or saved by a broken export "
    "(fix or remove the line)"
)


def _note_zero_bytes(columns: list[Cells], problems: dict[int, str]) -> None:
    """Make every row with a NUL in a cell invalid, naming why.

    Why not strip it: a NUL inside a number or a text means the line is not
    what its author wrote, and sending a guess is worse than sending nothing.
    Joining a column is cheap; rows are only looked at when a column has one.
    """
    for column in columns:
        if "\x00" not in "".join(column):
            continue
        for position, cell in enumerate(column):
            if "\x00" in cell:
                problems.setdefault(position, NUL_PROBLEM)


def _delimiter_word(delimiter: str | None) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
        delimiter or "", repr(delimiter)
    )


def _unique_names(names: Sequence[str]) -> list[str]:
    """Blank names become ``column N``; a repeated name gets `` (2)``, `` (3)``…"""
    result: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        base = name or f"column {position}"
        candidate, copy = base, 1
        while candidate in seen:
            copy += 1
            candidate = f"{base} ({copy})"
        seen.add(candidate)
        result.append(candidate)
    return result
