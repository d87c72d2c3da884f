"""The entry points for reading: a list into a table, a small list file into lines.

Every problem with the file as a whole is an ``InputError`` (exit code 3)
whose message says what is wrong and what to do; problems with one line
(too many fields) become that row's reason, so one bad line does not stop
the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.table.csvfile import read_csv
from mobizon_batch.table.limits import ReadLimits, check_csv, check_workbook
from mobizon_batch.table.model import HeaderCheck, InputTable
from mobizon_batch.table.sniff import (
    check_delimiter,
    check_encoding,
    decode_all,
    detect_encoding,
    read_head,
    sniff_format,
    sniff_kind,
)
from mobizon_batch.table.stdin import stdin_copy
from mobizon_batch.table.xlsxfile import read_xlsx


def read_table(
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    header_row: int | None = None,
    looks_like_header: HeaderCheck | None = None,
    limits: ReadLimits | None = None,
) -> InputTable:
    """Read a CSV or XLSX list; every problem with the file is an InputError.

    ``encoding`` and ``delimiter`` apply to CSV, ``sheet`` (a name, or a
    number counting from 1) to XLSX; giving one for the other format is a
    ConfigError, because it means the command is not doing what its author
    thinks.  The header is the line ``header_row`` when given, else the
    first of the top lines that ``looks_like_header`` accepts, else the
    first line with a value.  ``path`` ``-`` reads standard input.
    ``limits`` (default: ``ReadLimits()``) are checked before any reader
    runs, so a hostile file is refused in bounded time and memory.
    """
    limits = limits or ReadLimits()
    if str(path) == "-":
        path = stdin_copy(limits.max_bytes)
    source = Path(path)
    head = read_head(source)
    kind = sniff_kind(source, head)
    if kind == "xlsx":
        if encoding or delimiter:
            raise ConfigError(
                f"--encoding and --delimiter apply to CSV files; {source.name} is an Excel workbook"
            )
        check_workbook(source, limits)
        return read_xlsx(source, sheet, header_row, looks_like_header)
    if sheet is not None:
        raise ConfigError(f"--sheet applies to Excel workbooks; {source.name} is a text file")
    codec = check_encoding(encoding) if encoding else None
    sep = check_delimiter(delimiter) if delimiter else None
    check_csv(source, limits)
    return read_csv(source, head, codec, sep, (header_row, looks_like_header))


def decode_text_file(path: str | os.PathLike[str], encoding: str | None = None) -> str:
    """The whole text of a small text file (an opt-out list), decoded as read_table would."""
    source = Path(path)
    head = read_head(source)
    kind = sniff_kind(source, head)
    if kind != "csv":
        raise InputError(f"{source.name} is an Excel workbook; give the list as text or CSV")
    check_csv(source, ReadLimits())
    data = source.read_bytes()
    codec = check_encoding(encoding) if encoding else detect_encoding(source, data, whole=True)
    return decode_all(source, data, codec, explicit=bool(encoding))


def read_lines(
    path: str | os.PathLike[str], encoding: str | None = None, *, what: str = "file"
) -> list[str]:
    """The lines of a small list file (an opt-out list), whatever it was saved as.

    A text or CSV file gives its decoded lines (as ``read_table`` would
    decode them); a workbook gives its first sheet, the header first, cells
    joined by tabs.  An empty file has no lines; a missing one is an
    InputError naming it as ``what``.
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{what} not found: {source}")
    if source.is_file() and source.stat().st_size == 0:
        return []
    if sniff_format(source) == "xlsx":
        sheet = read_table(source)
        lines = ["\t".join(sheet.columns)]
        lines += ["\t".join(row) for row in sheet.frame.itertuples(index=False, name=None)]
        return lines
    return decode_text_file(source, encoding).splitlines()
