"""Reading a CSV (or plain text) list into text columns.

The csv module does the parsing (pandas' reader reinterprets cells); what
is added here is care for real files: records that span lines (a quote in
a text), a quote never closed (which would swallow other people's rows),
fields over the limit, and an encoding that turns out wrong halfway down.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import IO, Any

import numpy as np

from mobizon_batch.errors import InputError
from mobizon_batch.table.csvfast import read_columns
from mobizon_batch.table.model import (
    HEADER_SCAN,
    SPAN_LIMIT,
    HeaderCheck,
    InputTable,
    blank_rows,
    gc_paused,
    header_names,
    pick_header,
    table_from_columns,
    table_from_rows,
)
from mobizon_batch.table.sniff import (
    binary_file_error,
    codec_label,
    detect_encoding,
    first_decode_error,
    looks_binary,
    read_all_bytes,
    single_byte_or_broken,
    sniff_delimiter,
    undecodable_error,
)

_FIELD_LIMIT = 16 * 1024 * 1024
#: ``(header_row, looks_like_header)`` or None: how to find the header line
HeaderChoice = tuple[int | None, HeaderCheck | None] | None


def read_csv(
    source: Path,
    head: bytes,
    codec: str | None,
    sep: str | None,
    header: HeaderChoice = None,
) -> InputTable:
    explicit = codec is not None
    whole = source.stat().st_size <= len(head)
    if codec is None:
        codec = detect_encoding(source, head, whole=whole)
    elif codec in ("utf-8", "utf_8") and head.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    sample = _decoded_sample(source, head, codec, whole=whole, explicit=explicit)
    if looks_binary(sample):
        raise binary_file_error(source)
    if sep is None:
        sep = sniff_delimiter(sample)
    try:
        return _parse_csv(source, codec, sep, header)
    except UnicodeDecodeError:
        if explicit or codec != "utf-8":
            data = read_all_bytes(source)
            error = first_decode_error(data, codec)
            if error is None:  # pragma: no cover - the reader just failed on it
                raise
            raise undecodable_error(source, data, codec, error, explicit=explicit) from None
        fallback = single_byte_or_broken(source, read_all_bytes(source))
        try:
            return _parse_csv(source, fallback, sep, header)
        except UnicodeDecodeError:
            data = read_all_bytes(source)
            error = first_decode_error(data, fallback)
            assert error is not None
            raise undecodable_error(source, data, fallback, error, explicit=False) from None


def _decoded_sample(source: Path, head: bytes, codec: str, *, whole: bool, explicit: bool) -> str:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    try:
        text: str = decoder.decode(head, final=whole)
    except UnicodeDecodeError as exc:
        raise undecodable_error(source, head, codec, exc, explicit=explicit) from None
    if not whole:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
    return text


def _parse_csv(source: Path, codec: str, sep: str, choice: HeaderChoice) -> InputTable:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    header_row, check = choice if choice is not None else (None, None)
    with gc_paused(), _open_text(source, codec) as handle:
        reader = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True)
        try:
            leading = _leading_records(reader, header_row)
            candidates = [(start, cells) for start, _, cells in leading if _has_value(cells)]
            if not candidates:
                raise InputError(
                    f"{source.name} is empty: it needs a header line and at least one row"
                )
            chosen = pick_header(candidates, header_row, check, source)
            header_start = candidates[chosen][0]
            at = next(i for i, (start, _, _) in enumerate(leading) if start == header_start)
            header, header_end = leading[at][2], leading[at][1]
            if header_end == at + 1:  # one line a record so far: the quick reader may go on
                quick = _quick_table(source, codec, sep, header, header_end, header_start)
                if quick is not None:
                    return quick
            rows: list[list[str]] = [cells for _, _, cells in leading[at + 1 :]]
            rows += list(reader)
            end = reader.line_num
        except csv.Error as exc:
            raise _csv_error(source, reader.line_num, exc) from None
    if end - header_end == len(rows):
        first = np.arange(header_end + 1, header_end + 1 + len(rows), dtype=np.int64)
        spans: np.ndarray[Any, np.dtype[np.int64]] | None = None
    else:  # some records span several lines: read again, noting where each starts
        rows = []  # free the first reading before making the second
        rows, first, spans = _parse_csv_tracking_lines(source, codec, sep, header_end)
    return table_from_rows(
        source,
        header,
        rows,
        first,
        spans,
        fmt="csv",
        encoding=codec_label(codec),
        delimiter=sep,
        sheet=None,
        header_line=header_start,
    )


def _quick_table(
    source: Path, codec: str, sep: str, header: list[str], header_end: int, header_start: int
) -> InputTable | None:
    """The table through pandas' C reader (``csvfast``), or None when it cannot be sure."""
    names = header_names(header)
    found = read_columns(source, codec, sep, header_end, len(names), _FIELD_LIMIT)
    if found is None:
        return None
    columns, lines = found.columns, found.lines
    blank = blank_rows(columns)
    if blank.all():
        raise InputError(f"{source.name} has a header line but no data rows")
    if blank.any():
        keep = np.flatnonzero(~blank)
        columns = [column[keep] for column in columns]
        lines = lines[keep]
    return table_from_columns(
        source,
        names,
        [*columns],
        lines,
        {},
        fmt="csv",
        encoding=codec_label(codec),
        delimiter=sep,
        sheet=None,
        header_line=header_start,
        zero_bytes=found.zero_byte,
    )


