"""Read CSV and Excel lists into text columns; write result tables atomically.

The table I/O edge, one module a job: ``sniff`` (what a file is, its
encoding and delimiter), ``csvfile`` and ``xlsxfile`` (reading each kind),
``limits`` (what a file may make us read, checked before any reader),
``model`` (the table they build), ``reading`` (the entry points),
``writing`` (CSV and XLSX out) and ``atomic`` (replacing a file at once).
The names below are the edge's interface; the modules are its inside.
"""

from __future__ import annotations

from mobizon_batch.table.atomic import atomic_file
from mobizon_batch.table.limits import DEFAULT_MAX_INPUT_MB, ReadLimits
from mobizon_batch.table.model import Format, InputTable, gc_paused
from mobizon_batch.table.reading import decode_text_file, read_lines, read_table
from mobizon_batch.table.sniff import (
    DELIMITER_NAMES,
    DELIMITERS,
    TEXT_EXTENSIONS,
    XLSX_EXTENSIONS,
    check_delimiter,
    check_encoding,
    sniff_delimiter,
    sniff_format,
)
from mobizon_batch.table.writing import check_output_path, output_format, write_table
from mobizon_batch.table.xlsxfile import cell_text

__all__ = [
    "DEFAULT_MAX_INPUT_MB",
    "DELIMITERS",
    "DELIMITER_NAMES",
    "TEXT_EXTENSIONS",
    "XLSX_EXTENSIONS",
    "Format",
    "InputTable",
    "ReadLimits",
    "atomic_file",
    "cell_text",
    "check_delimiter",
    "check_encoding",
    "check_output_path",
    "decode_text_file",
    "gc_paused",
    "output_format",
    "read_lines",
    "read_table",
    "sniff_delimiter",
    "sniff_format",
    "write_table",
]
