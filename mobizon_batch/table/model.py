"""The table a list is read into, and how one is built from raw rows.

Why apart from the readers: CSV and XLSX rows end up in the same shape —
text columns, empty rows dropped, ragged rows evened out, blank and
repeated names made unique, each row's source line kept — and those rules
must be the same whichever reader produced the rows.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mobizon_batch.errors import InputError

Format = Literal["csv", "xlsx"]
SPAN_LIMIT = 20  # a record over more lines than this is most likely an unmatched quote


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

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def describe(self) -> str:
        """``list.csv (CSV, UTF-8, delimiter ';')`` — for summaries and messages."""
        if self.format == "xlsx":
            return f"{self.path.name} (XLSX, sheet {self.sheet!r})"
        delimiter = "tab" if self.delimiter == "\t" else repr(self.delimiter)
        return f"{self.path.name} (CSV, {self.encoding}, delimiter {delimiter})"


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
) -> InputTable:
    """Drop empty rows, even out ragged ones, name the columns, build the frame."""
    names = [str(h).replace("\ufeff", "").strip() for h in header]
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
    lines = (
        first_lines[np.asarray(keep, dtype=np.int64)]
        if len(keep) != len(first_lines)
        else (first_lines)
    )
    columns = list(zip(*rows, strict=True)) if width else []
    del rows
    data: dict[str, pd.Series] = {}
    for index, (name, values) in enumerate(zip(_unique_names(names), columns, strict=True)):
        if not names[index] and not any(values):
            continue  # an unnamed, empty column: a trailing delimiter, not data
        data[name] = pd.Series(np.array(values, dtype=object), dtype="str")
    frame = pd.DataFrame(data)
    frame.index = pd.RangeIndex(len(frame))
    return InputTable(
        frame=frame,
        source_lines=np.asarray(lines, dtype=np.int64),
        path=source,
        format=fmt,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        row_problems=problems,
    )


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
