"""How much a list may make us read: hostile files are refused before any reader runs.

Why a step of its own, before the readers: a workbook is a zip archive, and
a 1 MB file can unpack to gigabytes (one gigantic shared string, or fifty
million tiny ones).  A reader finds out only by trying, after it has spent
the memory.  What the archive declares — each part's packed and unpacked
size in its central directory — and a streamed count of the shared strings
cost almost nothing and bound what any reader (openpyxl, calamine) will
have to hold.  For CSV the file is what it is, so its size and its longest
line are checked the same way: a single line of a gigabyte would otherwise
be read into memory whole.

One knob, ``max_input_mb`` (``--max-input-mb``), sets every limit, so the
one sentence a refusal ends with is always the same: raise it if the file
is genuine.
"""

from __future__ import annotations

import bisect
import operator
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mobizon_batch.config import DEFAULT_MAX_INPUT_MB as DEFAULT_MAX_INPUT_MB
from mobizon_batch.errors import InputError

MB = 1024 * 1024
#: A part bigger than its share of the limit may not unpack to more than this many
#: times its packed size: real sheets pack 5 to 20 times, bombs a thousand.
MAX_RATIO = 100
#: How much more room a results file gets than the list it renders (see ``for_results``).
RESULTS_FACTOR = 4
_CHUNK = 4 * MB


