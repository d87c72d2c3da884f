"""Result tables built from a plan: the planned results file and the validation report."""

from __future__ import annotations

from mobizon_batch.prepare import PlanOptions, build_plan
from mobizon_batch.results import planned_results, validation_report
from mobizon_batch.vocabulary import SendState
from tests.helpers import KZ1, make_table

SENDABLE, INVALID = SendState.SENDABLE, SendState.INVALID


def test_planned_results_columns_and_statuses() -> None:
    table = make_table({"recipient": ["87012345678", "x", "87012345678"], "text": ["a"] * 3})
    results = planned_results(build_plan(table, PlanOptions()))
    assert list(results.columns) == [
        "recipient",
        "text",
        "recipient_result",
        "send_status",
        "message_id",
        "campaign_id",
        "text_sent",
        "segments",
        "error_code",
        "error",
        "sent_at",
    ]
    assert results["recipient"].tolist() == ["87012345678", "x", "87012345678"]
    assert results["recipient_result"].tolist() == [KZ1, "", KZ1]
    assert results["send_status"].tolist() == ["planned", "invalid", "duplicate"]
    assert results["message_id"].isna().all()
    assert str(results["message_id"].dtype) == "Int64"


def test_validation_report_has_line_verdict_and_reason() -> None:
    table = make_table({"phone": [KZ1, "1"], "text": ["a", "b"]}, first_line=5)
    report = validation_report(build_plan(table, PlanOptions()))
    assert report[["line", "recipient", "verdict", "reason"]].values.tolist() == [
        [5, KZ1, SENDABLE, ""],
        [6, "", INVALID, "the phone number is too short"],
    ]
