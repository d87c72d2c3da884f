"""Writing a result table as CSV or XLSX that Excel opens as meant.

The rules that make a list safe to read (every cell is text, nothing is
reinterpreted) are the ones that make a results file safe to open in Excel:
a phone stays text, a cell that starts with ``=`` is not a formula.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from mobizon_batch.errors import ConfigError
from mobizon_batch.sheetxml import write_sheet
from mobizon_batch.table.atomic import atomic_file
from mobizon_batch.table.model import Format, gc_paused
from mobizon_batch.table.xlsxfile import cell_text


def output_format(path: str | os.PathLike[str]) -> Format:
    """``csv`` or ``xlsx`` from an output file name, or ConfigError."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix == ".xlsx":
        return "xlsx"
    raise ConfigError(f"cannot write {Path(path).name!r}: name the output file .csv or .xlsx")


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any work, when the output cannot be written there."""
    target = Path(path)
    output_format(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {target}: the folder {parent} does not exist")
    if target.is_dir():
        raise ConfigError(f"cannot write {target}: it is a folder")
    return target


def write_table(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    sheet_name: str = "results",
    delimiter: str = ",",
) -> None:
    """Write a table as CSV or XLSX (by extension), atomically.

    The file is written beside the target under a temporary name, flushed
    to disk and renamed over the target, so a reader — or a crash — never
    sees half a file.  CSV is UTF-8 *with* a BOM: without it Excel opens
    UTF-8 as the ANSI code page and every Cyrillic letter becomes garbage;
    Python, pandas and LibreOffice all read the BOM correctly.  Integer
    columns (message ids) are written without ``.0`` even when they have
    gaps.  In XLSX every ``str`` cell is stored as text, so a phone stays
    ``77012345678`` and a text starting with ``=`` is not a formula.
    """
    target = check_output_path(path)
    fmt = output_format(target)
    with atomic_file(target) as temporary, open(temporary, "wb") as handle:
        if fmt == "csv":
            _write_csv(frame, handle, delimiter)
        else:
            write_sheet(frame, handle, sheet_name)


def _write_csv(frame: pd.DataFrame, handle: IO[bytes], delimiter: str) -> None:
    """Write with the csv module: a third faster than ``DataFrame.to_csv`` here.

    Values are turned into plain Python objects column by column first
    (``_csv_values``): gaps become empty fields, whole floats integers.  The
    BOM is written by hand and the rest encoded as plain UTF-8: the
    ``utf-8-sig`` codec's encoder is Python code, called once a row.
    """
    handle.write(codecs.BOM_UTF8)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
    # CRLF (RFC 4180) rather than "\n": the csv module quotes a value only if
    # it holds a character of the line terminator, and a lone "\r" left
    # unquoted would split the row when the file is read back.
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([str(name) for name in frame.columns])
    columns = [_csv_values(frame.iloc[:, i]) for i in range(len(frame.columns))]
    if columns:
        with gc_paused():
            writer.writerows(zip(*columns, strict=True))
    text.flush()
    text.detach()


def _csv_values(column: pd.Series) -> list[Any]:
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype):  # text: only the gaps need a look
        return (column.fillna("") if column.hasnans else column).tolist()
    values = column.tolist()
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, np.dtype):
        return ["" if v is pd.NA else v for v in values]  # nullable Int64 and friends
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return values
    return [v if isinstance(v, str) else _csv_scalar(v) for v in values]


def _csv_scalar(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"  # as the status pass writes status_final
    if isinstance(value, dt.date | dt.time):
        return cell_text(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        if number.is_integer() and abs(number) < 1e16:
            return int(number)
        return number
    return value
