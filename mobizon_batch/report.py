"""The delivery summary of a results file, and the XLSX report built from it.

Why the summary is an object and the workbook a rendering of it: the same
figures go to the terminal (printed by ``cli.py``) and to the Summary sheet,
and they must agree to the row.  ``summarize_results`` computes them once
from the table; ``write_report`` lays them out for people who would rather
look than read: a Summary sheet with a chart of the status counts, every
row on a Messages sheet, and the rows that need attention, with a reason
each, on a Problems sheet.

Shares and the delivery rate are stored as numbers with a percent format,
never as text, so that a spreadsheet (or a test) can compute with them.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from mobizon_batch.errors import ConfigError
from mobizon_batch.reportfigures import (
    NUMBER_COLUMNS,
    PERCENT_FORMAT,
    ReportSummary,
    Section,
    Share,
    number_value,
    problem_rows,
    summarize_results,
)
from mobizon_batch.reportlang import header_names, word
from mobizon_batch.resultfile import BOOLEAN_COLUMNS, is_blank, locate_columns
from mobizon_batch.sheetxml import XLSX_MAX_ROWS, column_widths, sheet_rows
from mobizon_batch.table import atomic_file
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT

# The write-only sheets are typed ``Any``: they gain column_dimensions,
# auto_filter and add_chart at run time, which the openpyxl stubs do not know.
Sheet = Any

# ---------------------------------------------------------------- workbook


def write_report(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    summary: ReportSummary | None = None,
    source: str = "",
    generated_at: datetime | None = None,
    lang: str = "en",
) -> ReportSummary:
    """Write the report workbook to ``path`` atomically; return its summary.

    Sheets: Summary (figures, breakdowns and a bar chart of the status
    counts), Messages (every row), Problems (rows needing attention), named
    and labelled in ``lang`` (``en`` or ``ru``; see ``reportlang``).  Cells
    of ``frame`` that are numbers, dates or booleans stay so, as do our
    integer columns and ``status_final``; every other cell is text.
    """
    target = Path(path)
    if target.suffix.lower() != ".xlsx":
        raise ConfigError(f"-o {target}: the report is a workbook, name it .xlsx")
    if len(frame) >= XLSX_MAX_ROWS:
        raise ConfigError(
            f"{len(frame)} rows do not fit on the report's Messages sheet (Excel holds "
            f"{XLSX_MAX_ROWS - 1} below the header): split the results file"
        )
    figures = summary or summarize_results(frame)
    # The temporary file first (atomic_file fails early in a folder we cannot
    # write): a write-only workbook built and then never saved complains when
    # it is garbage-collected.
    problems = problem_rows(frame)
    problems["problem"] = [word(p, lang) for p in problems["problem"]]
    tables = {2: ("Messages", frame, 0), 3: ("Problems", problems, 3)}
    # Sheets without dates or times get their rows streamed (see _fill_tables).
    streamed = {n: table for n, (_, table, _) in tables.items() if not _has_moments(table)}
    with atomic_file(target) as temporary:
        workbook = Workbook(write_only=True)
        _summary_sheet(
            workbook.create_sheet(word("Summary", lang)), figures, source, generated_at, lang
        )
        for number, (name, table, front) in tables.items():
            sheet = workbook.create_sheet(word(name, lang))
            _table_header(sheet, table, lang, front=front)
            if number not in streamed:
                _table_rows(sheet, table)
        if streamed:
            layout = io.BytesIO()
            workbook.save(layout)
            _fill_tables(layout, temporary, streamed)
        else:
            workbook.save(temporary)
    return figures


def _fill_tables(layout: io.BytesIO, path: str, tables: dict[int, pd.DataFrame]) -> None:
    """Copy the workbook openpyxl laid out, with the table rows put into their sheets.

    Why: openpyxl writes tens of microseconds a cell, which made a
    100,000-row report take twice as long as writing its rows;
    ``sheetxml.sheet_rows`` writes them a column at a time.  openpyxl still
    lays out the workbook — the Summary and its chart, the styles, each
    table sheet's bold frozen header, widths and filter — and names its
    sheets' parts in order (``sheet2.xml`` is the second sheet).  Cells
    carry no style, which is why a sheet with dates is left to openpyxl.
    """
    with (
        zipfile.ZipFile(layout) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=3) as target,
    ):
        parts = {f"xl/worksheets/sheet{number}.xml": table for number, table in tables.items()}
        for info in source.infolist():
            data = source.read(info)
            table = parts.get(info.filename)
            if table is None:
                target.writestr(info, data)
                continue
            head, end, tail = data.partition(b"</sheetData>")
            if not end:  # pragma: no cover - openpyxl always writes sheetData
                raise ConfigError(f"cannot lay out the report's sheet {info.filename}")
            with target.open(info.filename, "w", force_zip64=True) as raw:
                sheet = io.BufferedWriter(raw, buffer_size=1 << 20)
                sheet.write(head)
                for chunk in sheet_rows(_table_values(table)):
                    sheet.write(chunk)
                sheet.write(end + tail)
                sheet.flush()


def _has_moments(frame: pd.DataFrame) -> bool:
    """True when a cell holds a date or a time (streamed cells carry no date style)."""
    for position in range(len(frame.columns)):
        column = frame.iloc[:, position]
        if isinstance(column.dtype, pd.StringDtype):
            continue
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            return True
        if any(issubclass(kind, date | time) for kind in set(map(type, column.tolist()))):
            return True
    return False


def _summary_sheet(
    sheet: Sheet,
    summary: ReportSummary,
    source: str,
    generated_at: datetime | None,
    lang: str,
) -> None:
    bold = Font(bold=True)
    sheet.column_dimensions["A"].width = 44
    sheet.column_dimensions["B"].width = 12
    sheet.column_dimensions["C"].width = 12
    row = 0

    def append(*values: Any, strong: bool = False, percent_at: int | None = None) -> int:
        nonlocal row
        cells = []
        for index, value in enumerate(values):
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # text stays text, even "=..."
            if strong:
                cell.font = bold
            if percent_at == index and value is not None:
                cell.number_format = PERCENT_FORMAT
            cells.append(cell)
        sheet.append(cells)
        row += 1
        return row

    append(word("Delivery report", lang), source, strong=True)
    moment = generated_at or datetime.now()
    append(word("Generated", lang), moment.strftime(TIMESTAMP_FORMAT))
    append()
    append(word("Key figures", lang), strong=True)
    for label, value, is_percent in summary.key_figures():
        append(word(label, lang), value, percent_at=1 if is_percent else None)
    status_rows: tuple[int, int] | None = None
    for section in summary.sections:
        append()
        header = append(
            word(section.title, lang),
            word("rows", lang),
            word(f"share of {section.of}", lang),
            strong=True,
        )
        for line in section.lines:
            append(word(line.label, lang), line.count, line.share, percent_at=2)
        if section.title == "By status" and section.lines:
            status_rows = (header, header + len(section.lines))
    if status_rows is not None:
        chart = BarChart()
        chart.type = "col"
        chart.title = word("Messages by status", lang)
        chart.y_axis.title = word("messages", lang)
        chart.x_axis.title = word("status", lang)
        chart.legend = None
        first, last = status_rows
        chart.add_data(
            Reference(sheet, min_col=2, min_row=first, max_row=last), titles_from_data=True
        )
        chart.set_categories(Reference(sheet, min_col=1, min_row=first + 1, max_row=last))
        chart.height, chart.width = 9, 16
        sheet.add_chart(chart, "E4")


def _table_header(sheet: Sheet, frame: pd.DataFrame, lang: str, *, front: int = 0) -> None:
    """The bold, frozen, filtered header of a table sheet, its columns fitted."""
    bold = Font(bold=True)
    columns = [str(c) for c in frame.columns]
    shown = header_names(columns, lang, front=columns[:front])
    for position, width in enumerate(column_widths(frame.set_axis(shown, axis=1)), start=1):
        sheet.column_dimensions[get_column_letter(position)].width = width
    sheet.freeze_panes = "A2"
    header = []
    for name in shown:
        cell = WriteOnlyCell(sheet, value=name)
        cell.data_type = "s"
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    if columns:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(frame) + 1}"


def _table_rows(sheet: Sheet, frame: pd.DataFrame) -> None:
    """Every row of ``frame``, cell by cell through openpyxl (a sheet with dates)."""
    kinds = _cell_kinds(frame)
    for values in frame.itertuples(index=False, name=None):
        cells: list[Any] = []
        for value, kind in zip(values, kinds, strict=True):
            cell = _cell_value(value, kind)
            if isinstance(cell, str) and cell.startswith("="):
                written = WriteOnlyCell(sheet, value=cell)
                written.data_type = "s"  # text, never a formula
                cells.append(written)
            else:
                cells.append(cell)
        sheet.append(cells)


def _cell_kinds(frame: pd.DataFrame) -> list[str]:
    """For each column: ``number``, ``flag`` (TRUE/FALSE as booleans) or ``text``."""
    columns = [str(c) for c in frame.columns]
    located = locate_columns(columns)
    flags = {located[c] for c in BOOLEAN_COLUMNS if c in located}
    return [
        "flag" if name in flags else "number" if name in NUMBER_COLUMNS else "text"
        for name in columns
    ]


def _cell_value(value: Any, kind: str) -> Any:
    """What a table cell holds: typed values as they are, else text, a number or a flag."""
    if _typed(value):
        return value
    text = "" if is_blank(value) else str(value)
    if kind == "flag" and text.strip().upper() in ("TRUE", "FALSE"):
        return text.strip().upper() == "TRUE"
    numeric = number_value(text) if kind == "number" and text else None
    if numeric is not None:
        return numeric
    return _text(text) if text else None


def _table_values(frame: pd.DataFrame) -> pd.DataFrame:
    """``_cell_value`` of every cell, a column at a time (text columns without a call a cell)."""
    columns: dict[int, pd.Series] = {}
    for position, kind in enumerate(_cell_kinds(frame)):
        column = frame.iloc[:, position]
        values: list[Any]
        if isinstance(column.dtype, pd.StringDtype) and kind == "text":
            cells = (column.fillna("") if column.hasnans else column).tolist()
            values = [v if v and not v.isspace() else None for v in cells]
            if ILLEGAL_CHARACTERS_RE.search("".join(cells)) is not None:
                values = [None if v is None else _text(v) for v in values]
        elif isinstance(column.dtype, pd.StringDtype) and kind == "number":
            cells = (column.fillna("") if column.hasnans else column).tolist()
            values = [
                int(v) if v.isdigit() and v.isascii() else _cell_value(v, kind) for v in cells
            ]
        else:
            values = [_cell_value(v, kind) for v in column.tolist()]
        columns[position] = pd.Series(values, dtype=object)
    out = pd.DataFrame(columns)
    out.columns = [str(c) for c in frame.columns]
    return out


def _typed(value: Any) -> bool:
    """A value a spreadsheet keeps as it is: a number, a date or time, a boolean (not text)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | date | time)


def _text(value: str) -> str:
    """``value`` without the control characters an XLSX file cannot hold."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


__all__ = [
    "ReportSummary",
    "Section",
    "Share",
    "problem_rows",
    "summarize_results",
    "write_report",
]
