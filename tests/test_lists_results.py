"""What people open after a run: the text each person got, typed workbooks, the report.

Through the real command line against the emulator: a template dry run and
a send show ``text_sent``; a typed CRM workbook comes back with its numbers,
dates and booleans as Excel typed them; the report speaks Russian on
request; ``--json`` gives scripts one object; ``status --wait`` off a
terminal says something each round.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest

from mobizon_batch.cli import EXIT_OK, main
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.table import read_table
from tests.fixtures import realistic

TEMPLATE = "{Имя}, ваш заказ на {Сумма} тг готов."


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def sheet_rows(path: Path, sheet: str | None = None) -> list[dict[str, object]]:
    workbook = openpyxl.load_workbook(path)
    ws = workbook[sheet] if sheet else workbook.active
    assert ws is not None
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


# ------------------------------------------------------------------ text_sent


def test_a_template_dry_run_shows_the_text_each_person_gets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    results = tmp_path / "planned.csv"
    code, _, err = run(
        capsys, "send", str(source), "-o", str(results), "--dry-run", "--template", TEMPLATE
    )
    assert code == EXIT_OK, err
    frame = read_table(results).frame
    assert frame["text_sent"].tolist()[:3] == [
        "Айгерим, ваш заказ на 148851.65 тг готов.",
        "Ерлан, ваш заказ на 9900 тг готов.",
        "Мария, ваш заказ на 15000.5 тг готов.",
    ]
    assert frame["send_status"].tolist() == ["planned"] * 3 + ["invalid"]


def test_results_and_the_report_carry_text_sent(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    results = tmp_path / "results.csv"
    code, _, err = run(capsys, "send", str(source), "-o", str(results), "-q")
    assert code == EXIT_OK, err
    frame = read_table(results).frame
    assert frame["text_sent"].tolist()[0] == "Айгерим, ваш заказ готов."
    assert sorted(m.text for m in api_env.messages()) == sorted(frame["text_sent"][:3])
    report = tmp_path / "report.xlsx"
    code, _, err = run(capsys, "report", str(results), "-o", str(report), "--lang", "en")
    assert code == EXIT_OK, err
    messages = sheet_rows(report, "Messages")
    assert messages[1]["text_sent"] == "Ерлан, ваш заказ готов."
    problems = sheet_rows(report, "Problems")
    assert list(problems[0])[:3] == ["row", "problem", "reason"]
    assert "text_sent" in problems[0]
    assert problems[0]["row"] == 5  # a number: the totals row, sheet row 5


# ------------------------------------------------------------------ typed XLSX


def test_a_typed_workbook_keeps_its_types_in_the_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_xlsx(tmp_path / "crm.xlsx")
    results = tmp_path / "planned.xlsx"
    code, _, err = run(capsys, "send", str(source), "-o", str(results), "--dry-run")
    assert code == EXIT_OK, err
    rows = sheet_rows(results)
    first = rows[0]
    assert first["Сумма"] == 148851.65  # Excel can sum it
    assert first["№"] == 1
    assert first["Дата заказа"] == dt.datetime(2026, 11, 27)
    assert rows[1]["Дата заказа"] == dt.datetime(2026, 11, 26, 14, 30)
    assert first["VIP"] is True
    assert first["Телефон клиента"] == "+7 701 234 56 78"  # a phone stays text
    assert first["segments"] == 1
    sheet = openpyxl.load_workbook(results).active
    assert sheet is not None
    assert sheet.freeze_panes == "A2"
    widths = {k: v.width for k, v in sheet.column_dimensions.items()}
    assert widths["E"] >= len("Айгерим, ваш заказ готов.")  # fitted to the text
    assert widths["A"] < widths["E"]


def test_a_validate_report_keeps_the_types_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_xlsx(tmp_path / "crm.xlsx")
    report = tmp_path / "report.xlsx"
    code, _, err = run(capsys, "validate", str(source), "-o", str(report))
    assert code == EXIT_OK, err
    rows = sheet_rows(report)
    assert rows[2]["Сумма"] == 15000.5
    assert rows[0]["line"] == 4
    assert rows[3]["reason"] == "a totals row, not a recipient"


def test_status_keeps_the_types_and_makes_status_final_a_boolean(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_xlsx(tmp_path / "crm.xlsx")
    results = tmp_path / "results.xlsx"
    assert main(["send", str(source), "-o", str(results), "-q"]) == EXIT_OK
    api_env.configure(status_step=0.0)
    code, _, err = run(capsys, "status", str(results), "--wait", "30s", "--interval", "1s")
    assert code == EXIT_OK, err
    rows = sheet_rows(results)
    assert rows[0]["Сумма"] == 148851.65
    assert rows[0]["Дата заказа"] == dt.datetime(2026, 11, 27)
    assert rows[0]["status_final"] is True
    assert isinstance(rows[0]["message_id"], int)
    report = tmp_path / "report.xlsx"
    code, _, _ = run(capsys, "report", str(results), "-o", str(report), "--lang", "en")
    assert code == EXIT_OK
    messages = sheet_rows(report, "Messages")
    assert messages[0]["status_final"] is True
    assert messages[0]["Сумма"] == 148851.65
    sheet = openpyxl.load_workbook(report)["Messages"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["E"].width > 13


# ------------------------------------------------------------------ report


def test_the_report_in_russian_keeps_the_results_file_names(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    results = tmp_path / "results.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == EXIT_OK
    report = tmp_path / "отчёт.xlsx"
    code, out, _ = run(capsys, "report", str(results), "-o", str(report), "--lang", "ru")
    assert code == EXIT_OK
    assert "Сводка, Сообщения, Проблемы" in out
    workbook = openpyxl.load_workbook(report)
    assert workbook.sheetnames == ["Сводка", "Сообщения", "Проблемы"]
    header = [c.value for c in workbook["Сообщения"][1]]
    assert header[:5] == realistic.CRM_HEADER  # the list's own names as they were
    assert "Получатель" in header and "Отправленный текст" in header
    assert [c.value for c in workbook["Проблемы"][1]][:3] == ["Строка", "Проблема", "Причина"]
    labels = [row[0] for row in workbook["Сводка"].iter_rows(values_only=True)]
    assert "Строк в файле" in labels and "Отправлено" in labels
    assert "recipient" in read_table(results).columns  # the file's columns unchanged


def test_the_report_language_follows_the_locale(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    results = tmp_path / "results.csv"
    results.write_text("phone,send_status,message_id\n77012345678,sent,5\n", encoding="utf-8")
    monkeypatch.setenv("LC_ALL", "kk_KZ.UTF-8")
    assert main(["report", str(results), "-o", str(tmp_path / "r.xlsx"), "-q"]) == EXIT_OK
    assert openpyxl.load_workbook(tmp_path / "r.xlsx").sheetnames[0] == "Сводка"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert main(["report", str(results), "-o", str(tmp_path / "e.xlsx"), "-q"]) == EXIT_OK
    assert openpyxl.load_workbook(tmp_path / "e.xlsx").sheetnames[0] == "Summary"
    assert capsys.readouterr().out == ""  # --quiet: nothing printed


# ------------------------------------------------------------------ JSON


def test_json_on_validate_send_status_and_report(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    code, out, err = run(capsys, "validate", str(source), "--json")
    assert code == EXIT_OK
    facts = json.loads(out)
    assert (facts["rows"], facts["sendable"], facts["invalid"]) == (4, 3, 1)
    assert facts["header_line"] == 3
    assert "sendable" in err  # the summary for people went to stderr

    results = tmp_path / "results.csv"
    code, out, _ = run(capsys, "send", str(source), "-o", str(results), "--json")
    assert code == EXIT_OK
    facts = json.loads(out)
    assert facts["rows"] == {"sent": 3, "invalid": 1}
    assert facts["to_send"] == {"rows": 3, "segments": 3}
    assert facts["exit_code"] == 0

    code, out, _ = run(capsys, "status", str(results), "--json")
    assert code == EXIT_OK
    facts = json.loads(out)
    assert facts["with_id"] == 3 and facts["calls"] >= 1

    code, out, _ = run(
        capsys, "report", str(results), "-o", str(tmp_path / "r.xlsx"), "--json", "--lang", "en"
    )
    assert code == EXIT_OK
    facts = json.loads(out)
    assert (facts["rows"], facts["sent"]) == (4, 3)
    assert facts["problems"] >= 1  # the totals row (and any undelivered one)
    assert facts["by_send_status"] == {"sent": 3, "invalid": 1}


def test_status_wait_off_a_terminal_prints_a_line_a_round(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = realistic.crm_export_csv(tmp_path / "crm.csv")
    results = tmp_path / "results.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == EXIT_OK
    capsys.readouterr()
    api_env.configure(status_step=0.2)
    code, _, err = run(capsys, "status", str(results), "--wait", "1m", "--interval", "1s")
    assert code == EXIT_OK
    assert "round 1: " in err and "rows final" in err
