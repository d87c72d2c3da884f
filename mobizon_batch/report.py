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

import math
import os
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
from mobizon_batch.sheetxml import XLSX_MAX_ROWS, column_widths
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
    with atomic_file(target) as temporary:
        workbook = Workbook(write_only=True)
        _summary_sheet(
            workbook.create_sheet(word("Summary", lang)), figures, source, generated_at, lang
        )
        _table_sheet(workbook.create_sheet(word("Messages", lang)), frame, lang)
        problems = problem_rows(frame)
        problems["problem"] = [word(p, lang) for p in problems["problem"]]
        _table_sheet(workbook.create_sheet(word("Problems", lang)), problems, lang, front=3)
        workbook.save(temporary)
    return figures


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


def _table_sheet(sheet: Sheet, frame: pd.DataFrame, lang: str, *, front: int = 0) -> None:
    """Every row of ``frame`` under a bold, frozen, filtered header, columns fitted."""
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
    as_number = [name in NUMBER_COLUMNS for name in columns]
    located = locate_columns(columns)
    flags = {located[c] for c in BOOLEAN_COLUMNS if c in located}
    as_flag = [name in flags for name in columns]
    for values in frame.itertuples(index=False, name=None):
        cells: list[Any] = []
        for value, number, flag in zip(values, as_number, as_flag, strict=True):
            if _typed(value):
                cells.append(value)
                continue
            text = "" if is_blank(value) else str(value)
            numeric = number_value(text) if number and text else None
            if flag and text.strip().upper() in ("TRUE", "FALSE"):
                cells.append(text.strip().upper() == "TRUE")
            elif numeric is not None:
                cells.append(numeric)
            elif not text:
                cells.append(None)
            elif text.startswith("="):
                cell = WriteOnlyCell(sheet, value=_text(text))
                cell.data_type = "s"  # text, never a formula
                cells.append(cell)
            else:
                cells.append(_text(text))
        sheet.append(cells)
    if columns:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(frame) + 1}"


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
