"""Lists as people have them, through ``validate``: titles, lost letters, old encodings.

Each file here is one that failed a marketing operator: a CRM export with a
title above the header and a totals row below the clients, Kazakh names
saved by Russian Excel, KOI8-R and CP866 exports, duplicate column names,
a workbook whose formulas were never computed, and a list piped in.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import openpyxl
import pytest

from mobizon_batch.cli import EXIT_INPUT, EXIT_OK, main
from mobizon_batch.rowchecks import lost_letters
from mobizon_batch.table import read_table
from tests.fixtures import realistic


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def report_rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.split("\n", 1)[0].count(";") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


# ------------------------------------------------------------ title and totals


def test_a_crm_export_with_a_title_and_a_totals_row_validates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "validate", str(source), "-o", str(report))
    assert code == EXIT_OK, err
    assert "column names on line 3" in out
    rows = report_rows(report)
    assert [r["line"] for r in rows] == ["4", "5", "6", "7"]
    assert [r["verdict"] for r in rows] == ["sendable"] * 3 + ["invalid"]
    assert rows[3]["reason"] == "a totals row, not a recipient"
    assert rows[0]["Сумма"] == "148851.65"
    assert rows[0]["recipient"] == "77012345678"


def test_a_named_phone_column_finds_its_header_below_the_title(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    code, out, err = run(
        capsys,
        "validate",
        str(source),
        "--phone-column",
        "Телефон клиента",
        "--template",
        "{Имя}, ваш заказ на {Сумма} тг готов.",
    )
    assert code == EXIT_OK, err
    assert "sendable              3" in out


def test_header_row_overrides_the_detection(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    code, out, _ = run(capsys, "validate", str(source), "--header-row", "3")
    assert code == EXIT_OK
    assert "sendable              3" in out
    code, _, err = run(capsys, "validate", str(source), "--header-row", "1")
    assert code == EXIT_INPUT
    assert "no phone column found" in err


def test_a_crm_workbook_with_a_title_row_keeps_its_sheet_rows(tmp_path: Path) -> None:
    source = realistic.crm_export_xlsx(tmp_path / "crm.xlsx")
    from mobizon_batch.columns import header_check

    table = read_table(source, looks_like_header=header_check())
    assert table.header_line == 3
    assert table.source_lines.tolist() == [4, 5, 6, 7]
    assert table.frame["Телефон клиента"].tolist()[0] == "+7 701 234 56 78"


# ------------------------------------------------------------ lost letters


def test_kazakh_letters_lost_to_question_marks_make_rows_invalid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.cp1251_with_holes(tmp_path / "kz.csv")
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "validate", str(source), "-o", str(report))
    assert code == EXIT_OK, err
    rows = report_rows(report)
    assert "Г?лн?р" in rows[0]["final_text"]
    assert [r["verdict"] for r in rows] == ["invalid", "invalid", "sendable"]
    assert "letters were lost when the file was saved" in rows[0]["reason"]
    assert "CSV UTF-8" in rows[1]["reason"]
    assert "sendable              1" in out


@pytest.mark.parametrize(
    ("text", "lost"),
    [
        ("Здравствуйте, Г?лн?р!", True),
        ("?лкен рахмет", True),
        ("Текст с \ufffd внутри", True),
        ("Как дела? Приходите завтра.", False),
        ("Ссылка: site.kz/a?id=5 до пятницы", False),
        ("Что?", False),
    ],
)
def test_lost_letters_tells_holes_from_question_marks(text: str, lost: bool) -> None:
    assert lost_letters(text) is lost


# ------------------------------------------------------------ encodings


@pytest.mark.parametrize(("encoding", "label"), [("koi8-r", "KOI8-R"), ("cp866", "CP866")])
def test_koi8r_and_cp866_files_are_read_as_what_they_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, encoding: str, label: str
) -> None:
    source = realistic.single_byte(tmp_path / f"{encoding}.csv", encoding)
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "validate", str(source), "-o", str(report))
    assert code == EXIT_OK, err
    assert f"(CSV, {label}, delimiter ';')" in out
    assert [r["final_text"] for r in report_rows(report)] == [
        row[1] for row in realistic.RUSSIAN_ROWS
    ]


def test_a_cp1251_file_is_still_read_as_cp1251(tmp_path: Path) -> None:
    source = realistic.single_byte(tmp_path / "ru.csv", "cp1251")
    table = read_table(source)
    assert table.encoding == "Windows-1251"
    assert table.frame["Текст"].tolist()[0] == realistic.RUSSIAN_ROWS[0][1]


def test_typographic_characters_that_double_segments_get_a_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "quotes.csv"
    source.write_text(
        "phone,text\n"
        "77012345678,Sale \u2014 20% off everything at \u00abBest\u00bb shop until Sunday; "
        "see you there my friends!\n"
        "77021112233,Sale \u2014 20% off everything at \u00abBest\u00bb shop until Monday; "
        "see you there my friends!\n"
        "77051112233,Plain text\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(source))
    assert code == EXIT_OK
    assert "hint: 2 rows are UCS-2 only because of" in out
    assert "2 fewer segments" in out


# ------------------------------------------------------------ small things


def test_duplicate_header_names_are_refused_not_guessed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "twice.csv"
    source.write_text(
        "phone,text,phone,text\n77012345678,Hello,77021112233,Bye\n", encoding="utf-8"
    )
    code, _, err = run(capsys, "validate", str(source))
    assert code == EXIT_INPUT
    assert "names 2 columns 'phone'" in err
    code, _, err = run(
        capsys, "validate", str(source), "--phone-column", "phone (2)", "--text-column", "text (2)"
    )
    assert code == EXIT_OK, err


def test_a_formula_never_computed_says_open_and_save(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "formulas.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["phone", "name", "text"])
    sheet.append(["77012345678", "Anna", '="Hello, "&B2'])
    sheet.append(["77021112233", "Ivan", "Hello, Ivan"])
    workbook.save(source)
    code, out, err = run(capsys, "validate", str(source))
    assert code == EXIT_OK, err
    assert "formula whose value was never saved: open the file in Excel" in out
    assert "the text is empty" not in out


def test_stdin_is_read_with_a_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = realistic.single_byte(tmp_path / "ru.csv", "cp1251").read_bytes()

    class Piped(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Piped(io.BytesIO(data)))
    code, out, err = run(capsys, "validate", "-")
    assert code == EXIT_OK, err
    assert "stdin (CSV, Windows-1251" in out
    assert "sendable              2" in out


def test_each_new_reason_is_one_reason_in_the_summary() -> None:
    from mobizon_batch.prepare import REASON_SEPARATOR
    from mobizon_batch.rowchecks import (
        REASON_LOST_LETTERS,
        REASON_TOTALS,
        REASON_UNSAVED_FORMULA,
    )

    for reason in (REASON_LOST_LETTERS, REASON_TOTALS, REASON_UNSAVED_FORMULA):
        assert REASON_SEPARATOR not in reason
