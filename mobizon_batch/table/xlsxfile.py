"""Reading an Excel workbook's sheet into text columns.

Every cell becomes the text a person sees in it (``cell_text``): a phone
stored as a number is its digits, not ``7.7012345678E+10``; openpyxl is
imported only when a workbook is actually read.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from mobizon_batch.errors import InputError
from mobizon_batch.sheetxml import excel_unescape
from mobizon_batch.table.model import InputTable, gc_paused, table_from_rows


def read_xlsx(source: Path, sheet: str | int | None) -> InputTable:
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
            header, rows, lines = _xlsx_rows(worksheet)
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
    if header is None:
        raise InputError(f"{source.name}, sheet {title!r}, is empty")
    # A value right of the last named column is data in an unnamed column
    # (it gets a "column N" name), not a broken line as it would be in CSV.
    width = max([len(header), *(len(r) for r in rows)])
    header = header + [""] * (width - len(header))
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


def _xlsx_rows(worksheet: Any) -> tuple[list[str] | None, list[list[str]], list[int]]:
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    with gc_paused():
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in values]
            while cells and not cells[-1]:
                cells.pop()
            if header is None:
                if any(c.strip() for c in cells):
                    header = cells
                continue
            rows.append(cells)
            lines.append(number)
    return header, rows, lines


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