@dataclass(frozen=True)
class ReadLimits:
    """The limits a list is read under, all derived from ``max_input_mb``.

    * a CSV's size, or the total a workbook unpacks to: ``max_input_mb``;
    * one line of a CSV, one shared string of a workbook: 1/500 of it (1 MB);
    * shared strings in a workbook: 10,000 per MB of it (5 million);
    * a workbook part over 1/50 of it (10 MB) may not pack more than 100 to 1.
    """

    max_input_mb: int = DEFAULT_MAX_INPUT_MB

    def __post_init__(self) -> None:
        if self.max_input_mb < 1:
            raise ValueError("max_input_mb must be at least 1")

    @property
    def max_bytes(self) -> int:
        return self.max_input_mb * MB

    @property
    def max_line_bytes(self) -> int:
        return max(MB, self.max_bytes // 500)

    @property
    def max_shared_strings(self) -> int:
        return self.max_input_mb * 10_000

    @property
    def ratio_floor(self) -> int:
        """Parts at most this big (unpacked) are not judged by their compression ratio."""
        return self.max_bytes // 50

    @classmethod
    def for_results(cls, max_input_mb: int = DEFAULT_MAX_INPUT_MB) -> ReadLimits:
        """The limits for a results file of a list read under ``max_input_mb``.

        A results file holds the list and our columns, so it is bigger than
        the list it came from; four times the room keeps a list that was
        accepted from being refused when its own results are read back.
        """
        return cls(max_input_mb * RESULTS_FACTOR)

    def raise_hint(self) -> str:
        return (
            f"if the file is genuine, raise the limit with --max-input-mb "
            f"(now {self.max_input_mb:,})"
        )


def check_csv(source: Path, limits: ReadLimits) -> None:
    """Refuse a CSV (or text) list that is too big, or has a line too long, before parsing."""
    size = _size(source)
    if size > limits.max_bytes:
        raise InputError(
            f"{source.name} is {_mb(size)}, over the {limits.max_input_mb:,} MB limit for a "
            f"list; {limits.raise_hint()}"
        )
    try:
        with source.open("rb") as handle:
            start = _long_line_start(handle, limits.max_line_bytes)
            if start is None:
                return
            handle.seek(0)
            line = _count_breaks(handle, start) + 1
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
    raise InputError(
        f"{source.name}, line {line}, is longer than {_mb(limits.max_line_bytes)} (a list's "
        f"lines are a few hundred characters; is this really a CSV list?); "
        f"{limits.raise_hint()}"
    )


def check_workbook(source: Path, limits: ReadLimits) -> None:
    """Refuse a workbook that would unpack to more than the limits allow, before reading it.

    First the central directory (free): the total unpacked size, and each
    big part's compression ratio.  Then the shared strings are streamed
    (bounded memory) to count them and to measure the longest, since the
    archive's sizes say nothing about how one part is cut into strings.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            parts = archive.infolist()
            total = sum(part.file_size for part in parts)
            if total > limits.max_bytes:
                raise InputError(
                    f"{source.name} would unpack to {_mb(total)}, over the "
                    f"{limits.max_input_mb:,} MB limit for a list; {limits.raise_hint()}"
                )
            for part in parts:
                packed = max(part.compress_size, 1)
                if part.file_size > limits.ratio_floor and part.file_size > MAX_RATIO * packed:
                    raise InputError(
                        f"{source.name} looks like a decompression bomb: its part "
                        f"{part.filename} would unpack to {_mb(part.file_size)} from "
                        f"{_mb(part.compress_size)} ({part.file_size // packed:,} to 1; "
                        f"workbooks pack under {MAX_RATIO} to 1); {limits.raise_hint()}, "
                        f"or save it from Excel as CSV"
                    )
            for name in _shared_string_parts(archive):
                with archive.open(name) as stream:
                    _StringScan(source, name, limits).run(stream)
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
        NotImplementedError,
        zlib.error,
    ) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
        raise InputError(
            f"{source.name} is a damaged zip/xlsx file ({exc}): open it in Excel and save it "
            f"again, or export it as CSV"
        ) from exc


# ---------------------------------------------------------------- workbooks

_RELATIONSHIP = re.compile(rb"<(?:[\w.-]+:)?Relationship\b[^>]*>")
_TYPE = re.compile(rb"""\bType\s*=\s*["']([^"']*)["']""")
_TARGET = re.compile(rb"""\bTarget\s*=\s*["']([^"']*)["']""")
_RELS_LIMIT = MB


def _shared_string_parts(archive: zipfile.ZipFile) -> list[str]:
    """The parts that hold shared strings: the one the workbook names, and any so called.

    The workbook's relationships say which part a reader will load; a part
    merely *named* like shared strings is checked too, in case a reader
    goes by the usual name.
    """
    names = set(archive.namelist())
    found = {name for name in names if name.lower().endswith("sharedstrings.xml")}
    rels = "xl/_rels/workbook.xml.rels"
    if rels in names:
        with archive.open(rels) as stream:
            text = stream.read(_RELS_LIMIT)
        for tag in _RELATIONSHIP.findall(text):
            kind, target = _TYPE.search(tag), _TARGET.search(tag)
            if kind and target and kind.group(1).endswith(b"/sharedStrings"):
                path = target.group(1).decode("utf-8", "replace").lstrip("/")
                path = path if path.startswith("xl/") else f"xl/{path}"
                if path in names:
                    found.add(path)
    return sorted(found)


# A shared string opens with <si> (or <si ...>, <si/>, with a namespace prefix
# perhaps); a raw "<si" can also stand in a comment, a CDATA section or a
# processing instruction, which are skipped whole.  A DOCTYPE is never in a
# workbook (and is how entity bombs start): refused.
_OPEN = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si(?=[\s/>])")
_TOKEN = re.compile(
    rb"<(?:(?:[A-Za-z_][\w.-]*:)?si(?=[\s/>])|(?P<skip>!--|!\[CDATA\[|\?)|(?P<dtd>!DOCTYPE))"
)
_SKIP_TO = {b"!--": b"-->", b"![CDATA[": b"]]>", b"?": b"?>"}
_TAIL = 64  # bytes kept between chunks so that a tag cut in two is still seen


class _StringScan:
    """Counts the shared strings of a part and bounds the longest, chunk by chunk.

    A string is no longer than the distance from its ``<si>`` to the next
    one (or to the end of the part), in bytes of XML: that distance is what
    is measured.  Most parts hold no comment, CDATA or processing
    instruction past the XML declaration; there the strings are found by one
    C-level pass a chunk (``_plain``), elsewhere token by token
    (``_careful``), so that a ``<si>`` inside a comment is not taken for one.  Memory stays at two
    chunks whatever the part holds.
    """

    def __init__(self, source: Path, part: str, limits: ReadLimits) -> None:
        self.source, self.part, self.limits = source, part, limits
        self.count = 0
        self.last = 0  # absolute offset of the last <si> (or of the part's start)
        self.skip_to: bytes | None = None

    def run(self, stream: IO[bytes]) -> None:
        buffer, base, read = b"", 0, 0
        while True:
            chunk = stream.read(_CHUNK)
            read += len(chunk)
            if read > self.limits.max_bytes:  # more than the archive declared: stop anyway
                raise InputError(
                    f"{self.source.name} would unpack to more than "
                    f"{self.limits.max_input_mb:,} MB; {self.limits.raise_hint()}"
                )
            buffer += chunk
            final = not chunk
            cutoff = len(buffer) if final else max(len(buffer) - _TAIL, 0)
            special = max(buffer.rfind(b"<!"), buffer.rfind(b"<?"))
            if self.skip_to is None and special < 0:
                position = self._plain(buffer, base, 0, cutoff)
            else:
                position = self._careful(buffer, base, cutoff, special)
            if final:
                self._opens([base + len(buffer)], counted=False)  # the end closes the last
                return
            base += position
            buffer = buffer[position:]

    def _plain(self, buffer: bytes, base: int, position: int, cutoff: int) -> int:
        """Strings opening in ``buffer[position:cutoff]``, where no comment can hide one.

        Counting ``<si`` and checking that every stretch of half the cell
        limit holds one are C-level passes; only when a stretch holds none
        (a long string, or a prefixed ``<x:si>``) are the gaps measured exactly.
        """
        end = base + cutoff
        half = max(self.limits.max_line_bytes // 2, 1)
        short = buffer.find(b":si", position) < 0
        start = self.last
        while short and start < end:
            low, high = max(start - base, position), min(start + half - base, cutoff + 2)
            short = high > low and buffer.find(b"<si", low, high) >= 0
            start += half
        if not short:
            found = [match.start() + base for match in _OPEN.finditer(buffer, position)]
            self._opens(found[: bisect.bisect_left(found, end)])
            return cutoff
        last = buffer.rfind(b"<si", position, cutoff + 2)
        if last >= 0:  # every gap is under the limit: count them, remember the last
            self._count(buffer.count(b"<si", position, cutoff + 2))
            self.last = base + last
        return cutoff

    def _careful(self, buffer: bytes, base: int, cutoff: int, special: int) -> int:
        """Token by token up to the last ``<!`` or ``<?`` of the buffer, then ``_plain``."""
        position = 0
        while position < cutoff:
            if self.skip_to is None and position > special:
                return self._plain(buffer, base, position, cutoff)
            if self.skip_to is not None:
                found = buffer.find(self.skip_to, position)
                if found < 0:
                    return max(position, len(buffer) - len(self.skip_to))
                position, self.skip_to = found + len(self.skip_to), None
                continue
            match = _TOKEN.search(buffer, position)
            if match is None or match.start() >= cutoff:
                return cutoff
            if match.lastgroup == "skip":
                self.skip_to = _SKIP_TO[match.group("skip")]
            elif match.lastgroup == "dtd":
                raise InputError(
                    f"{self.source.name} is not a workbook Excel wrote: its part {self.part} "
                    f"declares a DOCTYPE; open it in Excel and save it again, or export it as CSV"
                )
            else:
                self._opens([base + match.start()])
            position = match.end()
        return position

    def _opens(self, starts: list[int], *, counted: bool = True) -> None:
        """Strings that open at ``starts`` (ascending): count them, measure the gaps."""
        if not starts:
            return
        limits = self.limits
        edges = [self.last, *starts]
        if max(map(operator.sub, starts, edges)) > limits.max_line_bytes:
            raise InputError(
                f"{self.source.name} has a cell longer than {_mb(limits.max_line_bytes)} (Excel "
                f"itself stops at 32,767 characters); {limits.raise_hint()}"
            )
        self.last = starts[-1]
        if counted:
            self._count(len(starts))

    def _count(self, opened: int) -> None:
        self.count += opened
        limits = self.limits
        if self.count > limits.max_shared_strings:
            raise InputError(
                f"{self.source.name} holds more than {limits.max_shared_strings:,} different "
                f"texts (shared strings), more than a list of a million rows needs; "
                f"{limits.raise_hint()}"
            )


# ---------------------------------------------------------------------- CSV


def _long_line_start(handle: IO[bytes], limit: int) -> int | None:
    """The offset where a line longer than ``limit`` bytes starts, or None.

    Never looks at every byte: from each line start it searches backwards
    from ``limit`` bytes on for the last line break, so a file of short
    lines costs one short search per ``limit`` bytes.  CR, LF and CRLF all
    end lines (as for the csv module); UTF-16's breaks contain those bytes too.
    """
    base = 0  # absolute offset of chunk[0]
    line_start = 0
    end = 0
    while chunk := handle.read(_CHUNK):
        end = base + len(chunk)
        while True:
            lo = max(line_start - base, 0)
            window_end = line_start + limit + 1  # a break must come before this offset
            hi = min(window_end, end) - base
            last = max(chunk.rfind(b"\n", lo, hi), chunk.rfind(b"\r", lo, hi))
            if last >= 0:
                line_start = base + last + 1
                if window_end <= end:
                    continue
                break
            if window_end <= end:
                return line_start
            break
        base = end
    return line_start if end - line_start > limit else None


def _count_breaks(handle: IO[bytes], until: int) -> int:
    """Line breaks (LF, or lone CR) in the first ``until`` bytes: the line number, less one."""
    breaks = 0
    left = until
    previous = b""
    while left > 0:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        breaks += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if previous == b"\r" and chunk.startswith(b"\n"):
            breaks -= 1
        previous = chunk[-1:]
    return breaks


# -------------------------------------------------------------------- words


def _size(source: Path) -> int:
    try:
        return source.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def _mb(size: int) -> str:
    """A size as people say it: ``340 KB``, ``1.2 MB``, ``1,024 MB``."""
    if size < MB:
        return f"{max(size, 1) / 1024:,.0f} KB"
    if size < 10 * MB and size % MB:
        return f"{size / MB:.1f} MB"
    return f"{size / MB:,.0f} MB"