def _open_text(source: Path, codec: str) -> IO[str]:
    try:
        return source.open("r", encoding=codec, errors="strict", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def _has_value(cells: list[str]) -> bool:
    return any(cell.strip() for cell in cells)


def _leading_records(reader: Any, header_row: int | None) -> list[tuple[int, int, list[str]]]:
    """The first records, ``(first line, last line, cells)``, where the header is looked for.

    Up to ``HEADER_SCAN`` records with a value (empty ones are kept in
    between, so line numbers stay right), or up to ``header_row``.
    """
    leading: list[tuple[int, int, list[str]]] = []
    found = 0
    previous = 0
    for record in reader:
        leading.append((previous + 1, reader.line_num, record))
        previous = reader.line_num
        if _has_value(record):
            found += 1
        if header_row is not None:
            if previous >= header_row and found:
                break
        elif found >= HEADER_SCAN:
            break
    return leading


def _parse_csv_tracking_lines(
    source: Path, codec: str, sep: str, header_end: int
) -> tuple[list[list[str]], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rows: list[list[str]] = []
    starts: list[int] = []
    ends: list[int] = []
    with gc_paused(), _open_text(source, codec) as handle:
        reader = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True)
        try:
            previous = 0
            after: list[str] | None = None
            for candidate in reader:  # past the header (and any title above it)
                if reader.line_num > header_end:
                    after = candidate
                    break
                previous = reader.line_num
            if after is not None:
                rows.append(after)
                starts.append(previous + 1)
                previous = reader.line_num
                ends.append(previous)
            for record in reader:
                rows.append(record)
                starts.append(previous + 1)
                previous = reader.line_num
                ends.append(previous)
        except csv.Error as exc:
            raise _csv_error(source, reader.line_num, exc) from None
    first = np.asarray(starts, dtype=np.int64)
    spans = np.asarray(ends, dtype=np.int64) - first + 1
    if len(spans) and spans[-1] > 1 and _ends_inside_quotes(source, codec, sep):
        # The last record swallowed every line after an unclosed quote: other
        # people's numbers would end up inside one text.  Make it stand out.
        spans[-1] = max(int(spans[-1]), SPAN_LIMIT + 1)
    return rows, first, spans


def _ends_inside_quotes(source: Path, codec: str, sep: str) -> bool:
    """True when the file ends inside a quoted field (a quote never closed).

    The lenient reader used for the data accepts that silently; a strict one
    says "unexpected end of data".  Any other complaint of the strict reader
    is about something the lenient one handles, so it counts as no.
    """
    with _open_text(source, codec) as handle:
        reader = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True, strict=True)
        try:
            for _ in reader:
                pass
        except csv.Error as exc:
            return "unexpected end of data" in str(exc)
    return False


def _csv_error(source: Path, line: int, exc: csv.Error) -> InputError:
    text = str(exc)
    if "field larger than field limit" in text:
        text = 'a field is longer than 16 MB, which usually means a quote (") is never closed'
    return InputError(f"{source.name}, line {line}: {text}")
