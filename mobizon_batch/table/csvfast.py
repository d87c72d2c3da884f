"""The quick way through a CSV's rows: pandas' C tokenizer, taken only when it is sure.

Why a second reader: the csv module builds a Python list for every record,
and for a million-row list that costs more than everything else reading
does.  pandas' C reader gives whole columns, but it is not the one whose
rules the tool promises (records over several lines get their own line
numbers, a quote never closed is named, a field over 16 MB is refused, an
encoding that breaks halfway down is detected and retried).  So it runs
only on the rows below the header, and its answer is used only when it
provably equals what the csv module would give:

- the encoding keeps ASCII bytes as they are (UTF-8, the single-byte code
  pages), so line ends can be counted in the bytes;
- every record is one line: the file's line count is the header's lines
  plus the records read (a quoted line break would make a record span two);
- no record has more than one field past the header's width (the C reader
  refuses those, or makes an index of them) and no such field holds a
  value (a malformed line the careful reader names);
- no field is longer than the careful reader's limit.

Anything else — and any complaint of the C reader — returns None and the
caller reads the file with the csv module as before.  Cells are compared
with the csv module's on every shape in ``tests/test_csvfast.py``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_ASCII = bytes(range(128))
#: bytes scanned at a time; at most the field limit, so a line within one chunk is no risk
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class QuickColumns:
    """The cells below the header, column by column, as the C reader gave them."""

    columns: list[np.ndarray[Any, np.dtype[np.object_]]]
    #: each row's line in the file (counting from 1)
    lines: np.ndarray[Any, np.dtype[np.int64]]
    #: a cell may hold a NUL (False: none does)
    zero_byte: bool


def read_columns(
    source: Path, codec: str, sep: str, header_end: int, width: int, field_limit: int
) -> QuickColumns | None:
    """The cells below line ``header_end`` as ``width`` columns, or None when unsure.

    The caller has read lines 1..``header_end`` with the csv module, one
    record a line.  Rows are not yet judged: blank ones are still there.
    ``field_limit``: the careful reader's longest field; a longer one sends
    the file to it (only looked for when a line is longer than a chunk).
    """
    if not _keeps_ascii(codec):
        return None
    try:
        frame = pd.read_csv(
            source,
            sep=sep,
            header=None,
            names=list(range(width + 1)),  # one spare: a trailing delimiter is common
            skiprows=header_end,
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_MINIMAL,
            escapechar=None,
            comment=None,
            engine="c",
            encoding=codec,
            encoding_errors="strict",
        )
    except (ValueError, UnicodeError, OSError):  # ParserError, EmptyDataError: the csv module says
        return None
    count = len(frame)
    if not isinstance(frame.index, pd.RangeIndex) or frame.shape[1] != width + 1:
        return None  # the first row had more fields still: pandas made an index of them
    scan = scan_lines(source)
    if scan is None or header_end + count != scan.lines:
        return None  # a record spans lines, or a lone CR ends one: see scan_lines
    columns = [frame[label].to_numpy(dtype=object) for label in frame.columns]
    del frame
    # The spare column too: the csv module refuses a long field wherever it
    # is, even one of spaces after a trailing delimiter that is dropped below.
    if scan.long_line and any(max(map(len, column), default=0) > field_limit for column in columns):
        return None
    if any(map(str.strip, columns.pop())):
        return None  # a line with more fields than the header: the careful reader names it
    lines = np.arange(header_end + 1, header_end + 1 + count, dtype=np.int64)
    return QuickColumns(columns, lines, scan.zero_byte)


def _keeps_ascii(codec: str) -> bool:
    """True when the codec reads ASCII bytes as themselves (so a line end is a byte)."""
    try:
        return _ASCII.decode(codec) == _ASCII.decode("ascii")
    except (UnicodeError, LookupError):
        return False


@dataclass(frozen=True)
class LineScan:
    """What one pass over the bytes tells: the lines, and what the cells may hold."""

    #: lines as the csv module counts them (``\n`` or ``\r\n`` ends one)
    lines: int
    #: a zero byte somewhere (for these codecs: a NUL character in a cell)
    zero_byte: bool
    #: a line longer than a chunk: only then may a field pass the field limit
    long_line: bool


def scan_lines(source: Path) -> LineScan | None:
    """Count the lines, or None when a lone ``\r`` ends one.

    After a lone ``\r`` (old Mac files, or a stray one in a cell) the C
    reader drops a record's leading empty field, so such a file always
    goes to the careful reader.
    """
    lines = 0
    ended_with_cr = zero_byte = long_line = False
    last = b""
    since_line_end = 0
    with source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if ended_with_cr and chunk[:1] != b"\n":
                return None
            trailing_cr = chunk.endswith(b"\r")  # its LF may start the next chunk
            returns = chunk.count(b"\r")
            if returns and returns - trailing_cr > chunk.count(b"\r\n"):
                return None
            ends = chunk.count(b"\n")
            lines += ends
            zero_byte = zero_byte or b"\x00" in chunk
            if ends:
                long_line = long_line or since_line_end + chunk.index(b"\n") > _CHUNK
                since_line_end = len(chunk) - chunk.rindex(b"\n") - 1
            else:
                since_line_end += len(chunk)
                long_line = long_line or since_line_end > _CHUNK
            ended_with_cr = trailing_cr
            last = chunk[-1:]
    if ended_with_cr:
        return None
    if last not in (b"", b"\n"):
        lines += 1  # the last line has no line end
    return LineScan(lines, zero_byte, long_line)
