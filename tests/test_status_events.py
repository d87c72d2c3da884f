"""Statuses from webhook events first, GetSMSStatus only for the rest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from mobizon_batch.status import refresh_statuses, wait_until_final
from mobizon_batch.status_events import fill_from_events, from_events
from tests.helpers import INSTANT, ScriptedStatuses


def results_frame(ids: list[int | None], **extra: list[str]) -> pd.DataFrame:
    cells = ["" if i is None else str(i) for i in ids]
    return pd.DataFrame(
        {"name": [f"n{i}" for i in range(len(cells))], "message_id": cells, **extra}
    )


@dataclass(frozen=True)
class Report:
    status: str
    seg_num: int | None = 2
    status_update_ts: str | None = "2026-11-28 09:05:00"
    received_at: str = "2026-11-28 09:05:01"


class Reports:
    """A ReportSource from a dict; remembers what it was asked."""

    def __init__(self, reports: dict[int, Report]) -> None:
        self.reports = reports
        self.asked: list[list[int]] = []

    def reports_for(self, message_ids: Iterable[int]) -> dict[int, Report]:
        ids = list(message_ids)
        self.asked.append(ids)
        return {i: self.reports[i] for i in ids if i in self.reports}


def test_rows_with_a_final_report_are_not_asked_about() -> None:
    frame = results_frame([1, 2, 3, 4, 2])
    events = Reports({1: Report("DELIVRD"), 2: Report("UNDELIV"), 9: Report("DELIVRD")})
    api = ScriptedStatuses({3: "DELIVRD", 4: "ACCEPTD"})

    result = refresh_statuses(frame, api, policy=INSTANT, prefill=from_events(events))

    assert result.from_events == 3  # rows 1, 2 and the second 2
    assert api.asked == [[3, 4]]
    assert frame["status"].tolist() == ["DELIVRD", "UNDELIV", "DELIVRD", "ACCEPTD", "UNDELIV"]
    assert frame["status_final"].tolist() == ["true", "true", "true", "false", "true"]
    assert frame["status_update_ts"].tolist()[0] == "2026-11-28 09:05:00"
    assert frame["status_checked_at"].tolist()[0] == "2026-11-28 09:05:01"
    assert frame["seg_num"].tolist()[1] == "2"


def test_everything_reported_means_no_call_at_all() -> None:
    frame = results_frame([1, 2, None])
    api = ScriptedStatuses({})

    result = refresh_statuses(
        frame,
        api,
        policy=INSTANT,
        prefill=from_events(Reports({1: Report("DELIVRD"), 2: Report("EXPIRED")})),
    )

    assert (result.from_events, result.calls, result.final, result.all_final) == (2, 0, 2, True)
    assert api.asked == []


def test_final_rows_are_left_alone_and_not_looked_up() -> None:
    frame = results_frame([1, 2], status=["REJECTD", ""], status_final=["true", ""])
    events = Reports({1: Report("DELIVRD"), 2: Report("DELIVRD")})

    assert fill_from_events(frame, events) == 1
    assert events.asked == [[2]]
    assert frame["status"].tolist() == ["REJECTD", "DELIVRD"]


def test_a_pushed_status_that_is_not_final_is_asked_about_anyway() -> None:
    frame = results_frame([1])
    api = ScriptedStatuses({1: "DELIVRD"})

    result = refresh_statuses(
        frame, api, policy=INSTANT, prefill=from_events(Reports({1: Report("ENQUEUD")}))
    )

    assert (result.from_events, api.asked) == (0, [[1]])
    assert frame["status"].tolist() == ["DELIVRD"]


def test_a_frame_without_ids_is_left_alone() -> None:
    frame = pd.DataFrame({"phone": ["77011234567"]})

    assert fill_from_events(frame, Reports({})) == 0
    assert list(frame.columns) == ["phone"]


def test_waiting_looks_at_the_store_again_each_round() -> None:
    frame = results_frame([1, 2])
    events = Reports({1: Report("DELIVRD")})
    api = ScriptedStatuses({2: "ACCEPTD"})
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        events.reports[2] = Report("UNDELIV")  # arrives while we wait

    outcome = wait_until_final(
        frame,
        api,
        timeout=600,
        interval=60,
        policy=INSTANT,
        clock=lambda: now[0],
        sleep=sleep,
        prefill=from_events(events),
    )

    assert outcome.all_final and outcome.rounds == 2
    assert (outcome.from_events, outcome.calls) == (2, 1)
    assert api.asked == [[2]]
    assert frame["status"].tolist() == ["DELIVRD", "UNDELIV"]
