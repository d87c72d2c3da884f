"""Our columns in a results file: names and suffixes, finding them again, integer cells."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mobizon_batch.resultfile import (
    RESULT_COLUMNS,
    STATUS_COLUMNS,
    locate_columns,
    parse_message_id,
    result_column_names,
    with_integer_cells,
)


def test_result_column_clash_rule() -> None:
    names = result_column_names(["recipient", "recipient_result", "error"])
    assert names["recipient"] == "recipient_result2"
    assert names["error"] == "error_result"
    assert names["sent_at"] == "sent_at"
    assert tuple(result_column_names([])) == RESULT_COLUMNS


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("41000001", 41000001),
        (" 41000001 ", 41000001),
        ("41000001.0", 41000001),
        ("41000001,0", 41000001),
        ("4.1000001E7", 41000001),
        ("41 000 001", 41000001),
        ("41\u00a0000\u00a0001", 41000001),
        ("'41000001", 41000001),
        (41000001, 41000001),
        (41000001.0, 41000001),
        ("", None),
        ("   ", None),
        (None, None),
        (float("nan"), None),
        ("41000001.5", None),
        ("0", None),
        ("-5", None),
        ("abc", None),
        ("1e400", None),
        ("inf", None),
        (True, None),
        ("41,000,001", None),
    ],
)
def test_parse_message_id(cell: Any, expected: int | None) -> None:
    assert parse_message_id(cell) == expected


def test_whole_numbers_in_result_columns_become_ints_for_writing() -> None:
    frame = pd.DataFrame(
        {
            "phone": ["77011234567", "007"],
            "message_id": ["41000001", "n/a"],
            "error_code": ["", "007"],
            "seg_num": ["2", "1"],
        }
    )
    out = with_integer_cells(frame)
    assert out["phone"].tolist() == ["77011234567", "007"]  # not a result column
    assert out["message_id"].tolist() == [41000001, "n/a"]
    assert out["error_code"].tolist() == ["", "007"]
    assert out["seg_num"].tolist() == [2, 1]
    assert frame["message_id"].tolist() == ["41000001", "n/a"]  # the original is untouched


RESULTS = ["send_status", "message_id", "campaign_id", "segments", "error_code", "error", "sent_at"]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # a plain results file: names as they are, status columns to append
        (
            ["phone", "recipient", *RESULTS],
            {"recipient": "recipient", "message_id": "message_id", "status": "status"},
        ),
        # the input had recipient and status: the send pass suffixed its recipient,
        # and the user's status column is not ours
        (
            ["recipient", "status", "recipient_result", *RESULTS],
            {"recipient": "recipient_result", "status": "status_result", "seg_num": "seg_num"},
        ),
        # ... and a second pass finds what the first one appended
        (
            ["status", "recipient", *RESULTS, "status_result", "status_final"],
            {"status": "status_result", "status_final": "status_final"},
        ),
        # someone's spreadsheet: no send_status, names taken as they are
        (
            ["status", "message_id", "comment"],
            {"status": "status", "message_id": "message_id", "status_final": "status_final"},
        ),
        (["message_id_result", "x"], {"status": "status"}),
    ],
)
def test_locate_columns(columns: list[str], expected: dict[str, str]) -> None:
    located = locate_columns(columns)
    assert {key: located.get(key) for key in expected} == expected
    assert set(STATUS_COLUMNS) <= set(located)
