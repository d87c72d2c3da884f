"""The shared words: which Mobizon statuses are final, and what a state reads as."""

from __future__ import annotations

from datetime import datetime

import pytest

from mobizon_batch.vocabulary import (
    FINAL_STATUSES,
    NON_FINAL_STATUSES,
    NOT_FOUND,
    PLAN_VERDICTS,
    TIMESTAMP_FORMAT,
    SendState,
    SmsStatus,
    is_final_status,
)


@pytest.mark.parametrize("status", ["DELIVRD", "UNDELIV", "REJECTD", "EXPIRED", "DELETED"])
def test_final_statuses_are_final(status: str) -> None:
    assert is_final_status(status)


@pytest.mark.parametrize("status", ["NEW", "ENQUEUD", "ACCEPTD", "PDLIVRD"])
def test_statuses_still_on_their_way_are_not_final(status: str) -> None:
    assert not is_final_status(status)


@pytest.mark.parametrize(
    "status", ["QUEUED_AT_SMSC", "DELIVERED", "", "  ", NOT_FOUND, "DELIVRD2", "unknown"]
)
def test_strings_we_do_not_know_are_not_final(status: str) -> None:
    # A new status from Mobizon must never stop us asking about a message.
    assert not is_final_status(status)


def test_a_status_read_back_from_a_sheet_is_judged_by_its_letters() -> None:
    assert is_final_status(" delivrd ") and not is_final_status(" new ")


def test_every_mobizon_status_is_either_final_or_not() -> None:
    assert FINAL_STATUSES.isdisjoint(NON_FINAL_STATUSES)
    assert set(SmsStatus) == FINAL_STATUSES | NON_FINAL_STATUSES


def test_states_are_the_words_written_in_results_files() -> None:
    assert SendState("opted_out") is SendState.OPTED_OUT
    assert f"{SendState.ALREADY_SENT}" == "already_sent"
    assert {"invalid", "duplicate", "opted_out"} == PLAN_VERDICTS
    with pytest.raises(ValueError):
        SendState("Sent")


def test_the_timestamp_format_is_the_apis() -> None:
    moment = datetime(2026, 11, 28, 9, 5, 3)
    assert moment.strftime(TIMESTAMP_FORMAT) == "2026-11-28 09:05:03"
    assert datetime.strptime("2026-11-28 09:05:03", TIMESTAMP_FORMAT) == moment
