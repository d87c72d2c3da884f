"""Reading lists in every encoding and shape; writing results atomically."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from mobizon_batch.errors import ConfigError, InputError, StorageError
from mobizon_batch.table import (
    cell_text,
    check_delimiter,
    output_format,
    read_table,
    sniff_delimiter,
    write_table,
)
from tests.fixtures.make_fixtures import CSV_FILES, HEADER, LINES, ROWS, ROWS_RU
from tests.helpers import results_frame_to_write

# ----------------------------------------------------------------- CSV


@pytest.mark.parametrize("name", sorted(CSV_FILES))
def test_every_encoding_and_delimiter_reads_the_same_cells(
    files: dict[str, Path], name: str
) -> None:
    encoding, delimiter, _, rows = CSV_FILES[name]
    table = read_table(files[name])
    assert table.format == "csv"
    assert table.delimiter == delimiter
    assert list(table.frame.columns) == HEADER
    assert table.frame.values.tolist() == rows
    assert list(table.source_lines) == LINES
    assert all(dtype == "str" for dtype in table.frame.dtypes)
    expected = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1251": "Windows-1251"}
    assert table.encoding == expected.get(encoding, "UTF-16")


def test_cells_stay_text_exactly(files: dict[str, Path]) -> None:
    """Leading zeros, long digit strings and quotes survive; nothing becomes a float."""
    frame = read_table(files["utf8_comma.csv"]).frame
    assert frame["code"].tolist() == ["00123", "007", "0", ""]
    assert frame.loc[2, "phone"] == "77051112233"
    assert frame.loc[2, "text"] == 'Hello, Ivan! Line one\nline two "quoted"'


def test_cp1251_is_what_russian_excel_saves(files: dict[str, Path]) -> None:
    table = read_table(files["cp1251_semicolon.csv"])
    assert table.frame.values.tolist() == ROWS_RU
    assert table.describe() == "cp1251_semicolon.csv (CSV, Windows-1251, delimiter ';')"


def test_overrides_win_over_detection(files: dict[str, Path]) -> None:
    table = read_table(files["cp1251_semicolon.csv"], encoding="windows-1251", delimiter=";")
    assert table.frame.values.tolist() == ROWS_RU
    as_comma = read_table(files["utf8_comma.csv"], delimiter="comma")
    assert as_comma.frame.values.tolist() == ROWS
    as_tab = read_table(files["utf16_tab.txt"], delimiter="tab", encoding="utf-16")
    assert as_tab.frame.values.tolist() == ROWS


def test_wrong_encoding_override_is_reported_with_the_line(files: dict[str, Path]) -> None:
    with pytest.raises(InputError) as caught:
        read_table(files["cp1251_semicolon.csv"], encoding="utf-8")
    message = str(caught.value)
    assert "cannot be read as UTF-8" in message
    assert "line 2" in message
    assert "--encoding" in message


def test_unknown_encoding_and_bad_delimiter_are_usage_errors(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        read_table(files["utf8_comma.csv"], encoding="klingon")
    with pytest.raises(ConfigError, match="one character"):
        read_table(files["utf8_comma.csv"], delimiter=";;")
    assert check_delimiter("\\t") == "\t"
    assert check_delimiter("|") == "|"


def test_sniffing_is_not_fooled_by_commas_in_texts() -> None:
    sample = "Телефон;Текст\n87012345678;Здравствуйте, Иван, ваш заказ готов\n87021112233;Да\n"
    assert sniff_delimiter(sample) == ";"
    assert sniff_delimiter('phone,text\n1,"a;b;c"\n2,d\n') == ","
    assert sniff_delimiter("phone|text\n1|a, b\n") == "|"
    assert sniff_delimiter("phone\n1\n") == ","


def test_empty_rows_are_skipped_and_lines_still_match(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("phone,text\n\n77012345678,a\n,\n  ,  \n77021112233,b\n", encoding="utf-8")
    table = read_table(path)
    assert table.frame["phone"].tolist() == ["77012345678", "77021112233"]
    assert list(table.source_lines) == [3, 6]


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    path = tmp_path / "late_header.csv"
    path.write_text("\n\nphone,text\n77012345678,a\n", encoding="utf-8")
    table = read_table(path)
    assert table.columns == ["phone", "text"]
    assert list(table.source_lines) == [4]


def test_ragged_lines(tmp_path: Path) -> None:
    """Short lines are padded; a line with extra values is kept but flagged."""
    path = tmp_path / "ragged.csv"
    path.write_text(
        "phone,text,name\n77012345678,hi\n77021112233,Hello, Ivan,x\n77051112233,ok,z,\n",
        encoding="utf-8",
    )
    table = read_table(path)
    assert table.frame.values.tolist() == [
        ["77012345678", "hi", ""],
        ["77021112233", "Hello", " Ivan"],
        ["77051112233", "ok", "z"],
    ]
    assert list(table.row_problems) == [1]
    assert "4 fields but the header has 3" in table.row_problems[1]


def test_header_names_trimmed_blank_and_repeated_names(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text(" phone , text ,,text,\n77012345678,a,b,c,\n", encoding="utf-8")
    table = read_table(path)
    # the trailing unnamed empty column is dropped; the named ones stay verbatim
    assert table.columns == ["phone", "text", "column 3", "text (2)"]


def test_unclosed_quote_is_flagged(tmp_path: Path) -> None:
    lines = ["phone,text", '77012345678,"oops'] + [f"7702111{i:04d},t{i}" for i in range(30)]
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_table(path)
    assert len(table) == 1
    assert "quote" in table.row_problems[0]


def test_utf8_file_with_cp1251_tail_falls_back_only_when_not_mostly_utf8(tmp_path: Path) -> None:
    """Past the first 64 KB a non-UTF-8 byte switches a cp1251 file to cp1251."""
    rows = "".join(f"7701{i:07d},text {i}\n" for i in range(6000))
    path = tmp_path / "late.csv"
    path.write_bytes(("phone,text\n" + rows).encode() + "7709999999,Привет\n".encode("cp1251"))
    table = read_table(path)
    assert table.encoding == "Windows-1251"
    assert table.frame["text"].iloc[-1] == "Привет"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "empty.csv is empty"),
        ("blank.csv", "blank.csv is empty"),
        ("header_only.csv", "has a header line but no data rows"),
        ("garbage.csv", "looks like a binary file"),
        ("document.pdf", "is a PDF document"),
        ("notes.json", "JSON file"),
        ("broken_utf8.csv", "line 3"),
        ("protected.xlsx", "password-protected"),
        ("legacy.xls", "Excel 97-2003"),
        ("corrupt.xlsx", "damaged"),
        ("broken_xml.xlsx", "may be damaged"),
        ("not_a_zip.xlsx", "not a valid Excel workbook"),
        ("header_only.xlsx", "has a header line but no data rows"),
    ],
)
def test_unusable_files_are_input_errors(files: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_table(files[name])


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "list.dat"
    path.write_text("phone,text\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"unknown format '\.dat'"):
        read_table(path)


# ---------------------------------------------------------------- XLSX


def test_xlsx_numbers_formulas_empty_rows_and_trimmed_headers(files: dict[str, Path]) -> None:
    table = read_table(files["phones_numbers.xlsx"])
    assert table.format == "xlsx"
    assert table.sheet == "Рассылка"
    assert table.columns == ["Phone", "Name", "Text"]
    assert table.frame.values.tolist() == [
        ["77012345678", "Айгерим", "Здравствуйте!"],
        ["87021112233", "Ерлан", "Привет, Ерлан"],
        ["77051112233", "Ivan", "Hello"],
    ]
    assert list(table.source_lines) == [2, 4, 5]  # spreadsheet rows; row 3 was empty


def test_xlsx_sheet_by_name_number_and_missing(files: dict[str, Path]) -> None:
    by_name = read_table(files["phones_numbers.xlsx"], sheet="second")
    by_number = read_table(files["phones_numbers.xlsx"], sheet="2")
    assert by_name.sheet == by_number.sheet == "Second"
    assert by_name.frame.values.tolist() == [["77071234567", "Второй лист"]]
    with pytest.raises(InputError, match="no sheet 'Third': its sheets are 'Рассылка', 'Second'"):
        read_table(files["phones_numbers.xlsx"], sheet="Third")


def test_xlsx_text_cells_keep_leading_zeros(files: dict[str, Path]) -> None:
    frame = read_table(files["phones_text.xlsx"]).frame
    assert frame.values.tolist() == [
        ["+7 701 234 56 78", "007", "Первое"],
        ["87021112233", "0012", "Второе"],
    ]


def test_xlsx_scientific_text_is_read_verbatim(files: dict[str, Path]) -> None:
    """Repairing is the phone column's business (phones.py), never the reader's."""
    frame = read_table(files["phones_scientific.xlsx"]).frame
    assert frame["phone"].tolist() == ["7.7012345678E+10", "7,70146E+10", "7,7021112233E+10"]


def test_xlsx_cells_read_as_the_text_excel_shows(tmp_path: Path) -> None:
    """Numbers, dates, times, booleans, escapes, errors: each cell as a person sees it."""
    import datetime as dt

    path = tmp_path / "types.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Типы"
    sheet.append(["phone", "text", "when", "flag"])
    sheet.append([77012345678, "a_x0041_b", dt.datetime(2024, 3, 1), True])
    sheet.append([7.7012345678e10, "_x005F_x0041_", dt.datetime(2024, 3, 1, 12, 30, 5), False])
    sheet.append(["007", 12.5, dt.time(9, 30), dt.date(2024, 3, 2)])
    sheet.append([-0.0, 1e20, None, "  kept  "])
    sheet["A6"] = "=1+2"  # a formula no program has calculated: no saved value
    sheet["B6"] = "x"
    workbook.create_chartsheet("chart")  # not a worksheet: never picked
    workbook.save(path)
    table = read_table(path)
    assert table.sheet == "Типы"
    assert table.frame.values.tolist() == [
        ["77012345678", "aAb", "2024-03-01", "TRUE"],
        ["77012345678", "_x0041_", "2024-03-01 12:30:05", "FALSE"],
        ["007", "12.5", "09:30:00", "2024-03-02"],
        ["0", "100000000000000000000", "", "  kept  "],
        ["", "x", "", ""],
    ]
    assert list(table.source_lines) == [2, 3, 4, 5, 6]
    with pytest.raises(InputError, match="no sheet 'chart'"):
        read_table(path, sheet="chart")


def test_format_flags_for_the_other_format_are_usage_errors(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="--sheet applies to Excel"):
        read_table(files["utf8_comma.csv"], sheet="1")
    with pytest.raises(ConfigError, match="apply to CSV"):
        read_table(files["phones_text.xlsx"], encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (77012345678, "77012345678"),
        (77012345678.0, "77012345678"),
        (7.7012345678e10, "77012345678"),
        (12.5, "12.5"),
        (True, "TRUE"),
        ("  kept  ", "  kept  "),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


# ------------------------------------------------------------- writing


def test_write_csv_utf8_bom_integers_without_fraction(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_table(results_frame_to_write(), path, raw_csv=True)  # cells exactly as given
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["phone", "text", "note", "message_id", "campaign_id", "segments", "error"]
    assert rows[1] == ["87012345678", "=1+2", "-minus", "1234567890123", "5", "1", ""]
    assert rows[2][3:5] == ["", ""]
    assert rows[2][1] == "+7 call\r\nme <now> & _x0041_"
    assert not [p for p in tmp_path.iterdir() if p.name != "out.csv"]  # no temp files left


def test_write_csv_with_semicolon(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"a": ["1;2"], "b": ["x"]}), path, delimiter=";")
    assert path.read_bytes().decode("utf-8-sig") == 'a;b\r\n"1;2";x\r\n'


def test_write_csv_round_trips_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    texts = ["lone\rreturn", "two\nlines", "crlf\r\nend", 'quote " and , comma']
    write_table(pd.DataFrame({"phone": ["1", "2", "3", "4"], "text": texts}), path)
    table = read_table(path)
    assert table.frame["text"].tolist() == texts
    assert list(table.source_lines) == [2, 4, 6, 8]


_WRITE_PIECES = [
    "",
    " ",
    "a",
    "Привет",
    ",",
    ";",
    "\t",
    '"',
    "\r",
    "\n",
    "\r\n",
    "x\x00y",
    "😀",
    "1",
]


def _csv_module_bytes(frame: pd.DataFrame, delimiter: str) -> bytes:
    """What the csv module writes for these cells (the rule the writer promises)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(frame.columns.tolist())
    for row in frame.itertuples(index=False, name=None):
        writer.writerow(["" if pd.isna(v) else v for v in row])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


