"""`mobizon-batch status` end to end: files on disk, the emulator over HTTP, exit codes."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest

from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import AuthError
from mobizon_batch.resultfile import STATUS_COLUMNS
from mobizon_batch.webhook_store import DELIVERY_REPORT, Event, EventStore
from tests.helpers import STATUS_CALL, TEST_KEY, asked_ids

HEADER = ["name", "phone", "recipient", "send_status", "message_id", "error"]


def send(emulator: MobizonEmulator, count: int) -> list[int]:
    with MobizonClient(TEST_KEY, emulator.url) as api:
        return [api.send_sms(f"7701{i:07d}", f"Hi {i}").message_id for i in range(count)]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def results_csv(path: Path, ids: list[int], extra_final: Sequence[int] = ()) -> None:
    rows = [[f"n{i}", "007", f"7701{i:07d}", "sent", str(mid), ""] for i, mid in enumerate(ids)]
    rows.append(["bad", "12", "", "invalid", "", "too short"])
    header = HEADER
    if extra_final:
        header = [*HEADER, "status"]
        rows = [[*row, ""] for row in rows]
        rows += [["f", "", "", "sent", str(mid), "", "DELIVRD"] for mid in extra_final]
    write_csv(path, header, rows)


def test_status_fills_a_csv_in_place(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = send(api_env, 170)
    pending, final = ids[:150], ids[150:]
    path = tmp_path / "results.csv"
    results_csv(path, pending, final)
    api_env.reset_calls()

    assert main(["status", str(path), "--quiet"]) == 0

    calls = api_env.calls(STATUS_CALL)
    assert len(calls) == math.ceil(150 / 100)
    assert sorted(i for c in calls for i in asked_ids(c)) == sorted(pending)
    captured = capsys.readouterr()
    assert "Asked about 150 id(s) in 2 call(s)" in captured.out
    assert f"Wrote {path}" in captured.out
    assert "Traceback" not in captured.err
    header, rows = read_csv(path)
    assert header == [*HEADER, "status", *STATUS_COLUMNS[1:]]
    assert [r["phone"] for r in rows[:3]] == ["007", "007", "007"]
    assert all(r["status"] for r in rows[:150]) and all(r["status_checked_at"] for r in rows[:150])
    assert rows[150]["status"] == "" and rows[150]["error"] == "too short"
    assert [r["status"] for r in rows[151:]] == ["DELIVRD"] * 20
    assert all(r["status_checked_at"] == "" for r in rows[151:])


def test_status_writes_elsewhere_with_o_and_leaves_the_input(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "in.csv", tmp_path / "out.csv"
    results_csv(path, send(api_env, 3))
    before = path.read_bytes()
    assert main(["status", str(path), "-o", str(out), "-q"]) == 0
    assert path.read_bytes() == before
    assert read_csv(out)[0][-6:] == list(STATUS_COLUMNS)


def test_status_on_a_spreadsheet_keeps_text_as_text(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = send(api_env, 3)
    path = tmp_path / "someone.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "May"
    sheet.append(["client", "code", "message_id"])
    sheet.append(["Ann", "007", float(ids[0])])  # an id that went through a float
    sheet.append(["Bob", "=1+1", ids[1]])
    sheet.append(["Cy", "x", f"{ids[2]}.0"])
    sheet.append(["Di", "y", "n/a"])
    sheet["B3"].data_type = "s"
    workbook.save(path)

    assert main(["status", str(path), "-q"]) == 0

    captured = capsys.readouterr()
    assert "1 message_id cell(s) are not message ids" in captured.err
    assert "row 5: 'n/a'" in captured.err
    back = openpyxl.load_workbook(path)
    sheet = back.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == ["client", "code", "message_id", *STATUS_COLUMNS]
    assert [r[1] for r in rows[1:]] == ["007", "=1+1", "x", "y"]
    assert sheet["B3"].data_type == "s"  # still text, not a formula
    assert [r[2] for r in rows[1:]] == [*ids, "n/a"]  # numbers again, no .0; junk as it was
    assert all(r[3] for r in rows[1:4]) and not rows[4][3]


def test_a_file_without_message_ids_exits_3_naming_its_columns(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.csv"
    write_csv(path, ["phone", "text"], [["77011234567", "hi"]])
    assert main(["status", str(path)]) == 3
    err = capsys.readouterr().err
    assert "no message_id column" in err and "columns found: phone, text" in err
    assert "Traceback" not in err
    assert api_env.calls() == []


def test_wait_until_every_row_is_final(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The conftest emulator moves a status along every ~0.05 s of real time.
    path = tmp_path / "results.csv"
    results_csv(path, send(api_env, 20))
    assert main(["status", str(path), "--wait", "30s", "--interval", "1s", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Rows with an id: 20, final: 20, not final: 0." in out
    _, rows = read_csv(path)
    assert {r["status_final"] for r in rows[:20]} == {"true"}


def test_wait_that_runs_out_exits_4(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(status_step=100_000.0)
    path = tmp_path / "results.csv"
    results_csv(path, send(api_env, 4))
    assert main(["status", str(path), "--wait", "1s", "--interval", "1s", "-q"]) == 4
    captured = capsys.readouterr()
    assert "4 row(s) still not final when --wait ran out" in captured.err
    assert "Checked 2 time(s)" in captured.out
    assert {r["status"] for r in read_csv(path)[1][:4]} == {"NEW"}


def test_unknown_ids_are_marked_and_the_refresh_still_succeeds(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.csv"
    results_csv(path, [*send(api_env, 1), 99])
    assert main(["status", str(path), "-q"]) == 0
    assert "does not know 1 of the ids" in capsys.readouterr().err
    assert read_csv(path)[1][1]["status"] == "NOT_FOUND"


def test_an_abort_part_way_keeps_what_was_learned(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "results.csv"
    results_csv(path, send(api_env, 150))
    real = MobizonClient.get_sms_status
    seen = []

    def second_call_refused(self: MobizonClient, ids: list[int]) -> object:
        seen.append(ids)
        if len(seen) == 2:
            raise AuthError(8)
        return real(self, ids)

    monkeypatch.setattr(MobizonClient, "get_sms_status", second_call_refused)
    assert main(["status", str(path), "-q"]) == 5
    err = capsys.readouterr().err
    assert "key was refused" in err and f"Saved the statuses received so far to {path}" in err
    rows = read_csv(path)[1]
    assert sum(1 for r in rows if r["status"]) == 100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--wait", "2"], "is not a duration"),
        (["--wait", "soon"], "is not a duration"),
        (["--wait", "1h", "--interval", "0s"], "must be longer than zero"),
        (["--interval", "1m"], "--interval only applies with --wait"),
    ],
)
def test_bad_durations_exit_2(
    api_env: MobizonEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    path = tmp_path / "results.csv"
    results_csv(path, [41000001])
    assert main(["status", str(path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_workbook_with_several_sheets_is_not_overwritten(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    first.append(["message_id"])
    first.append([send(api_env, 1)[0]])
    workbook.create_sheet("Notes").append(["keep me"])
    workbook.save(path)
    before = path.read_bytes()

    assert main(["status", str(path), "-q"]) == 2
    assert "has 2 sheets" in capsys.readouterr().err and path.read_bytes() == before
    out = tmp_path / "out.xlsx"
    assert main(["status", str(path), "-o", str(out), "-q"]) == 0
    assert openpyxl.load_workbook(out).worksheets[0]["B1"].value == "status"


def test_wait_stops_early_when_only_unknown_ids_are_left(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.csv"
    results_csv(path, [77, 78])
    assert main(["status", str(path), "--wait", "2h", "-q"]) == 4
    captured = capsys.readouterr()
    assert "Stopped waiting: the only rows left are ids Mobizon does not know." in captured.err
    assert "Checked 1 time(s)" in captured.out


@pytest.mark.parametrize("command", ["status", "list", "report"])
def test_help_on_the_new_commands(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert command in capsys.readouterr().out


def test_a_foreign_status_column_is_never_overwritten(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "mine.csv"
    sheet.write_text("message_id,status\n41000001,VIP customer\n", encoding="utf-8")
    assert main(["status", str(sheet)]) == 3
    assert "VIP customer" in capsys.readouterr().err
    assert sheet.read_text(encoding="utf-8") == "message_id,status\n41000001,VIP customer\n"
    assert api_env.calls() == []


# ---------------------------------------------- --events on a machine without the API key


def event_store_with(path: Path, reports: dict[int, str]) -> Path:
    with EventStore(path) as store:
        for n, (message_id, status) in enumerate(reports.items()):
            data = {"messageId": message_id, "status": status}
            event_id, created = str(n), "2026-01-15 11:42:28"
            event = Event(event_id, DELIVERY_REPORT, created, 1, data)
            store.record(replace(event, message_id=message_id, status=status))
    return path


def test_status_from_events_alone_needs_no_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    results = tmp_path / "results.csv"
    results_csv(results, [41000001, 41000002])
    store = event_store_with(tmp_path / "events.sqlite", {41000001: "DELIVRD", 41000002: "UNDELIV"})

    code = main(["status", str(results), "--events", str(store)])

    assert code == 0, capsys.readouterr().err
    _, rows = read_csv(results)
    assert [r["status"] for r in rows[:2]] == ["DELIVRD", "UNDELIV"]


def test_status_with_rows_the_events_leave_still_needs_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    results = tmp_path / "results.csv"
    results_csv(results, [41000001, 41000002])
    store = event_store_with(tmp_path / "events.sqlite", {41000001: "DELIVRD"})

    code = main(["status", str(results), "--events", str(store)])

    assert code == 2
    err = capsys.readouterr().err
    assert "MOBIZON_API_KEY" in err and "Traceback" not in err, err
