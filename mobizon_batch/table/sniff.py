"""What kind of file this is, in which encoding, split by which delimiter.

Reading never guesses silently where a guess could hurt: the encoding is
detected from hard evidence (a BOM, the zero bytes of UTF-16, strict UTF-8)
and only then falls back to a single-byte Cyrillic encoding — Windows-1251,
the one Russian-locale Excel saves, or KOI8-R or CP866 when the letters say
so; a file that looks like broken UTF-8 is refused with a hint rather
than read as gibberish.  Charset-guessing libraries are deliberately not
used: the set of encodings real lists come in is small and known, and a
statistical guess would be harder to explain in an error message; the
three single-byte candidates are told apart by a letter-case count that
fits in a docstring (``cyrillic_single_byte``).  The kind
of file is judged by its content, the extension only names it in messages.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import zipfile
from pathlib import Path

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.table.model import Format

TEXT_EXTENSIONS = frozenset({".csv", ".txt", ".tsv", ".tab", ""})
XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm"})
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
_HEAD_BYTES = 64 * 1024
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
_TITLE_LINES = 30  # lines above the header a delimiter guess looks past
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r\f") + b"\x7f"


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
    return sniff_kind(source, read_head(source))


def read_head(source: Path) -> bytes:
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


def sniff_kind(source: Path, head: bytes) -> Format:
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
            mimetype = ""
            if "mimetype" in names:  # at most a line: the part may be anything
                with archive.open("mimetype") as part:
                    mimetype = part.read(200).decode("ascii", "replace")
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


def detect_encoding(source: Path, head: bytes, *, whole: bool) -> str:
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
    if _mostly_binary(head):
        raise binary_file_error(source)
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=whole)
    except UnicodeDecodeError:
        return single_byte_or_broken(source, head if whole else read_all_bytes(source))
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


def read_all_bytes(source: Path) -> bytes:
    try:
        return source.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def single_byte_or_broken(source: Path, data: bytes) -> str:
    """cp1251 for a file that is not UTF-8, unless it is *mostly* UTF-8.

    A file that is mostly valid UTF-8 with a few bad bytes was damaged or
    pieced together from two encodings; reading it as cp1251 would turn
    every Cyrillic letter into two wrong ones, so it is refused instead.
    """
    high = len(data.translate(None, _LOW_BYTES))
    in_sequences = sum(len(m) for m in _UTF8_MULTIBYTE.findall(data))
    if high and in_sequences * 2 >= high:
        error = first_decode_error(data, "utf-8")
        where = _where(data, error.start, "utf-8") if error else "somewhere"
        raise InputError(
            f"{source.name} is almost but not quite UTF-8: {where} has bytes that are not "
            f"valid UTF-8. Fix that line (or save the file again as CSV UTF-8), or if you "
            f"know the file's encoding pass it with --encoding (for example --encoding cp1251)"
        )
    return cyrillic_single_byte(data)


#: The single-byte encodings lists come in, most common first: Windows-1251
#: (Russian-locale Excel), KOI8-R (old Unix and mail systems), CP866 (DOS
#: and old accounting exports).  A closed list: each reads any byte, so only
#: the letters it makes can tell them apart.
SINGLE_BYTE_CODECS = ("cp1251", "koi8-r", "cp866")
_LOWER_LETTERS = frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі")
_UPPER_LETTERS = frozenset(ch.upper() for ch in _LOWER_LETTERS)


def cyrillic_single_byte(data: bytes) -> str:
    """Which of ``SINGLE_BYTE_CODECS`` makes the bytes read as Cyrillic text.

    Each candidate decodes the high bytes; running text is mostly lowercase
    letters, so a codec scores a point for each lowercase letter that
    follows a letter, and loses two for each high byte that became anything
    but a letter (KOI8-R read as Windows-1251 gives capitals in the middle
    of words; CP866 gives punctuation and box lines).  A tie goes to
    Windows-1251, by far the most common.
    """
    sample = data[: 256 * 1024]
    best, choice = None, SINGLE_BYTE_CODECS[0]
    for codec in SINGLE_BYTE_CODECS:
        text = sample.decode(codec, errors="replace")
        score = 0
        previous = " "
        for ch in text:
            if ch >= "\x80":
                if ch in _LOWER_LETTERS:
                    score += 1 if previous.isalpha() else 0
                elif ch in _UPPER_LETTERS:
                    score -= 1 if previous in _LOWER_LETTERS else 0
                else:
                    score -= 2
            previous = ch
        if best is None or score > best:
            best, choice = score, codec
    return choice


def first_decode_error(data: bytes, codec: str) -> UnicodeDecodeError | None:
    try:
        data.decode(codec)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _where(data: bytes, position: int, codec: str) -> str:
    before = data[:position].decode(codec, errors="replace")
    line = before.count("\n") + 1
    return f"line {line} (byte 0x{data[position]:02x} at offset {position})"


def decode_all(source: Path, data: bytes, codec: str, *, explicit: bool) -> str:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise undecodable_error(source, data, codec, exc, explicit=explicit) from None
    if looks_binary(text):
        raise binary_file_error(source)
    return text


def undecodable_error(
    source: Path, data: bytes, codec: str, exc: UnicodeDecodeError, *, explicit: bool
) -> InputError:
    label = codec_label(codec)
    where = _where(data, exc.start, codec) if exc.start < len(data) else "the end"
    hint = (
        "check the --encoding you gave (utf-8, cp1251 and utf-16 are the usual ones)"
        if explicit
        else "pass the file's encoding with --encoding (for example --encoding cp1251, "
        "--encoding utf-16, --encoding koi8-r or --encoding cp866)"
    )
    return InputError(f"{source.name} cannot be read as {label}: {where} does not decode; {hint}")


def codec_label(codec: str) -> str:
    return {
        "utf-8-sig": "UTF-8",
        "utf-8": "UTF-8",
        "cp1251": "Windows-1251",
        "koi8-r": "KOI8-R",
        "koi8_r": "KOI8-R",
        "cp866": "CP866",
        "utf-16": "UTF-16",
        "utf-16-le": "UTF-16",
        "utf-16-be": "UTF-16",
    }.get(codec, codec)


def looks_binary(text: str) -> bool:
    """Control characters (other than tab, newlines, form feed) in more than 1% of a text.

    A zero byte counts like any other control character: one stray NUL in a
    list saved by a broken export is that line's problem (``model`` makes
    the row invalid, naming its line), not a reason to call the file binary.
    """
    sample = text[:_HEAD_BYTES]
    controls = sum(1 for ch in sample if (ch < " " and ch not in "\t\n\r\f") or ch == "\x7f")
    return controls > max(2, len(sample) // 100)


def _mostly_binary(head: bytes) -> bool:
    """Control bytes in more than 1% of the first bytes (after UTF-16 was ruled out).

    The byte-level twin of ``looks_binary``, for before the encoding is known.
    """
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > max(2, len(head) // 100)


def binary_file_error(source: Path) -> InputError:
    return InputError(
        f"{source.name} looks like a binary file, not a text list: give a CSV or XLSX file"
    )


def sniff_delimiter(sample: str) -> str:
    """The delimiter among ``, ; tab |`` that splits the sample most consistently.

    Each candidate splits the sample with real CSV quoting; it must give the
    header at least two fields, and wins by the share of data lines with as
    many fields as the header, then by the number of fields.  This is why a
    ``;`` file whose texts contain commas is not mistaken for a comma file:
    with ``,`` its header is one field.
    """
    best: tuple[float, int, int, int] | None = None
    choice = ","
    for rank, sep in enumerate(DELIMITERS):
        try:
            reader = csv.reader(io.StringIO(sample, newline=""), delimiter=sep)
            records = [r for r in reader if any(r)]
        except csv.Error:  # this delimiter cannot be the one
            continue
        # A title above the header ("Выгрузка клиентов на 28.11.2026;;;") has
        # one value: the header is the first record with two.
        skipped = next(
            (i for i, r in enumerate(records[:_TITLE_LINES]) if sum(1 for c in r if c.strip()) > 1),
            None,
        )
        if skipped is None:
            continue
        records = records[skipped:]
        width = len(records[0])
        data = records[1:] or records
        consistent = sum(1 for r in data if len(r) == width) / len(data)
        key = (consistent, -skipped, width, -rank)
        if best is None or key > best:
            best, choice = key, sep
    return choice