@pytest.mark.parametrize("seed", range(60))
def test_write_csv_quotes_exactly_as_the_csv_module(seed: int, tmp_path: Path) -> None:
    import random

    rng = random.Random(seed)
    delimiter = rng.choice([",", ";", "\t"])
    count = rng.choice([0, 1, 3, 40, 70_000 if seed == 0 else 50])  # 70,000: over one block
    width = rng.choice([1, 1, 2, 4])
    data: dict[str, pd.Series] = {}
    for index in range(width):
        kind = rng.choice(["text", "text", "int", "nullable"])
        if kind == "int":
            data[f"n{index}"] = pd.Series([rng.randrange(-5, 10**13) for _ in range(count)])
        elif kind == "nullable":
            values = [rng.choice([None, rng.randrange(10**9)]) for _ in range(count)]
            data[f"m{index}"] = pd.Series(values, dtype="Int64")
        else:
            cells = [
                "".join(rng.choice(_WRITE_PIECES) for _ in range(rng.randrange(0, 4)))
                for _ in range(count)
            ]
            data[rng.choice(["text", "a,b", 'q"', ""]) + str(index)] = pd.Series(cells, dtype="str")
    frame = pd.DataFrame(data)
    path = tmp_path / "out.csv"
    write_table(frame, path, delimiter=delimiter, raw_csv=True)
    assert path.read_bytes() == _csv_module_bytes(frame, delimiter)


