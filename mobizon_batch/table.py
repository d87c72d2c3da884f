"""Read CSV and Excel lists into text columns; write result tables atomically.

Why one module for both directions: the rules that make a list safe to
read (every cell is text, nothing is reinterpreted) are the same ones that
make a results file safe to open in Excel (a phone stays text, a cell that
starts with ``=`` is not a formula), and they are easiest to keep
consistent in one place.

Reading never guesses silently where a guess could hurt: the encoding is
detected from hard evidence (a BOM, the zero bytes of UTF-16, strict UTF-8)
and only then falls back to Windows-1251, the encoding Russian-locale Excel
saves; a file that looks like broken UTF-8 is refused with a hint rather
than read as gibberish.  Charset-guessing libraries are deliberately not
used: the set of encodings real lists come in is small and known, and a
statistical guess would be harder to explain in an error message.

Every problem with the file as a whole is an ``InputError`` (exit code 3)
whose message says what is wrong and what to do; problems with one line
(too many fields) become that row's reason, so one bad line does not stop
the others.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gc
import io
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.sheetxml import excel_unescape, write_sheet

Format = Literal["csv", "xlsx"]

TEXT_EXTENSIONS = frozenset({".csv", ".txt", ".tsv", ".tab", ""})
XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm"})
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}

_HEAD_BYTES = 64 * 1024
_FIELD_LIMIT = 16 * 1024 * 1024
_SPAN_LIMIT = 20  # a record over more lines than this is most likely an unmatched quote

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OTHER_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
    (b"{\\rtf", "an RTF document"),
    (b"SQLite format 3", "an SQLite database"),
)
_KNOWN_OTHER_EXTENSIONS = {
    ".xls": "an Excel 97-2003 workbook (.xls)",
    ".ods": "an OpenDocument spreadsheet (.ods)",
    ".numbers": "an Apple Numbers file",
    ".json": "a JSON file",
    ".pdf": "a PDF document",
    ".doc": "a Word document",
    ".docx": "a Word document",
}
_SAVE_AS = "save it as .xlsx or as CSV (UTF-8) and try again"

# Valid UTF-8 sequences of two to four bytes: their share among the high
# bytes tells broken UTF-8 (mostly valid) from a single-byte encoding.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_LOW_BYTES = bytes(range(0x80))


@dataclass(frozen=True, eq=False)
class InputTable:
    """A list as read: text columns, and where each row came from.

    ``frame`` has one ``str`` column per input column, in the input's order
    and with its names (trimmed); missing cells are ``""``.  Fully empty
    rows are gone, so ``source_lines[i]`` gives the line of the file (CSV,
    counting from 1 with the header) or the spreadsheet row (XLSX) that
    ``frame`` row ``i`` came from.  ``row_problems`` maps a row position to
    a sentence when the line itself was malformed (more fields than the
    header); ``prepare`` makes such rows invalid.
    """

    frame: pd.DataFrame
    source_lines: np.ndarray[Any, np.dtype[np.int64]]
    path: Path
    format: Format
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    row_problems: Mapping[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def describe(self) -> str:
        """``list.csv (CSV, UTF-8, delimiter ';')`` — for summaries and messages."""
        if self.format == "xlsx":
            return f"{self.path.name} (XLSX, sheet {self.sheet!r})"
        delimiter = "tab" if self.delimiter == "\t" else repr(self.delimiter)
        return f"{self.path.name} (CSV, {self.encoding}, delimiter {delimiter})"


# ------------------------------------------------------------------- reading


def read_table(
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
) -> InputTable:
    """Read a CSV or XLSX list; every problem with the file is an InputError.

    ``encoding`` and ``delimiter`` apply to CSV, ``sheet`` (a name, or a
    number counting from 1) to XLSX; giving one for the other format is a
    ConfigError, because it means the command is not doing what its author
    thinks.
    """
    source = Path(path)
    head = _read_head(source)
    kind = _sniff_kind(source, head)
    if kind == "xlsx":
        if encoding or delimiter:
            raise ConfigError(
                f"--encoding and --delimiter apply to CSV files; {source.name} is an Excel workbook"
            )
        return _read_xlsx(source, sheet)
    if sheet is not None:
        raise ConfigError(f"--sheet applies to Excel workbooks; {source.name} is a text file")
    codec = check_encoding(encoding) if encoding else None
    sep = check_delimiter(delimiter) if delimiter else None
    return _read_csv(source, head, codec, sep)


def check_encoding(name: str) -> str:
    """A Python codec name for ``--encoding``, or ConfigError."""
    try:
        codec = codecs.lookup(name.strip()).name
    except LookupError:
        raise ConfigError(
            f"unknown encoding {name!r} for --encoding: try utf-8, cp1251 or utf-16"
        ) from None
    return codec


def check_delimiter(value: str) -> str:
    """The one-character delimiter for ``--delimiter`` (``tab`` and ``\\t`` allowed)."""
    sep = DELIMITER_NAMES.get(value.strip().lower(), value) if value.strip() else value
    if len(sep) != 1 or sep in '"\r\n':
        raise ConfigError(
            f"--delimiter must be one character such as , ; | or 'tab', not {value!r}"
        )
    return sep


def sniff_format(path: str | os.PathLike[str]) -> Format:
    """``csv`` or ``xlsx`` judged by content; InputError for anything else."""
    source = Path(path)
    return _sniff_kind(source, _read_head(source))


def decode_text_file(path: str | os.PathLike[str], encoding: str | None = None) -> str:
    """The whole text of a small text file (an opt-out list), decoded as read_table would."""
    source = Path(path)
    head = _read_head(source)
    kind = _sniff_kind(source, head)
    if kind != "csv":
        raise InputError(f"{source.name} is an Excel workbook; give the list as text or CSV")
    data = source.read_bytes()
    codec = check_encoding(encoding) if encoding else _detect_encoding(source, data, whole=True)
    return _decode_all(source, data, codec, explicit=bool(encoding))


def _read_head(source: Path) -> bytes:
    if not source.exists():
        raise InputError(f"input file not found: {source}")
    if source.is_dir():
        raise InputError(f"{source} is a folder, not a file: give the path of a CSV or XLSX file")
    try:
        with source.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
    if not head.strip():
        raise InputError(f"{source.name} is empty: it needs a header line and at least one row")
    return head


def _sniff_kind(source: Path, head: bytes) -> Format:
    """CSV or XLSX from the content (extension only for the message)."""
    suffix = source.suffix.lower()
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind(source)
    if head.startswith(_OLE_MAGIC):
        if _is_encrypted_ole(source):
            raise InputError(
                f"{source.name} is password-protected: open it in Excel, remove the password "
                f"(File → Info → Protect Workbook → Encrypt with Password) and save it again"
            )
        raise InputError(
            f"{source.name} is an old Excel 97-2003 (.xls) or other Office binary file: {_SAVE_AS}"
        )
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            raise InputError(f"{source.name} is {what}, not a list: give a CSV or XLSX file")
    if suffix in XLSX_EXTENSIONS:
        raise InputError(
            f"{source.name} is not a valid Excel workbook (it is not a zip archive, so it is "
            f"corrupt or a text file with the wrong name): {_SAVE_AS}"
        )
    if suffix in _KNOWN_OTHER_EXTENSIONS:
        raise InputError(
            f"{source.name} looks like {_KNOWN_OTHER_EXTENSIONS[suffix]}, which mobizon-batch "
            f"does not read: {_SAVE_AS}"
        )
    if suffix not in TEXT_EXTENSIONS:
        raise InputError(
            f"unknown format {suffix!r} ({source.name}): give a .csv, .txt or .xlsx file"
        )
    return "csv"


def _zip_kind(source: Path) -> Format:
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
            mimetype = (
                archive.read("mimetype").decode("ascii", "replace") if ("mimetype" in names) else ""
            )
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(
            f"{source.name} is a damaged zip/xlsx file ({exc}): open it in Excel and save it "
            f"again, or export it as CSV"
        ) from exc
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "opendocument.spreadsheet" in mimetype:
        what = "an OpenDocument spreadsheet (.ods)"
    elif "word/document.xml" in names:
        what = "a Word document"
    else:
        what = "a zip archive without an Excel workbook inside"
    raise InputError(f"{source.name} is {what}, which mobizon-batch does not read: {_SAVE_AS}")


def _is_encrypted_ole(source: Path) -> bool:
    """An encrypted xlsx is an OLE container with an EncryptionInfo stream."""
    marker = "EncryptionInfo".encode("utf-16-le")
    try:
        with source.open("rb") as handle:
            return marker in handle.read(8 * 1024 * 1024)
    except OSError:
        return False


# --------------------------------------------------------------- encodings


def _detect_encoding(source: Path, head: bytes, *, whole: bool) -> str:
    """The codec to read with, from evidence in the first bytes.

    ``whole`` says ``head`` is the entire file (so a cut multibyte character
    at its end is an error, not an artefact of cutting).
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    utf16 = _utf16_without_bom(head)
    if utf16:
        return utf16
    if b"\x00" in head:
        raise _binary(source)
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=whole)
    except UnicodeDecodeError:
        return _single_byte_or_broken(source, head if whole else _all_bytes(source))
    return "utf-8"


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 without a BOM: the high byte of each unit is nearly always 0x00 or 0x04.

    Lists are digits, Latin and Cyrillic text; in UTF-16 those units have a
    high byte of 0 (ASCII) or 4 (Cyrillic), so one of the two byte lanes is
    almost constant, which no 8-bit text is.
    """
    sample = head[: len(head) - len(head) % 2]
    if len(sample) < 8:
        return None
    for lane, codec in ((1, "utf-16-le"), (0, "utf-16-be")):
        high = sample[lane::2]
        share = (high.count(0) + high.count(4)) / len(high)
        if share >= 0.9 and high.count(0) >= len(high) // 4:
            try:
                sample.decode(codec)
            except UnicodeDecodeError:
                continue
            return codec
    return None


def _all_bytes(source: Path) -> bytes:
    try:
        return source.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def _single_byte_or_broken(source: Path, data: bytes) -> str:
    """cp1251 for a file that is not UTF-8, unless it is *mostly* UTF-8.

    A file that is mostly valid UTF-8 with a few bad bytes was damaged or
    pieced together from two encodings; reading it as cp1251 would turn
    every Cyrillic letter into two wrong ones, so it is refused instead.
    """
    high = len(data.translate(None, _LOW_BYTES))
    in_sequences = sum(len(m) for m in _UTF8_MULTIBYTE.findall(data))
    if high and in_sequences * 2 >= high:
        error = _first_decode_error(data, "utf-8")
        where = _where(data, error.start, "utf-8") if error else "somewhere"
        raise InputError(
            f"{source.name} is almost but not quite UTF-8: {where} has bytes that are not "
            f"valid UTF-8. Fix that line (or save the file again as CSV UTF-8), or if you "
            f"know the file's encoding pass it with --encoding (for example --encoding cp1251)"
        )
    return "cp1251"


def _first_decode_error(data: bytes, codec: str) -> UnicodeDecodeError | None:
    try:
        data.decode(codec)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _where(data: bytes, position: int, codec: str) -> str:
    before = data[:position].decode(codec, errors="replace")
    line = before.count("\n") + 1
    return f"line {line} (byte 0x{data[position]:02x} at offset {position})"


def _decode_all(source: Path, data: bytes, codec: str, *, explicit: bool) -> str:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise _undecodable(source, data, codec, exc, explicit=explicit) from None
    if _looks_binary(text):
        raise _binary(source)
    return text


def _undecodable(
    source: Path, data: bytes, codec: str, exc: UnicodeDecodeError, *, explicit: bool
) -> InputError:
    label = _codec_label(codec)
    where = _where(data, exc.start, codec) if exc.start < len(data) else "the end"
    hint = (
        "check the --encoding you gave (utf-8, cp1251 and utf-16 are the usual ones)"
        if explicit
        else "pass the file's encoding with --encoding (for example --encoding cp1251, "
        "--encoding utf-16 or --encoding koi8-r)"
    )
    return InputError(f"{source.name} cannot be read as {label}: {where} does not decode; {hint}")


def _codec_label(codec: str) -> str:
    return {
        "utf-8-sig": "UTF-8",
        "utf-8": "UTF-8",
        "cp1251": "Windows-1251",
        "utf-16": "UTF-16",
        "utf-16-le": "UTF-16",
        "utf-16-be": "UTF-16",
    }.get(codec, codec)


def _looks_binary(text: str) -> bool:
    """Control characters (other than tab, newlines, form feed) in more than 1% of a text."""
    sample = text[:_HEAD_BYTES]
    if "\x00" in sample:
        return True
    controls = sum(1 for ch in sample if (ch < " " and ch not in "\t\n\r\f") or ch == "\x7f")
    return controls > max(2, len(sample) // 100)


def _binary(source: Path) -> InputError:
    return InputError(
        f"{source.name} looks like a binary file, not a text list: give a CSV or XLSX file"
    )


# --------------------------------------------------------------------- CSV


def _read_csv(source: Path, head: bytes, codec: str | None, sep: str | None) -> InputTable:
    explicit = codec is not None
    whole = source.stat().st_size <= len(head)
    if codec is None:
        codec = _detect_encoding(source, head, whole=whole)
    elif codec in ("utf-8", "utf_8") and head.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    sample = _decoded_sample(source, head, codec, whole=whole, explicit=explicit)
    if _looks_binary(sample):
        raise _binary(source)
    if sep is None:
        sep = sniff_delimiter(sample)
    try:
        return _parse_csv(source, codec, sep)
    except UnicodeDecodeError:
        if explicit or codec != "utf-8":
            data = _all_bytes(source)
            error = _first_decode_error(data, codec)
            if error is None:  # pragma: no cover - the reader just failed on it
                raise
            raise _undecodable(source, data, codec, error, explicit=explicit) from None
        fallback = _single_byte_or_broken(source, _all_bytes(source))
        try:
            return _parse_csv(source, fallback, sep)
        except UnicodeDecodeError:
            data = _all_bytes(source)
            error = _first_decode_error(data, fallback)
            assert error is not None
            raise _undecodable(source, data, fallback, error, explicit=False) from None


def _decoded_sample(source: Path, head: bytes, codec: str, *, whole: bool, explicit: bool) -> str:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    try:
        text: str = decoder.decode(head, final=whole)
    except UnicodeDecodeError as exc:
        raise _undecodable(source, head, codec, exc, explicit=explicit) from None
    if not whole:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
    return text


def sniff_delimiter(sample: str) -> str:
    """The delimiter among ``, ; tab |`` that splits the sample most consistently.

    Each candidate splits the sample with real CSV quoting; it must give the
    header at least two fields, and wins by the share of data lines with as
    many fields as the header, then by the number of fields.  This is why a
    ``;`` file whose texts contain commas is not mistaken for a comma file:
    with ``,`` its header is one field.
    """
    best: tuple[float, int, int] | None = None
    choice = ","
    for rank, sep in enumerate(DELIMITERS):
        try:
            reader = csv.reader(io.StringIO(sample, newline=""), delimiter=sep)
            records = [r for r in reader if any(r)]
        except csv.Error:  # this delimiter cannot be the one
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        data = records[1:] or records
        consistent = sum(1 for r in data if len(r) == width) / len(data)
        key = (consistent, width, -rank)
        if best is None or key > best:
            best, choice = key, sep
    return choice


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small containers are made.

    Each row is a new list or tuple; without the pause the collector runs
    over the ever-growing heap again and again, which doubles the time to
    read a million rows.  Rows of strings form no cycles, so nothing is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_csv(source: Path, codec: str, sep: str) -> InputTable:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    with gc_paused(), _open_text(source, codec) as handle:
        reader = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True)
        try:
            header, header_end = _first_record(reader)
            if header is None:
                raise InputError(
                    f"{source.name} is empty: it needs a header line and at least one row"
                )
            rows: list[list[str]] = list(reader)
            end = reader.line_num
        except csv.Error as exc:
            raise _csv_error(source, reader.line_num, exc) from None
    if end - header_end == len(rows):
        first = np.arange(header_end + 1, header_end + 1 + len(rows), dtype=np.int64)
        spans: np.ndarray[Any, np.dtype[np.int64]] | None = None
    else:  # some records span several lines: read again, noting where each starts
        rows = []  # free the first reading before making the second
        rows, first, spans = _parse_csv_tracking_lines(source, codec, sep)
    return _table_from_rows(
        source,
        header,
        rows,
        first,
        spans,
        fmt="csv",
        encoding=_codec_label(codec),
        delimiter=sep,
        sheet=None,
    )


def _open_text(source: Path, codec: str) -> IO[str]:
    try:
        return source.open("r", encoding=codec, errors="strict", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def _first_record(reader: Any) -> tuple[list[str] | None, int]:
    for record in reader:
        if any(cell.strip() for cell in record):
            return record, reader.line_num
    return None, reader.line_num


def _parse_csv_tracking_lines(
    source: Path, codec: str, sep: str
) -> tuple[list[list[str]], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rows: list[list[str]] = []
    starts: list[int] = []
    ends: list[int] = []
    with gc_paused(), _open_text(source, codec) as handle:
        reader = csv.reader(handle, delimiter=sep, quotechar='"', doublequote=True)
        try:
            _, previous = _first_record(reader)
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
        spans[-1] = max(int(spans[-1]), _SPAN_LIMIT + 1)
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


def _table_from_rows(
    source: Path,
    header: Sequence[Any],
    rows: list[list[str]],
    first_lines: np.ndarray[Any, Any],
    spans: np.ndarray[Any, Any] | None,
    *,
    fmt: Format,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
) -> InputTable:
    """Drop empty rows, even out ragged ones, name the columns, build the frame."""
    names = [str(h).replace("\ufeff", "").strip() for h in header]
    width = len(names)
    keep: list[int] = []
    problems: dict[int, str] = {}
    ragged = False
    for position, row in enumerate(rows):
        if not any(row) or (not row[0].strip() and not "".join(row).strip()):
            continue  # a fully empty row (the first cell is checked first: it is cheap)
        if len(row) != width:
            ragged = True
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                problems[len(keep)] = (
                    f"the line has {len(row)} fields but the header has {width} "
                    f"(an unquoted {_delimiter_word(delimiter)} in a value?)"
                )
        if spans is not None and spans[position] > _SPAN_LIMIT:
            problems[len(keep)] = (
                'a quote (") in this row is never closed, so it takes in the lines after it'
            )
        keep.append(position)
    if not keep:
        raise InputError(
            f"{source.name} has a header line but no data rows"
            if rows or names
            else f"{source.name} is empty: it needs a header line and at least one row"
        )
    if len(keep) != len(rows):
        rows = [rows[i] for i in keep]
    if ragged:
        rows = [r[:width] if len(r) >= width else r + [""] * (width - len(r)) for r in rows]
    lines = (
        first_lines[np.asarray(keep, dtype=np.int64)]
        if len(keep) != len(first_lines)
        else (first_lines)
    )
    columns = list(zip(*rows, strict=True)) if width else []
    del rows
    data: dict[str, pd.Series] = {}
    for index, (name, values) in enumerate(zip(_unique_names(names), columns, strict=True)):
        if not names[index] and not any(values):
            continue  # an unnamed, empty column: a trailing delimiter, not data
        data[name] = pd.Series(np.array(values, dtype=object), dtype="str")
    frame = pd.DataFrame(data)
    frame.index = pd.RangeIndex(len(frame))
    return InputTable(
        frame=frame,
        source_lines=np.asarray(lines, dtype=np.int64),
        path=source,
        format=fmt,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        row_problems=problems,
    )


def _delimiter_word(delimiter: str | None) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
        delimiter or "", repr(delimiter)
    )


def _unique_names(names: Sequence[str]) -> list[str]:
    """Blank names become ``column N``; a repeated name gets `` (2)``, `` (3)``…"""
    result: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        base = name or f"column {position}"
        candidate, copy = base, 1
        while candidate in seen:
            copy += 1
            candidate = f"{base} ({copy})"
        seen.add(candidate)
        result.append(candidate)
    return result


# -------------------------------------------------------------------- XLSX


def _read_xlsx(source: Path, sheet: str | int | None) -> InputTable:
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
    return _table_from_rows(
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


# ------------------------------------------------------------------- writing


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


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[str]:
    """A temporary path beside ``target``, renamed over it when the block succeeds.

    What is written there is synced to disk first, and the new file gets the
    old one's permissions (or the usual ones: ``mkstemp`` makes files
    private), so a reader — or a crash — sees the old file or the new one,
    never half a file.  Any OSError becomes a ConfigError naming the file.
    """
    parent = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=parent
        )
    except OSError as exc:
        raise ConfigError(f"cannot write in {parent}: {exc.strerror}") from exc
    os.close(descriptor)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        _match_mode(target, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror or exc} (is it open in another program?)"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _match_mode(target: Path, temporary: str) -> None:
    """Give the new file the old file's permissions, or the usual ones (mkstemp uses 0600)."""
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)


def _write_csv(frame: pd.DataFrame, handle: IO[bytes], delimiter: str) -> None:
    """Write with the csv module: a third faster than ``DataFrame.to_csv`` here.

    Values are turned into plain Python objects column by column first
    (``_csv_values``): gaps become empty fields, whole floats integers.
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
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
    values = column.tolist()
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, np.dtype):
        return ["" if v is pd.NA else v for v in values]  # nullable Int64 and friends
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return values
    return [v if isinstance(v, str) else _csv_scalar(v) for v in values]


def _csv_scalar(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        if number.is_integer() and abs(number) < 1e16:
            return int(number)
        return number
    return value
