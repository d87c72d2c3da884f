"""The validate and send --dry-run commands, end to end through main()."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import openpyxl
import pytest

from mobizon_batch.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from mobizon_batch.cli.output import progress_bar
from mobizon_batch.runs.validate import ValidateOptions, validate_list
from tests.fixtures.make_fixtures import NUMBERS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.split("\n", 1)[0].count(";") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def test_validate_prints_a_summary_and_writes_every_row(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "validate", str(files["utf8_comma.csv"]), "-o", str(report))
    assert code == EXIT_OK, err
    assert "utf8_comma.csv (CSV, UTF-8, delimiter ',')" in out
    assert "4 rows" in out
    assert "sendable              4" in out
    assert "GSM-7 rows: 1, UCS-2 rows: 3" in out
    rows = read_csv(report)
    assert [r["line"] for r in rows] == ["2", "3", "4", "6"]
    assert [r["recipient"] for r in rows] == NUMBERS
    assert [r["verdict"] for r in rows] == ["sendable"] * 4
    assert rows[0]["code"] == "00123"  # input columns verbatim


def test_validate_xlsx_report_and_invalid_reasons(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    report = tmp_path / "report.xlsx"
    code, out, _ = run(capsys, "validate", str(files["phones_scientific.xlsx"]), "-o", str(report))
    assert code == EXIT_OK
    assert "lost digits" in out
    assert "line 3 ('7,70146E+10')" in out
    sheet = openpyxl.load_workbook(report)["validation"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header = values[0]
    lines = [row[header.index("line")] for row in values[1:]]
    verdicts = [row[header.index("verdict")] for row in values[1:]]
    recipients = [row[header.index("recipient")] for row in values[1:]]
    assert lines == [2, 3, 4]
    assert verdicts == ["sendable", "invalid", "sendable"]
    assert recipients == ["77012345678", None, "77021112233"]


def test_validate_exit_3_when_nothing_can_be_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("phone,text\n123,hi\nabc,\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "validate", str(path), "-o", str(report))
    assert code == EXIT_INPUT
    assert "error: no row of bad.csv can be sent" in err
    assert "invalid               2" in out
    assert len(read_csv(report)) == 2  # the report is written all the same


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "empty.csv is empty"),
        ("header_only.csv", "has a header line but no data rows"),
        ("garbage.csv", "looks like a binary file"),
        ("document.pdf", "is a PDF document"),
        ("broken_utf8.csv", "--encoding"),
        ("protected.xlsx", "password-protected"),
        ("corrupt.xlsx", "damaged"),
        ("broken_xml.xlsx", "damaged"),
        ("legacy.xls", "save it as .xlsx"),
        ("no_columns.csv", "Columns found: 'ФИО', 'Город'. Pick it with --phone-column"),
        ("headerless.csv", "add a header line"),
    ],
)
def test_unusable_inputs_exit_3_with_a_helpful_message(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str, message: str
) -> None:
    code, out, err = run(capsys, "validate", str(files[name]))
    assert code == EXIT_INPUT
    assert err.startswith("error: ")
    assert message in err
    assert out == ""


def test_missing_input_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.csv"))
    assert code == EXIT_INPUT
    assert "input file not found" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--template", "Hi {surname}"], "placeholder 'surname' is not a column"),
        (["--template", "Hi {name"], "unmatched '{'"),
        (["--phone-column", "mobile"], "--phone-column 'mobile' is not a column"),
        (["--sheet", "2"], "--sheet applies to Excel"),
        (["--encoding", "nope"], "unknown encoding"),
        (["--region", "XX"], "unknown region"),
        (["-o", "report.pdf"], "name the output file .csv or .xlsx"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    extra: list[str],
    message: str,
) -> None:
    code, out, err = run(capsys, "validate", str(files["utf8_comma.csv"]), *extra)
    assert code == EXIT_USAGE
    assert message in err
    assert out == ""


def test_bad_flag_value_exits_2(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, _, err = run(capsys, "validate", str(files["utf8_comma.csv"]), "--max-segments", "0")
    assert code == EXIT_USAGE
    assert "must be at least 1" in err


def test_send_dry_run_writes_planned_results_in_input_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_text(
        "Телефон;Имя\n8 701 234 56 78;Айгерим\n12;Ерлан\n+7 701 234 56 78;Айгерим\n"
        "8 702 111 22 33;Асель\n",
        encoding="cp1251",
    )
    optout = tmp_path / "stop.txt"
    optout.write_text("77021112233\n", encoding="utf-8")
    results = tmp_path / "results.csv"
    code, out, _ = run(
        capsys,
        "send",
        str(source),
        "-o",
        str(results),
        "--dry-run",
        "--template",
        "Здравствуйте, {Имя}!",
        "--optout",
        str(optout),
    )
    assert code == EXIT_OK
    assert "dry run: nothing was sent" in out
    assert results.read_text(encoding="utf-8-sig").splitlines()[0] == (
        "Телефон;Имя;recipient;send_status;message_id;campaign_id;text_sent;segments;error_code;"
        "error;sent_at"
    )
    rows = read_csv(results)
    assert [r["send_status"] for r in rows] == ["planned", "invalid", "duplicate", "opted_out"]
    assert [r["Телефон"] for r in rows] == [
        "8 701 234 56 78",
        "12",
        "+7 701 234 56 78",
        "8 702 111 22 33",
    ]
    assert [r["recipient"] for r in rows] == ["77012345678", "", "77012345678", "77021112233"]
    assert [r["segments"] for r in rows] == ["1", "1", "1", "1"]
    assert rows[1]["error"] == "the phone number is too short"
    assert rows[0]["message_id"] == rows[0]["sent_at"] == ""


def test_send_dry_run_to_xlsx(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    results = tmp_path / "results.xlsx"
    code, _, _ = run(
        capsys, "send", str(files["phones_numbers.xlsx"]), "-o", str(results), "--dry-run"
    )
    assert code == EXIT_OK
    sheet = openpyxl.load_workbook(results)["results"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["Phone", "Name", "Text", "recipient"]
    assert [row[3] for row in values[1:]] == ["77012345678", "77021112233", "77051112233"]
    assert [row[4] for row in values[1:]] == ["planned"] * 3


def test_send_without_a_key_stops_before_anything(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    code, _, err = run(capsys, "send", str(files["utf8_comma.csv"]), "-o", str(tmp_path / "r.csv"))
    assert code == EXIT_USAGE
    assert "MOBIZON_API_KEY" in err and "demo" in err
    assert not (tmp_path / "r.csv").exists()


def test_output_may_not_overwrite_the_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_text("phone,text\n77012345678,hi\n", encoding="utf-8")
    code, _, err = run(capsys, "send", str(source), "-o", str(source), "--dry-run")
    assert code == EXIT_USAGE
    assert "would overwrite the input list" in err
    assert source.read_text(encoding="utf-8") == "phone,text\n77012345678,hi\n"


def test_quiet_turns_the_progress_bar_off() -> None:
    with progress_bar(argparse.Namespace(quiet=True), 10, "x") as bar:
        assert bar.disable


def test_template_syntax_is_checked_before_the_list_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.csv"), "--template", "{}")
    assert code == EXIT_USAGE
    assert "empty placeholder" in err


def test_nothing_sendable_says_how_many_rows_and_why_in_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("phone,text\n123,hi\nabc,\n", encoding="utf-8")

    error = validate_list(ValidateOptions(path)).refusal()

    assert error is not None
    assert str(error) == (
        "no row of bad.csv can be sent: 2 invalid (the phone number is too short: 1; "
        "the phone number has characters that are not part of a number: 1; "
        "the text is empty: 1)"
    )