def test_write_csv_single_empty_cells_stay_rows(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"a": ["", "x", ""]}), path)
    assert path.read_bytes().decode("utf-8-sig") == 'a\r\n""\r\nx\r\n""\r\n'


def test_a_failing_disk_write_is_raised_by_write_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks are written by a thread; its error still reaches the caller, and no file."""
    import errno

    from mobizon_batch.table import writing

    monkeypatch.setattr(writing, "_BLOCK", 10)
    real_open = open
    writes: list[int] = []

    class FullDisk:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def write(self, data: bytes) -> int:
            writes.append(len(data))
            if len(writes) > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return int(self.handle.write(data))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    def opening(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if mode == "wb" else handle

    monkeypatch.setattr(writing, "open", opening, raising=False)
    frame = pd.DataFrame({"a": [str(n) for n in range(100)], "b": ["x"] * 100})
    path = tmp_path / "out.csv"
    with pytest.raises(StorageError, match="the disk is full"):
        write_table(frame, path)
    assert len(writes) == 4  # it stopped at the failure
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_write_xlsx_reads_back_through_our_reader(tmp_path: Path) -> None:
    path = tmp_path / "round.xlsx"
    frame = pd.DataFrame({"телефон": ["007", "77012345678"], "текст": ["  пробелы  ", "x"]})
    write_table(frame, path)
    table = read_table(path)
    assert table.frame.values.tolist() == [["007", "  пробелы  "], ["77012345678", "x"]]


def test_write_replaces_atomically_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old", encoding="utf-8")
    os.chmod(path, 0o640)
    write_table(pd.DataFrame({"a": ["new"]}), path)
    assert path.read_bytes().decode("utf-8-sig") == "a\r\nnew\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.xlsx"
    write_table(pd.DataFrame({"a": ["x"]}), fresh)
    # A new file holds numbers: owner-only, whatever the umask lets others read.
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_write_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"name the output file \.csv or \.xlsx"):
        write_table(pd.DataFrame({"a": ["x"]}), tmp_path / "out.xls")
    with pytest.raises(ConfigError, match="does not exist"):
        write_table(pd.DataFrame({"a": ["x"]}), tmp_path / "missing" / "out.csv")
    assert output_format("A.XLSX") == "xlsx"
    assert output_format("a.txt") == "csv"
