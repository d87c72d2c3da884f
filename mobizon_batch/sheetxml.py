"""A minimal, fast writer for one-sheet XLSX workbooks.

Why not openpyxl, which reads our inputs: without lxml its writer needs
tens of microseconds a cell, so 50,000 result rows took over ten seconds,
and results files are rewritten every few seconds during a long send.
SpreadsheetML for a single sheet of values is small enough to write
directly: a zip of six fixed parts and one streamed sheet, which Excel,
LibreOffice and openpyxl all read.  It also gives full control over the
one property that matters most here: a ``str`` is always written as text
(an inline string), so ``=1+2`` or ``+7 701…`` can never become a formula
or a number.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pandas as pd

from mobizon_batch.errors import ConfigError

XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_COLUMNS = 16_384


def _integer_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns that hold only whole numbers (and gaps) become nullable integers."""
    converted: dict[Any, pd.Series] = {}
    for position, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_float_dtype(dtype):
            column = frame.iloc[:, position]
            values = column.dropna()
            if len(values) and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)):
                converted[position] = column.astype("Int64")
    if not converted:
        return frame
    out = frame.copy(deep=False)
    for position, column in converted.items():
        out.isetitem(position, column.array)
    return out


# The fixed parts of the package.
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    "<bookViews><workbookView/></bookViews>"
    '<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets>'
    "</workbook>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="22" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="21" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_START = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<dimension ref="A1:{last}"/>'
    '<sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    "</sheetView></sheetViews>{cols}<sheetData>"
)
# Styles of cellXfs above: a date, a date and time, a time of day.
_DATE_STYLE, _DATETIME_STYLE, _TIME_STYLE = 2, 3, 4
_EPOCH = dt.datetime(1899, 12, 30)
_WIDTH_SAMPLE = 500  # rows looked at to fit a column's width
_MIN_WIDTH, _MAX_WIDTH = 8, 60
_SHEET_END = "</sheetData></worksheet>"

# Excel's own escape for characters XML cannot hold: "_x0001_".  Excel
# decodes every "_xHHHH_" in a string, so a literal one is written with its
# "_" escaped ("_x005F_x0041_"); the reader decodes them the same way, so
# text survives a write/read round trip exactly.  The XML metacharacters get
# the usual entities.
_XML_ESCAPES: dict[int, str] = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
_XML_ESCAPES.update({c: f"_x{c:04X}_" for c in range(0x20) if c not in (0x09, 0x0A)})
_XML_ESCAPES.update({0xFFFE: "\ufffd", 0xFFFF: "\ufffd"})
_EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_EXCEL_ESCAPE_LOOKALIKE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")


def _xml_text(value: str) -> str:
    if "_x" in value:
        value = _EXCEL_ESCAPE_LOOKALIKE.sub(r"_x005F_\1", value)
    return value.translate(_XML_ESCAPES)


def excel_unescape(value: str) -> str:
    """Decode Excel's ``_xHHHH_`` escapes, as Excel does when it shows a cell."""
    if "_x" not in value:
        return value
    return _EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _sheet_title(name: str) -> str:
    cleaned = re.sub(r"[\[\]:*?/\\]", " ", name).strip().strip("'")[:31]
    return _xml_text(cleaned or "Sheet1").replace('"', "&quot;")


# What _xml_text changes: when no cell of a column has any of it, none is escaped.
_NEEDS_ESCAPE = re.compile("[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x")
_TEXT_OPEN, _TEXT_CLOSE = ' t="inlineStr"><is><t xml:space="preserve">', "</t></is></c>"


