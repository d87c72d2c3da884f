"""Reading an Excel workbook's sheet into text columns.

Every cell becomes the text a person sees in it (``cell_text``): a phone
stored as a number is its digits, not ``7.7012345678E+10``.  The reading
is done by python-calamine (a Rust reader, several times faster than
openpyxl on a 100,000-row sheet), imported only when a workbook is
actually read.  Calamine already decodes Excel's ``_xHHHH_`` escapes in
strings, so its strings are taken as they are; its values are turned into
what openpyxl gave (whole numbers as ints, dates as datetimes, empty cells
as None) so the typed cells written back are the same.
"""

from __future__ import annotations

import datetime as dt
import html
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
    import python_calamine  # imported here: CSV-only runs never pay for it

    try:
        # A file object, not the path: a workbook saved as "list.csv" is still one.
        handle = source.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
    try:
        with handle:
            workbook = python_calamine.CalamineWorkbook.from_filelike(handle)
    except Exception as exc:  # calamine raises several kinds for a damaged file
        raise InputError(
            f"{source.name} cannot be read as an Excel workbook ({_reason(exc)}); "
            f"it may be damaged: open it in Excel and save it again, or export CSV"
        ) from exc
    with workbook:
        title = _pick_sheet(source, workbook, sheet)
        try:
            values = workbook.get_sheet_by_name(title).to_python(skip_empty_area=False)
            leading, rows, typed, lines = _xlsx_rows(values, header_row)
            unsaved = _unsaved_formulas(source, _sheet_part(source, title))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"{source.name}, sheet {title!r}, cannot be read ({_reason(exc)}); "
                f"it may be damaged: open it in Excel and save it again, or export CSV"
            ) from exc
    del values
    if not leading:
        raise InputError(f"{source.name}, sheet {title!r}, is empty")
    chosen = pick_header(
        [(line, cells) for line, cells, _ in leading], header_row, looks_like_header, source
    )
    header_line, header, _ = leading[chosen]
    for line, cells, typed_cells in reversed(leading[chosen + 1 :]):
        rows.insert(0, cells)
        typed.insert(0, typed_cells)
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


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _pick_sheet(source: Path, workbook: Any, sheet: str | int | None) -> str:
    """The name of the worksheet asked for (chart sheets are not worksheets)."""
    import python_calamine

    names = [
        str(meta.name)
        for meta in workbook.sheets_metadata
        if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
    ]
    if not names:
        raise InputError(f"{source.name} has no worksheets")
    if sheet is None:
        return names[0]
    wanted = str(sheet).strip()
    for name in names:
        if name == wanted:
            return name
    for name in names:
        if name.strip().casefold() == wanted.casefold():
            return name
    if wanted.isdigit() and 1 <= int(wanted) <= len(names):
        return names[int(wanted) - 1]
    listed = ", ".join(repr(n) for n in names)
    raise InputError(
        f"{source.name} has no sheet {wanted!r}: its sheets are {listed} "
        f"(--sheet takes a name or a number counting from 1)"
    )


_SHEET_ENTRY = re.compile(rb"<(?:\w+:)?sheet\b[^>]*>")
_ATTRIBUTE = re.compile(rb'([\w:]+)="([^"]*)"')
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\b[^>]*>")


def _sheet_part(source: Path, title: str) -> str:
    """The zip part holding the sheet called ``title`` (``""`` when it cannot be told)."""
    try:
        with zipfile.ZipFile(source) as archive:
            book = archive.read("xl/workbook.xml")
            rels = archive.read("xl/_rels/workbook.xml.rels")
    except (KeyError, OSError, zipfile.BadZipFile):
        return ""
    wanted = None
    for entry in _SHEET_ENTRY.findall(book):
        attributes = dict(_ATTRIBUTE.findall(entry))
        name = html.unescape(attributes.get(b"name", b"").decode("utf-8", "replace"))
        if name == title:
            wanted = next((v for k, v in attributes.items() if k.endswith(b":id")), None)
    if wanted is None:
        return ""
    for entry in _RELATIONSHIP.findall(rels):
        attributes = dict(_ATTRIBUTE.findall(entry))
        if attributes.get(b"Id") == wanted:
            target: str = attributes.get(b"Target", b"").decode("utf-8", "replace")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return ""


Leading = list[tuple[int, list[str], list[Any]]]


def _xlsx_rows(
    values: list[list[Any]], header_row: int | None
) -> tuple[Leading, list[list[str]], list[list[Any]], list[int]]:
    """The first rows with a value (where the header is looked for), then the others.

    Each row as text (``cell_text``) and as Excel typed it; the first part
    holds up to ``HEADER_SCAN`` rows with a value, or reaches ``header_row``.
    Strings (most cells) are kept as they are; only other values are turned.
    """
    leading: Leading = []
    rows: list[list[str]] = []
    typed: list[list[Any]] = []
    lines: list[int] = []
    scanning = True
    with gc_paused():
        for number, row in enumerate(values, start=1):
            cells = [v if type(v) is str else _value_text(v) for v in row]
            while cells and not cells[-1]:
                cells.pop()
            as_typed = [v if type(v) is str and v else _typed_value(v) for v in row]
            if scanning:
                if any(c.strip() for c in cells):
                    leading.append((number, cells, as_typed))
                    if header_row is None:
                        scanning = len(leading) < HEADER_SCAN
                    else:
                        scanning = number < header_row
                continue
            rows.append(cells)
            typed.append(as_typed)
            lines.append(number)
    return leading, rows, typed, lines


def _typed_value(value: Any) -> Any:
    """A calamine value as openpyxl gave it: None, int for whole numbers, datetime for dates."""
    if value == "" or value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if type(value) is dt.date:
        return dt.datetime.combine(value, dt.time())
    return value


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
    if isinstance(value, str):
        return excel_unescape(value)
    return _value_text(value)


def _value_text(value: Any) -> str:
    """``cell_text`` of a value that is not a string (calamine's strings are already decoded)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
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
