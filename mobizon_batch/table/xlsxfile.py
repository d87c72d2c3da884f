"""Reading an Excel workbook's sheet into text columns.

Every cell becomes the text a person sees in it (``cell_text``): a phone
stored as a number is its digits, not ``7.7012345678E+10``; openpyxl is
imported only when a workbook is actually read.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mobizon_batch.errors import InputError
from mobizon_batch.sheetxml import excel_unescape
from mobizon_batch.table.model import (
    HEADER_SCAN,
    HeaderCheck,
    InputTable,
    gc_paused,
    pick_header,
    table_from_rows,
)


def read_xlsx(
    source: Path,
    sheet: str | int | None,
    header_row: int | None = None,
    looks_like_header: HeaderCheck | None = None,
) -> InputTable:
    import openpyxl  # imported here: CSV-only runs never pay for it

    try:
        # A file object, not the path: openpyxl refuses a path whose name does
        # not end in .xlsx, and a workbook saved as "list.csv" is still one.
        handle = source.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        handle.close()
        raise InputError(
            f"{source.name} cannot be read as an Excel workbook ({type(exc).__name__}: "
            f"{exc}); it may be damaged: open it in Excel and save it again, or export CSV"
        ) from exc
    try:
        worksheet = _pick_sheet(source, workbook, sheet)
        title = worksheet.title
        try:
            worksheet.reset_dimensions()  # some writers store wrong dimensions
            leading, rows, typed, lines = _xlsx_rows(worksheet, header_row)
            unsaved = _unsaved_formulas(source, getattr(worksheet, "_worksheet_path", ""))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"{source.name}, sheet {title!r}, cannot be read ({type(exc).__name__}: {exc}); "
                f"it may be damaged: open it in Excel and save it again, or export CSV"
            ) from exc
    finally:
        workbook.close()
        handle.close()
    if not leading:
        raise InputError(f"{source.name}, sheet {title!r}, is empty")
    chosen = pick_header(
        [(line, cells) for line, cells, _ in leading], header_row, looks_like_header, source
    )
    header_line, header, _ = leading[chosen]
    for line, cells, values in reversed(leading[chosen + 1 :]):
        rows.insert(0, cells)
        typed.insert(0, values)
        lines.insert(0, line)
    # A value right of the last named column is data in an unnamed column
    # (it gets a "column N" name), not a broken line as it would be in CSV.
    width = max([len(header), *(len(r) for r in rows)])
    header = header + [""] * (width - len(header))
    where = {line: position for position, line in enumerate(lines)}
    return table_from_rows(
        source,
        header,
        rows,
        np.asarray(lines, dtype=np.int64),
        None,
        fmt="xlsx",
        encoding=None,
        delimiter=None,
        sheet=title,
        header_line=header_line,
        typed_rows=typed,
        unsaved={where[row]: frozenset(cols) for row, cols in unsaved.items() if row in where},
    )


def _pick_sheet(source: Path, workbook: Any, sheet: str | int | None) -> Any:
    sheets = list(workbook.worksheets)
    names = [ws.title for ws in sheets]
    if not sheets:
        raise InputError(f"{source.name} has no worksheets")
    if sheet is None:
        return sheets[0]
    wanted = str(sheet).strip()
    for ws in sheets:
        if ws.title == wanted:
            return ws
    for ws in sheets:
        if ws.title.strip().casefold() == wanted.casefold():
            return ws
    if wanted.isdigit() and 1 <= int(wanted) <= len(sheets):
        return sheets[int(wanted) - 1]
    listed = ", ".join(repr(n) for n in names)
    raise InputError(
        f"{source.name} has no sheet {wanted!r}: its sheets are {listed} "
        f"(--sheet takes a name or a number counting from 1)"
    )


Leading = list[tuple[int, list[str], list[Any]]]


def _xlsx_rows(
    worksheet: Any, header_row: int | None
) -> tuple[Leading, list[list[str]], list[list[Any]], list[int]]:
    """The first rows with a value (where the header is looked for), then the others.

    Each row as text (``cell_text``) and as Excel typed it; the first part
    holds up to ``HEADER_SCAN`` rows with a value, or reaches ``header_row``.
    """
    leading: Leading = []
    rows: list[list[str]] = []
    typed: list[list[Any]] = []
    lines: list[int] = []
    scanning = True
    with gc_paused():
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in values]
            while cells and not cells[-1]:
                cells.pop()
            if scanning:
                if any(c.strip() for c in cells):
                    leading.append((number, cells, list(values)))
                    if header_row is None:
                        scanning = len(leading) < HEADER_SCAN
                    else:
                        scanning = number < header_row
                continue
            rows.append(cells)
            typed.append(list(values))
            lines.append(number)
    return leading, rows, typed, lines


_CELL = re.compile(rb'<c\b[^>]*?\br="([A-Z]+)([0-9]+)"[^>]*?(?:/>|>(.*?)</c>)', re.DOTALL)
_SAVED_VALUE = re.compile(rb"<v>[^<]")


def _unsaved_formulas(source: Path, part: str) -> dict[int, set[int]]:
    """Formula cells without a saved value: sheet row → column positions (from 0).

    A workbook written by a program (not by Excel) can hold formulas whose
    result was never computed; every reader then sees an empty cell, and
    "the text is empty" would send the user looking in the wrong place.
    """
    found: dict[int, set[int]] = {}
    if not part:
        return found
    try:
        with zipfile.ZipFile(source) as archive:
            data = archive.read(part.lstrip("/"))
    except (KeyError, OSError, zipfile.BadZipFile):
        return found
    if b"<f" not in data:
        return found
    for match in _CELL.finditer(data):
        body = match.group(3) or b""
        if b"<f" in body and not _SAVED_VALUE.search(body):
            found.setdefault(int(match.group(2)), set()).add(_column_index(match.group(1)))
    return found


def _column_index(letters: bytes) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + (letter - 64)
    return index - 1


def cell_text(value: Any) -> str:
    """An Excel cell's value as the text a person sees in it.

    Numbers that are whole become their digits (a phone stored as a number,
    ``7.7012345678E+10`` on screen, is ``77012345678``); dates are ISO;
    Excel's ``_xHHHH_`` escapes in strings are decoded.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return excel_unescape(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
