"""The XLSX writer: text stays text, every character round-trips, other values as text."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pandas as pd

from mobizon_batch.sheetxml import column_letter
from mobizon_batch.table import read_table, write_table
from tests.helpers import results_frame_to_write


def test_write_xlsx_keeps_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    write_table(results_frame_to_write(), path, sheet_name="results")
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["results"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    types = [[cell.data_type for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert values[0] == ["phone", "text", "note", "message_id", "campaign_id", "segments", "error"]
    assert values[1] == ["87012345678", "=1+2", "-minus", 1234567890123, 5, 1, None]
    assert values[2][2:6] == ["@at", None, None, 2]
    assert types[0][:3] == ["s", "s", "s"]  # "=1+2" is text, not a formula
    assert types[0][3] == "n"
    with zipfile.ZipFile(path) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


def test_write_xlsx_round_trips_every_character(tmp_path: Path) -> None:
    """Control characters and look-alikes of Excel's _xHHHH_ escape come back as written."""
    path = tmp_path / "out.xlsx"
    frame = results_frame_to_write()
    write_table(frame, path)
    table = read_table(path)
    assert table.frame["text"].tolist() == ["=1+2", "+7 call\r\nme <now> & _x0041_"]
    assert table.frame["error"].tolist() == ["", "bad\x01char"]
    assert table.frame["message_id"].tolist() == ["1234567890123", ""]


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]


def test_write_xlsx_other_values_as_text(tmp_path: Path) -> None:
    import datetime as dt
    from decimal import Decimal

    path = tmp_path / "other.xlsx"
    frame = pd.DataFrame(
        {"when": [dt.datetime(2024, 5, 1, 10, 30)], "money": [Decimal("1.50")], "ok": [True]}
    )
    write_table(frame, path)
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    # a date stays a date Excel can compute with (issue 12: typed XLSX output)
    assert [c.value for c in sheet[2]] == [dt.datetime(2024, 5, 1, 10, 30), "1.50", True]
    assert sheet["A2"].is_date