def _cell_bodies(column: pd.Series) -> list[str]:
    """For each value, what follows ``<c r="A1"`` (``""`` for an empty cell)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return ["" if v is pd.NA else f' t="b"><v>{int(bool(v))}</v></c>' for v in column.tolist()]
    if pd.api.types.is_integer_dtype(dtype):
        return ["" if v is pd.NA else f' t="n"><v>{int(v)}</v></c>' for v in column.tolist()]
    values = column.tolist()
    if set(map(type, values)) == {str}:  # a text column: one check, then no call per cell
        if _NEEDS_ESCAPE.search("\t".join(values)) is None:
            return [f"{_TEXT_OPEN}{v}{_TEXT_CLOSE}" if v else "" for v in values]
        return [f"{_TEXT_OPEN}{_xml_text(v)}{_TEXT_CLOSE}" if v else "" for v in values]
    return [_cell_body(v) for v in values]


def _cell_body(value: Any) -> str:
    if isinstance(value, str):
        if not value:
            return ""
        return f' t="inlineStr"><is><t xml:space="preserve">{_xml_text(value)}</t></is></c>'
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return f' t="b"><v>{int(bool(value))}</v></c>'
    if isinstance(value, int | np.integer):
        return f' t="n"><v>{int(value)}</v></c>'
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return ""
        text = str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)
        return f' t="n"><v>{text}</v></c>'
    if isinstance(value, dt.datetime | pd.Timestamp):
        moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
        serial = (moment.replace(tzinfo=None) - _EPOCH) / dt.timedelta(days=1)
        style = _DATE_STYLE if moment.time() == dt.time(0) else _DATETIME_STYLE
        return f' s="{style}" t="n"><v>{serial!r}</v></c>'
    if isinstance(value, dt.date):
        serial = (dt.datetime.combine(value, dt.time(0)) - _EPOCH).days
        return f' s="{_DATE_STYLE}" t="n"><v>{serial}</v></c>'
    if isinstance(value, dt.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        return f' s="{_TIME_STYLE}" t="n"><v>{seconds / 86400!r}</v></c>'
    return _cell_body(str(value))


def column_widths(frame: pd.DataFrame) -> list[float]:
    """A width for each column that fits its name and its first values (in characters)."""
    widths: list[float] = []
    head = frame.head(_WIDTH_SAMPLE)
    for position, name in enumerate(frame.columns):
        longest = len(str(name)) + 2  # the filter button
        for value in head.iloc[:, position].tolist():
            if isinstance(value, float) and not math.isfinite(value):
                continue
            if isinstance(value, dt.datetime | dt.date):
                size = 16 if isinstance(value, dt.datetime) else 10
            else:
                text = "" if value is None or value is pd.NA else str(value)
                size = max((len(line) for line in text.split("\n")), default=0)
            longest = max(longest, size)
        widths.append(float(min(_MAX_WIDTH, max(_MIN_WIDTH, longest + 1))))
    return widths


def _cols(widths: list[float]) -> str:
    if not widths:
        return ""
    return (
        "<cols>"
        + "".join(
            f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
            for i, w in enumerate(widths, start=1)
        )
        + "</cols>"
    )  # Decimal and anything else: as the text it prints as


def sheet_rows(frame: pd.DataFrame, first_row: int = 2, chunk: int = 10_000) -> Iterator[bytes]:
    """The ``<row>`` elements of ``frame``'s rows, numbered from ``first_row``, encoded in chunks.

    Built a column at a time (each cell one f-string in a comprehension),
    so a 100,000-row sheet costs a fraction of a second more than its text.
    Cells carry no style.  Also used by the report, which writes its big
    sheets into a workbook openpyxl laid out.
    """
    width = len(frame.columns)
    if not width:
        return  # no columns, no cells: no rows either
    letters = [column_letter(i) for i in range(width)]
    bodies = [_cell_bodies(_integer_columns(frame.iloc[:, [i]]).iloc[:, 0]) for i in range(width)]
    for start in range(0, len(frame), chunk):
        stop = min(len(frame), start + chunk)
        numbers = range(first_row + start, first_row + stop)
        cells = [
            [
                f'<c r="{letter}{n}"{body}' if body else ""
                for n, body in zip(numbers, column[start:stop], strict=True)
            ]
            for letter, column in zip(letters, bodies, strict=True)
        ]
        rows = [
            f'<row r="{n}">{"".join(parts)}</row>'
            for n, parts in zip(numbers, zip(*cells, strict=True), strict=True)
        ]
        yield "".join(rows).encode("utf-8", "replace")


def write_sheet(frame: pd.DataFrame, handle: IO[bytes], sheet_name: str = "results") -> None:
    """Write ``frame`` as a one-sheet workbook into a binary file.

    ``str`` cells become inline strings (text, whatever they start with),
    integers and floats numbers, booleans booleans, dates and times dates
    (with a date format); gaps are empty cells.  The header row is bold and
    frozen, and each column is as wide as its name and first values need.
    ConfigError if it does not fit.
    """
    rows, width = len(frame) + 1, len(frame.columns)
    if rows > XLSX_MAX_ROWS or width > XLSX_MAX_COLUMNS:
        raise ConfigError(
            f"{rows - 1} rows and {width} columns do not fit in an Excel sheet "
            f"(at most {XLSX_MAX_ROWS - 1} rows): write .csv instead"
        )
    letters = [column_letter(i) for i in range(max(width, 1))]
    header = "".join(
        f'<c r="{letter}1" s="1" t="inlineStr"><is><t xml:space="preserve">'
        f"{_xml_text(str(name))}</t></is></c>"
        for letter, name in zip(letters, frame.columns, strict=False)
    )
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=3) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK.format(name=_sheet_title(sheet_name)))
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/styles.xml", _STYLES)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as raw:
            sheet = io.BufferedWriter(raw, buffer_size=1 << 20)
            sheet.write(
                _SHEET_START.format(
                    last=f"{letters[width - 1]}{rows}", cols=_cols(column_widths(frame))
                ).encode()
            )
            sheet.write(f'<row r="1">{header}</row>'.encode())
            for chunk in sheet_rows(frame):
                sheet.write(chunk)
            sheet.write(_SHEET_END.encode())
            sheet.flush()
