"""The report: figures checked against the data, the workbook opened with openpyxl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from openpyxl.chart import BarChart

from mobizon_batch import report
from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError
from mobizon_batch.listing import export_frame, export_messages
from mobizon_batch.report import problem_rows, summarize_results, write_report
from mobizon_batch.status import refresh_statuses
from tests.helpers import TEST_KEY, FakeClock

RESULT_COLUMNS = [
    "recipient",
    "send_status",
    "message_id",
    "campaign_id",
    "segments",
    "error_code",
    "error",
    "sent_at",
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[MobizonEmulator]:
    with MobizonEmulator(api_key=TEST_KEY, status_step=60.0, clock=clock, seed=3) as emulator:
        yield emulator


@pytest.fixture
def api(emu: MobizonEmulator) -> Iterator[MobizonClient]:
    with MobizonClient(TEST_KEY, emu.url, timeout=(2.0, 5.0)) as client:
        yield client


def results_file(api: MobizonClient, clock: FakeClock, sent: int = 200) -> pd.DataFrame:
    """A results table as the send pass writes it, then refreshed by the status pass."""
    rows: list[dict[str, str]] = []
    prefixes = ["7701", "7705", "7707", "7916"]
    for i in range(sent):
        number = f"{prefixes[i % 4]}{i:07d}"
        receipt = api.send_sms(number, f"Hi {i}")
        rows.append(
            {
                "name": f'=HYPERLINK("x","{i}")' if i == 0 else f"client {i}",
                "recipient": number,
                "send_status": "sent",
                "message_id": str(receipt.message_id),
                "campaign_id": str(receipt.campaign_id),
                "segments": "1",
                "error_code": "",
                "error": "",
                "sent_at": "2026-11-28 09:00:00",
            }
        )
    rows += [
        {"name": "bad", "recipient": "", "send_status": "invalid", "error": "too short: 123"},
        {
            "name": "x",
            "recipient": "77010000001",
            "send_status": "failed",
            "error_code": "1",
            "error": "Recipient must be an international number",
        },
        {"name": "twin", "recipient": "77010000000", "send_status": "duplicate"},
        {"name": "lost", "recipient": "77019999999", "send_status": "unknown", "error": ""},
    ]
    frame = pd.DataFrame(rows, columns=["name", *RESULT_COLUMNS]).fillna("")
    clock.now += 40  # a few still in progress
    refresh_statuses(frame, api, now=clock.datetime)
    clock.now += 86_400  # most final now; refresh again but keep one row in flight
    refresh_statuses(frame, api, now=clock.datetime)
    frame.loc[1, ["status", "status_final"]] = ["ACCEPTD", "false"]
    return frame


def summary_sheet(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, tuple[Any, Any]]], Any]:
    """(key figures, sections {title: {label: (count, share)}}, the sheet) as read back."""
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Summary"]
    figures: dict[str, Any] = {}
    sections: dict[str, dict[str, tuple[Any, Any]]] = {}
    current: dict[str, tuple[Any, Any]] | None = None
    in_figures = False
    for a, b, c in sheet.iter_rows(min_row=1, max_col=3, values_only=True):
        if a == "Key figures":
            in_figures = True
        elif a is None:
            in_figures, current = False, None
        elif b == "rows":
            current = sections.setdefault(a, {})
        elif current is not None:
            current[a] = (b, c)
        elif in_figures:
            figures[a] = b
    return figures, sections, sheet


def test_the_report_workbook_matches_the_data(
    api: MobizonClient, clock: FakeClock, tmp_path: Path
) -> None:
    frame = results_file(api, clock)
    path = tmp_path / "report.xlsx"
    write_report(frame, path, source="results.csv")

    figures, sections, sheet = summary_sheet(path)
    sent = frame[frame["send_status"] == "sent"]
    truth = sent["status"].value_counts()
    delivered = int(truth.get("DELIVRD", 0))
    assert figures["Rows in the file"] == len(frame) == 204
    assert figures["Sent"] == len(sent) == 200
    assert figures["Delivered (DELIVRD)"] == delivered
    assert 150 < delivered < 200
    assert figures["Delivery rate among sent"] == pytest.approx(delivered / 200)
    assert figures["Still in progress"] == 1
    assert figures["Final status known"] == 199
    assert figures["Segments billed (seg_num)"] == 200
    assert figures["Segments estimated (sent and planned rows)"] == 200
    not_delivered = int(truth.drop(["DELIVRD", "ACCEPTD"]).sum())
    assert figures["Problems (see the Problems sheet)"] == 3 + not_delivered

    assert sections["By status"] == {
        status: (count, pytest.approx(count / 200)) for status, count in truth.items()
    }
    assert sections["By send status"] == {
        "sent": (200, pytest.approx(200 / 204)),
        "invalid": (1, pytest.approx(1 / 204)),
        "failed": (1, pytest.approx(1 / 204)),
        "duplicate": (1, pytest.approx(1 / 204)),
        "unknown": (1, pytest.approx(1 / 204)),
    }
    assert sections["By country"] == {"KZ": (150, 0.75), "RU": (50, 0.25)}
    assert sections["By operator"]["Kcell/Activ"] == (50, 0.25)

    # Percentages are numbers shown as percents, not text.
    for row in sheet.iter_rows():
        if row[0].value == "Delivery rate among sent":
            assert isinstance(row[1].value, float) and row[1].number_format == "0.0%"
        if row[0].value == "DELIVRD":
            assert row[2].number_format == "0.0%"

    charts = sheet._charts
    assert len(charts) == 1 and isinstance(charts[0], BarChart)
    series = charts[0].series[0]
    assert series.val.numRef.f == f"'Summary'!$B${_row_of(sheet, 'By status') + 1}:" + (
        f"$B${_row_of(sheet, 'By status') + len(truth)}"
    )


def _row_of(sheet: Any, label: str) -> int:
    return next(row[0].row for row in sheet.iter_rows() if row[0].value == label)


def test_messages_and_problems_sheets(api: MobizonClient, clock: FakeClock, tmp_path: Path) -> None:
    frame = results_file(api, clock, sent=40)
    path = tmp_path / "r.xlsx"
    write_report(frame, path)
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Summary", "Messages", "Problems"]

    messages = list(workbook["Messages"].iter_rows(values_only=True))
    assert list(messages[0]) == list(frame.columns)
    assert len(messages) == len(frame) + 1
    first = dict(zip(messages[0], messages[1], strict=True))
    assert first["name"] == '=HYPERLINK("x","0")'  # text, not a formula
    assert workbook["Messages"]["A2"].data_type == "s"
    assert first["recipient"] == "77010000000"  # a number stays text
    assert first["message_id"] == int(frame.loc[0, "message_id"])  # an id is a number

    problems = list(workbook["Problems"].iter_rows(values_only=True))
    header, body = problems[0], problems[1:]
    assert header[:4] == ("row", "problem", "reason", "name")
    by_problem = {row[1]: row for row in body}
    assert by_problem["invalid"][2] == "too short: 123"
    assert by_problem["failed"][2] == "Recipient must be an international number (code 1)"
    assert "lost" in by_problem["unknown"][2] and by_problem["unknown"][0] == len(frame) + 1
    assert "duplicate" not in by_problem
    expected = {"UNDELIV", "REJECTD", "EXPIRED"} & set(frame["status"])
    assert {
        row[header.index("status")]
        for row in body
        if row[1] not in ("invalid", "failed", "unknown")
    } == expected


def test_a_list_export_reports_countries_from_its_columns(
    api: MobizonClient, clock: FakeClock
) -> None:
    for i in range(12):
        api.send_sms(("7701" if i % 3 else "998") + f"{i:07d}", "x")
    clock.now += 86_400
    frame = export_frame(export_messages(api).items)
    summary = summarize_results(frame)
    assert summary.sent == 12 and "By send status" not in [s.title for s in summary.sections]
    countries = summary.section("By country")
    assert countries is not None
    assert {line.label: line.count for line in countries.lines} == {"KZ": 8, "UZ": 4}
    operators = summary.section("By operator")
    assert operators is not None
    assert {line.label for line in operators.lines} == {"Kcell", "Ucell"}


def test_unknown_numbers_and_no_statuses_yet() -> None:
    frame = pd.DataFrame(
        {"recipient": ["", "123"], "send_status": ["sent", "planned"], "message_id": ["5", ""]}
    )
    summary = summarize_results(frame)
    assert (summary.sent, summary.delivered, summary.delivery_rate) == (1, 0, 0.0)
    assert summary.section("By country") is None
    status = summary.section("By status")
    assert status is not None and status.lines[0].label == "(not checked)"
    assert summary.segments_billed is None and len(problem_rows(frame)) == 0


def test_a_dry_run_file_reports_planned_segments_and_no_status_table() -> None:
    frame = pd.DataFrame(
        {
            "recipient": ["77011234567", "77051234567", ""],
            "send_status": ["planned", "planned", "invalid"],
            "message_id": ["", "", ""],
            "segments": ["1", "2", "1"],
        }
    )
    summary = summarize_results(frame)
    assert summary.sent == 0 and summary.segments_estimated == 3
    assert summary.section("By status") is None and summary.problems == 1


def test_an_empty_file_has_no_rate(tmp_path: Path) -> None:
    frame = pd.DataFrame({"message_id": pd.Series([], dtype=str)})
    summary = write_report(frame, tmp_path / "empty.xlsx")
    assert summary.rows == 0 and summary.delivery_rate is None
    assert openpyxl.load_workbook(tmp_path / "empty.xlsx")["Summary"]._charts == []


def test_the_report_must_be_xlsx(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.xlsx"):
        write_report(pd.DataFrame({"message_id": ["1"]}), tmp_path / "r.csv")


# ------------------------------------------------------------ the command


def test_report_command_prints_the_summary_and_writes_the_workbook(
    api: MobizonClient, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = results_file(api, clock, sent=20)
    source = tmp_path / "results.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "report.xlsx"

    assert main(["report", str(source), "-o", str(out)]) == 0

    captured = capsys.readouterr()
    delivered = int((frame["status"] == "DELIVRD").sum())
    lines = captured.out.splitlines()
    assert lines[0] == "Summary"
    assert any(line.split() == ["Rows", "in", "the", "file", "24"] for line in lines)
    rate = next(line for line in lines if "Delivery rate among sent" in line)
    assert rate.split()[-1] == f"{delivered / 20:.1%}"
    assert any(
        line.split()[:3] == ["DELIVRD", str(delivered), f"{delivered / 20:.1%}"] for line in lines
    )
    assert f"Wrote {out}" in captured.out
    assert "Traceback" not in captured.err
    figures, _, sheet = summary_sheet(out)
    assert figures["Delivered (DELIVRD)"] == delivered and len(sheet._charts) == 1


def test_report_command_wants_xlsx_and_a_readable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "results.csv"
    source.write_text("message_id,status\n1,DELIVRD\n", encoding="utf-8")
    assert main(["report", str(source), "-o", str(tmp_path / "r.csv")]) == 2
    assert "name it .xlsx" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "r.xlsx")]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_a_results_file_with_clashing_names_is_read_by_position() -> None:
    frame = pd.DataFrame(
        {
            "recipient": ["8 (916) 000-00-00", "8 701 000 00 00"],  # the user's own column
            "status": ["VIP", "VIP"],
            "recipient_result": ["79160000000", "77010000000"],
            "send_status": ["sent", "sent"],
            "message_id": ["1", "2"],
            "status_result": ["DELIVRD", "UNDELIV"],
        }
    )
    summary = summarize_results(frame)
    status = summary.section("By status")
    countries = summary.section("By country")
    assert status is not None and countries is not None
    assert {line.label: line.count for line in status.lines} == {"DELIVRD": 1, "UNDELIV": 1}
    assert {line.label for line in countries.lines} == {"RU", "KZ"}
    assert summary.delivered == 1 and summary.problems == 1


def test_too_many_rows_for_a_sheet_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "XLSX_MAX_ROWS", 3)
    frame = pd.DataFrame({"message_id": ["1", "2", "3"]})
    with pytest.raises(ConfigError, match="3 rows do not fit"):
        write_report(frame, tmp_path / "r.xlsx")
    assert not (tmp_path / "r.xlsx").exists()


def test_streamed_rows_are_the_cells_openpyxl_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's rows written a column at a time equal the same rows written by openpyxl."""
    frame = pd.DataFrame(
        {
            "phone": pd.Series(["87012345678", "  ", "=1+2", "a\x01b"], dtype="str"),
            "message_id": pd.Series(["41000001", "", "x12", "0012"], dtype="str"),
            "send_status": pd.Series(["sent", "sent", "failed", "invalid"], dtype="str"),
            "status": pd.Series(["DELIVRD", "UNDELIV", "", ""], dtype="str"),
            "status_final": pd.Series(["TRUE", "false", "", "maybe"], dtype="str"),
            "amount": pd.Series([148851.65, 1, float("nan"), True], dtype=object),
        }
    )
    streamed, laid_out = tmp_path / "streamed.xlsx", tmp_path / "openpyxl.xlsx"
    report.write_report(frame, streamed)
    monkeypatch.setattr(report, "_has_moments", lambda table: True)
    report.write_report(frame, laid_out)

    def cells(path: Path) -> dict[str, list[tuple[object, ...]]]:
        book = openpyxl.load_workbook(path)
        return {
            name: list(book[name].iter_rows(values_only=True)) for name in ("Messages", "Problems")
        }

    got, expected = cells(streamed), cells(laid_out)
    assert got == expected
    assert got["Messages"][1][:2] == ("87012345678", 41000001)
    assert got["Messages"][3][0] == "=1+2"  # text, not a formula
