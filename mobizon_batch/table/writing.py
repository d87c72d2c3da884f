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
import contextlib
import datetime as dt
import math
import operator
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from itertools import compress
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from mobizon_batch.errors import ConfigError
from mobizon_batch.sheetxml import write_sheet
from mobizon_batch.table.atomic import atomic_file
from mobizon_batch.table.model import Format
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
    """Write CSV as the csv module would, a block of rows at a time.

    Values are turned into plain Python objects column by column
    (``_csv_values``): gaps become empty fields, whole floats integers.  The
    rows are then joined by ``_csv_lines`` — the csv module's own quoting,
    worked out for a column at once — and the block encoded as UTF-8 in one
    call: the csv module writes (and a text wrapper encodes) once per row,
    which took most of a million-row report's time.  The BOM is written by
    hand (the ``utf-8-sig`` encoder is Python code).  Only blocks in memory:
    a big report costs no more than its frame.
    """
    handle.write(codecs.BOM_UTF8)
    if not len(frame.columns):
        handle.write(_LINE_END.encode("ascii"))  # as csv.writer writes an empty row
        return
    header = [str(name) for name in frame.columns]
    names = header if raw else _neutral_cells(header)
    header_fields = [_quoted([name], delimiter) for name in names]  # one row
    handle.write(_csv_lines(header_fields, delimiter).encode("utf-8"))
    with _writing_behind(handle) as write:
        _write_blocks(frame, write, delimiter, raw=raw)


def _write_blocks(
    frame: pd.DataFrame, write: Callable[[bytes], None], delimiter: str, *, raw: bool
) -> None:
    for start in range(0, len(frame), _BLOCK):
        block = frame.iloc[start : start + _BLOCK]
        fields: list[list[str]] = []
        done: list[tuple[list[Any], list[str]]] = []  # (values, fields) of text columns so far
        for index in range(len(block.columns)):
            column = block.iloc[:, index]
            values = _csv_values(column)
            # A report repeats a text column (the text read and the text sent
            # are mostly the same strings): its fields are worked out once.
            text = isinstance(column.dtype, pd.StringDtype)
            same = next((cells for seen, cells in done if seen == values), None) if text else None
            if same is None:
                judged = values if raw or _is_numeric(column.dtype) else _neutral_cells(values)
                same = _quoted(judged, delimiter)
                if text:
                    done.append((values, same))
            fields.append(same)
        write(_csv_lines(fields, delimiter).encode("utf-8"))


@contextlib.contextmanager
def _writing_behind(handle: IO[bytes]) -> Iterator[Callable[[bytes], None]]:
    """A ``write`` that hands the bytes to a thread, so the disk works while the next block is made.

    A file's ``write`` lets other threads run while the kernel copies the
    bytes: on a big report that is a quarter of the time, now spent beside
    the work instead of after it.  At most two blocks wait.  An error of
    the thread's (a full disk) is raised here, at the next write or at the
    end, as the plain write would have raised it.
    """
    waiting: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def drain() -> None:
        while (data := waiting.get()) is not None:
            if not failure:
                try:
                    handle.write(data)
                except BaseException as exc:  # raised again in the caller, below
                    failure.append(exc)

    def write(data: bytes) -> None:
        if failure:
            raise failure[0]
        waiting.put(data)

    worker = threading.Thread(target=drain, name="csv-writer", daemon=True)
    worker.start()
    try:
        yield write
    finally:
        waiting.put(None)
        worker.join()
    if failure:
        raise failure[0]


#: rows written at a time
_BLOCK = 65_536
# CRLF (RFC 4180) rather than "\n": a value is quoted if it holds a character
# of the line terminator, and a lone "\r" left unquoted would split the row
# when the file is read back.
_LINE_END = "\r\n"


def _csv_lines(quoted: list[list[str]], delimiter: str) -> str:
    """The rows these columns of fields (``_quoted``) make, each ended by CRLF.

    A row of a single empty field is written ``""`` (or it would read back
    as no row at all), as ``csv.writer`` does.
    """
    if not quoted or not quoted[0]:
        return ""
    if len(quoted) == 1:
        cells = ['""' if cell == "" else cell for cell in quoted[0]]
        return _LINE_END.join(cells) + _LINE_END
    return _LINE_END.join(map(delimiter.join, zip(*quoted, strict=True))) + _LINE_END


def _quoted(values: list[Any], delimiter: str) -> list[str]:
    """The column's fields as text, quoted where the csv module would quote them.

    QUOTE_MINIMAL with the default dialect: a field is quoted when it holds
    the delimiter, a quote or a line-end character, and its quotes are
    doubled; other values are written as ``str`` gives them.
    ``tests/test_table.py`` holds the file to the csv module's on every
    kind of cell.

    Whole-column steps only (``map``, numpy masks): a text column with a
    comma in most cells is common, and a Python step per cell doubled the
    time a big report took to write.
    """
    try:
        cells, joined = values, "".join(values)
    except TypeError:  # numbers among them (``_csv_values`` left no None)
        cells = list(map(str, values))
        joined = "".join(cells)
    if not any(special in joined for special in (delimiter, '"', "\r", "\n")):
        return cells
    needs = re.compile("[" + re.escape(delimiter) + '"\r\n]').search
    mask = np.fromiter(map(bool, map(needs, cells)), dtype=bool, count=len(cells))
    column = np.array(cells, dtype=object)
    chosen = column[mask].tolist()
    if '"' in joined:
        chosen = list(map(operator.methodcaller("replace", '"', '""'), chosen))
    column[mask] = list(map('"{}"'.format, chosen))
    return list(column.tolist())


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
    if not _FIRM_START.search(joined) and joined.isascii():
        plain = joined.encode("ascii")
        # The NULs must be the joins alone: ``+`` then a NUL in a cell is no number.
        if plain.count(0) == len(values) and not plain.translate(None, _PLAIN_BYTES):
            return values
    judged = list(values)
    suspects = map(_MAY_NEED.__contains__, map(_FIRST, values))
    for index in compress(range(len(values)), suspects):
        judged[index] = neutralise(judged[index])
    return judged


def _is_numeric(dtype: Any) -> bool:
    return bool(pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
