"""Writing a result table as CSV or XLSX that Excel opens as meant.

The rules that make a list safe to read (every cell is text, nothing is
reinterpreted) are the ones that make a results file safe to open in Excel:
a phone stays text, a cell that starts with ``=`` is not a formula.  XLSX
says "this is text" in the cell itself; CSV cannot, so a CSV cell Excel
would run is written with a ``'`` in front (``neutralise``): lists come
from outside, and ``=HYPERLINK(...)`` in a name column must not become a
live link, or worse, when a marketer opens the results.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import operator
import os
import re
from itertools import compress
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
    raw_csv: bool = False,
) -> None:
    """Write a table as CSV or XLSX (by extension), atomically.

    The file is written beside the target under a temporary name, flushed
    to disk and renamed over the target, so a reader — or a crash — never
    sees half a file.  CSV is UTF-8 *with* a BOM: without it Excel opens
    UTF-8 as the ANSI code page and every Cyrillic letter becomes garbage;
    Python, pandas and LibreOffice all read the BOM correctly.  Integer
    columns (message ids) are written without ``.0`` even when they have
    gaps.  In XLSX every ``str`` cell is stored as text, so a phone stays
    ``77012345678`` and a text starting with ``=`` is not a formula.  In CSV
    such a text is neutralised (see ``neutralise``) unless ``raw_csv``.
    """
    target = check_output_path(path)
    fmt = output_format(target)
    with atomic_file(target) as temporary, open(temporary, "wb") as handle:
        if fmt == "csv":
            _write_csv(frame, handle, delimiter, raw=raw_csv)
        else:
            write_sheet(frame, handle, sheet_name)


def _write_csv(frame: pd.DataFrame, handle: IO[bytes], delimiter: str, *, raw: bool) -> None:
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
    header = [str(name) for name in frame.columns]
    writer.writerow(header if raw else _neutral_cells(header))
    series = [frame.iloc[:, i] for i in range(len(frame.columns))]
    columns = [_csv_values(column) for column in series]
    if not raw:  # numbers need nothing: only text columns are judged
        columns = [
            values if _is_numeric(column.dtype) else _neutral_cells(values)
            for column, values in zip(series, columns, strict=True)
        ]
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


# ------------------------------------------------------------- formulas

# What a cell Excel would run starts with: = + - @ (and their full-width forms,
# which some Excel versions also accept), a tab or a carriage return (Excel
# drops them and reads on).  Leading spaces are skipped when judging.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_MAY_NEED = _FORMULA_START | {" "}
_ALWAYS = frozenset("=@\t\r\uff1d\uff20")
# After + or -, digits, spaces and ( ) - + . , / % make a number, a phone or
# a dash (a list's "no value"): Excel may compute a number from them, but it
# can call nothing and refer to nothing, and people read them as they are.
_PLAIN_BYTES = b"0123456789 ().,/%+-\x00"  # and the NUL _neutral_cells joins cells with
# A cell start (after the NUL that joins cells) that may need the rule; one no sign rule clears.
_SUSPECT_START = re.compile("\x00[=+\\-@\t\r \uff1d\uff0b\uff0d\uff20]")
_FIRM_START = re.compile("\x00[=@\t\r \uff1d\uff20]")
_PLAIN_NUMBER = re.compile(r"[+\-\uff0b\uff0d][0-9 ().,/%+\-\uff0b\uff0d]*")
_FIRST = operator.itemgetter(slice(0, 1))


def neutralise(cell: str) -> str:
    """``cell`` as a CSV should hold it so that Excel shows it instead of running it.

    The rule (the README states it): a cell whose first character other than
    spaces is ``=``, ``@``, a tab or a carriage return, or is ``+`` or ``-``
    followed by anything but digits, spaces and ``( ) - + . , / %``, gets a
    ``'`` in front.  So ``=HYPERLINK("http://…")``, ``@SUM(A1)`` and
    ``-2+3+cmd|'/C calc'!A0`` are shown as text, while phones such as
    ``+7 701 234 56 78`` or ``+7 (701) 234-56-78``, numbers such as ``-5``
    and a lone ``-`` stay as they are.
    """
    head = cell.lstrip(" ")
    if not head or head[0] not in _FORMULA_START:
        return cell
    if head[0] in _ALWAYS or not _PLAIN_NUMBER.fullmatch(head):
        return "'" + cell
    return cell


def _neutral_cells(values: list[Any]) -> list[Any]:
    """The column with every text cell that needs it neutralised (others untouched).

    Judging each cell in Python would add a third to the time a big CSV
    takes to write, so the common columns are cleared at C speed first, on
    the column joined with NUL before each cell: one where no cell starts
    with a suspicious character, and one whose ``+``/``-`` cells are all
    phones or numbers (a phone column: every character is a number's).
    Elsewhere only the cells whose first character is suspicious are judged.
    """
    try:
        joined = "\x00" + "\x00".join(values)
    except TypeError:  # numbers among the texts: judge each text
        return [neutralise(v) if type(v) is str and v[:1] in _MAY_NEED else v for v in values]
    if not _SUSPECT_START.search(joined):
        return values
    if (
        not _FIRM_START.search(joined)
        and joined.isascii()
        and not joined.encode("ascii").translate(None, _PLAIN_BYTES)
    ):
        return values
    judged = list(values)
    suspects = map(_MAY_NEED.__contains__, map(_FIRST, values))
    for index in compress(range(len(values)), suspects):
        judged[index] = neutralise(judged[index])
    return judged


def _is_numeric(dtype: Any) -> bool:
    return bool(pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
