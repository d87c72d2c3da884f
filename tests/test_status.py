"""The status pass over HTTP against the emulator, with a clock the tests move."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import pytest

from mobizon_batch.client import MobizonClient, StatusRecord
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import InputError
from mobizon_batch.resultfile import (
    STATUS_COLUMNS,
)
from mobizon_batch.status import RefreshResult, refresh_statuses, wait_until_final
from mobizon_batch.vocabulary import NOT_FOUND
from tests.helpers import INSTANT, STATUS_CALL, TEST_KEY, FakeClock, ScriptedStatuses, asked_ids


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[MobizonEmulator]:
    # Each non-final status lasts about a minute of fake time: nothing moves
    # unless a test moves the clock.
    with MobizonEmulator(api_key=TEST_KEY, status_step=60.0, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def api(emu: MobizonEmulator) -> Iterator[MobizonClient]:
    with MobizonClient(TEST_KEY, emu.url, timeout=(2.0, 5.0)) as client:
        yield client


def send(api: MobizonClient, count: int) -> list[int]:
    return [api.send_sms(f"7701{i:07d}", f"Hello {i}").message_id for i in range(count)]


def refresh(frame: pd.DataFrame, api: MobizonClient, clock: FakeClock) -> RefreshResult:
    return refresh_statuses(frame, api, now=clock.datetime, policy=INSTANT)


def results_frame(ids: Iterable[Any], **extra: list[str]) -> pd.DataFrame:
    cells = ["" if i is None else str(i) for i in ids]
    data = {"name": [f"n{i}" for i in range(len(cells))], "message_id": cells}
    data.update(extra)
    return pd.DataFrame(data)


# ------------------------------------------------------------ calls and ids


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250])
def test_n_pending_rows_cost_ceil_n_over_100_calls(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock, n: int
) -> None:
    ids = send(api, n + 30)
    pending, done = ids[:n], ids[n:]
    frame = results_frame([*pending, *done, None, "not-an-id"])
    # The last 30 rows are already final: they must never be asked about.
    frame["status"] = [""] * n + ["DELIVRD"] * 30 + ["", ""]
    emu.reset_calls()

    result = refresh(frame, api, clock)

    calls = emu.calls(STATUS_CALL)
    assert len(calls) == math.ceil(n / 100) == result.calls
    batches = [asked_ids(call) for call in calls]
    assert all(len(batch) <= 100 for batch in batches)
    assert all(len(batch) == len(set(batch)) for batch in batches)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == sorted(pending)
    assert not set(flat) & set(done)
    assert (result.to_ask, result.asked, result.updated) == (n, n, n)
    assert (result.already_final, result.without_id, result.skipped) == (30, 1, 1)
    assert result.skipped_examples == [f"row {n + 30 + 3}: 'not-an-id'"]


def test_rows_sharing_an_id_share_one_question(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    (one,) = send(api, 1)
    frame = results_frame([one, f"{one}.0", one])
    emu.reset_calls()
    result = refresh(frame, api, clock)
    assert [asked_ids(c) for c in emu.calls(STATUS_CALL)] == [[one]]
    assert result.updated == 3 and result.to_ask == 1
    assert frame["status"].tolist() == ["NEW"] * 3
    assert frame["message_id"].tolist() == [str(one)] * 3


def test_final_rows_are_never_asked_again(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 60)
    frame = results_frame(ids)
    refresh(frame, api, clock)
    assert set(frame["status"]) == {"NEW"}

    clock.now += 200  # some messages reach their final status, some do not
    refresh(frame, api, clock)
    final_after_second = set(frame.loc[frame["status_final"] == "true", "message_id"])
    assert 0 < len(final_after_second) < len(ids)

    clock.now += 5
    emu.reset_calls()
    third = refresh(frame, api, clock)
    asked = {str(i) for c in emu.calls(STATUS_CALL) for i in asked_ids(c)}
    assert asked == {str(i) for i in ids} - final_after_second
    assert third.already_final == len(final_after_second)

    clock.now += 86_400
    refresh(frame, api, clock)
    assert set(frame["status_final"]) == {"true"}
    emu.reset_calls()
    last = refresh(frame, api, clock)
    assert emu.calls(STATUS_CALL) == []
    assert (last.calls, last.all_final, last.final) == (0, True, 60)


def test_ids_mobizon_leaves_out_are_marked_not_found(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    (known,) = send(api, 1)
    frame = results_frame([known, 999, 12345678901])
    result = refresh(frame, api, clock)
    assert frame["status"].tolist() == ["NEW", NOT_FOUND, NOT_FOUND]
    assert frame["status_final"].tolist() == ["false"] * 3
    assert frame["status_checked_at"].tolist() == ["2026-11-28 09:00:00"] * 3
    assert (result.not_found, result.updated, result.pending, result.not_final) == (2, 1, 1, 3)
    # Not final: the next pass asks about them again.
    emu.reset_calls()
    refresh(frame, api, clock)
    assert sorted(asked_ids(emu.calls(STATUS_CALL)[0])) == [999, known, 12345678901]


def test_status_fields_are_filled_from_the_answer(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 5)
    frame = results_frame(ids)
    clock.now += 86_400
    refresh(frame, api, clock)
    for row, message in zip(frame.itertuples(), emu.messages(), strict=True):
        truth = emu.status_of(message)
        assert row.status == truth["status"] == message.final_status
        assert row.status_final == "true"
        assert row.seg_num == truth["segNum"] == "1"
        assert row.start_send_ts == truth["startSendTs"]
        assert row.status_update_ts == truth["statusUpdateTs"]
        assert row.status_checked_at == "2026-11-29 09:00:00"


# ------------------------------------------------------------ the table


def test_status_columns_are_appended_and_others_left_alone(
    api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 2)
    frame = results_frame([*ids, ""], note=["=1+1", "007", ""])
    before = frame.copy()
    refresh(frame, api, clock)
    assert list(frame.columns) == ["name", "message_id", "note", *STATUS_COLUMNS]
    for column in ("name", "message_id", "note"):
        assert frame[column].tolist() == before[column].tolist()
    assert frame.loc[2, list(STATUS_COLUMNS)].tolist() == [""] * 6


def test_status_columns_present_are_updated_in_place(api: MobizonClient, clock: FakeClock) -> None:
    ids = send(api, 2)
    frame = pd.DataFrame(
        {
            "message_id": [str(i) for i in ids],
            "status": ["", "ENQUEUD"],
            "comment": ["a", "b"],
            "seg_num": ["", ""],
        }
    )
    refresh(frame, api, clock)
    assert list(frame.columns) == [
        "message_id",
        "status",
        "comment",
        "seg_num",
        "status_final",
        "start_send_ts",
        "status_update_ts",
        "status_checked_at",
    ]
    assert frame["status"].tolist() == ["NEW", "NEW"]
    assert frame["comment"].tolist() == ["a", "b"]


def test_message_ids_are_written_back_as_plain_integers(
    api: MobizonClient, clock: FakeClock
) -> None:
    (one, two) = send(api, 2)
    frame = results_frame([f"{one}.0", f"'{two}", "n/a"])
    result = refresh(frame, api, clock)
    assert frame["message_id"].tolist() == [str(one), str(two), "n/a"]
    assert result.skipped == 1 and result.updated == 2


def test_a_file_without_message_id_names_the_columns_it_has(api: MobizonClient) -> None:
    frame = pd.DataFrame({"phone": ["77011234567"], "text": ["hi"]})
    with pytest.raises(InputError, match=r"no message_id column.*columns found: phone, text"):
        refresh_statuses(frame, api)


def test_an_unknown_status_is_kept_verbatim_and_not_final() -> None:
    source = ScriptedStatuses({1: "QUEUED_AT_SMSC", 2: "delivrd", 3: "REJECTD"})
    frame = results_frame([1, 2, 3])
    result = refresh_statuses(frame, source)
    assert frame["status"].tolist() == ["QUEUED_AT_SMSC", "delivrd", "REJECTD"]
    assert frame["status_final"].tolist() == ["false", "true", "true"]
    assert frame["seg_num"].tolist() == ["2", "2", "2"]
    assert frame["start_send_ts"].tolist() == ["", "", ""]
    assert result.by_status == {"QUEUED_AT_SMSC": 1, "delivrd": 1, "REJECTD": 1}
    refresh_statuses(frame, source)
    assert source.asked == [[1, 2, 3], [1]]


def test_progress_receives_a_snapshot_after_every_call() -> None:
    source = ScriptedStatuses({i: "ACCEPTD" for i in range(1, 251)})
    seen: list[RefreshResult] = []
    refresh_statuses(results_frame(range(1, 251)), source, progress=seen.append)
    assert [(r.asked, r.to_ask, r.calls) for r in seen] == [
        (100, 250, 1),
        (200, 250, 2),
        (250, 250, 3),
    ]


# ------------------------------------------------------------ retries


def test_dropped_connections_are_retried_and_each_id_answered_once(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 250)
    emu.configure(
        fault_drop_before=0.35, fault_drop_after=0.35, fault_methods=frozenset({STATUS_CALL})
    )
    emu.reset_calls()
    frame = results_frame(ids)
    result = refresh(frame, api, clock)
    calls = emu.calls(STATUS_CALL)
    answered = [c for c in calls if c.fault == "" and c.code == 0]
    assert len(answered) == 3
    assert result.calls == len(calls) > 3
    assert set(frame["status"]) == {"NEW"}


def test_a_partial_refresh_keeps_what_it_learned(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 150)
    frame = results_frame(ids)

    class FailsSecondTime:
        calls = 0

        def get_sms_status(self, batch: Iterable[int]) -> list[StatusRecord]:
            self.calls += 1
            if self.calls == 2:
                raise InputError("boom")
            return api.get_sms_status(batch)

    with pytest.raises(InputError):
        refresh_statuses(frame, FailsSecondTime())
    assert frame["status"].tolist() == ["NEW"] * 100 + [""] * 50


# ------------------------------------------------------------ waiting


def test_wait_reaches_all_final_as_statuses_advance(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    ids = send(api, 120)
    frame = results_frame(ids)
    emu.reset_calls()
    rounds: list[RefreshResult] = []

    outcome = wait_until_final(
        frame,
        api,
        timeout=7200,
        interval=60,
        now=clock.datetime,
        clock=clock,
        sleep=clock.sleep,
        policy=INSTANT,
        on_round=rounds.append,
    )

    assert outcome.all_final and outcome.rounds == len(rounds) > 2
    assert set(frame["status_final"]) == {"true"}
    assert [r.final for r in rounds] == sorted(r.final for r in rounds)
    assert rounds[-1].final == 120
    assert outcome.calls == sum(r.calls for r in rounds) == len(emu.calls(STATUS_CALL))
    # Each round asks only about what the previous one left not final.
    for before, after in itertools.pairwise(rounds):
        assert after.to_ask == before.not_final
    assert clock.slept[:3] == [60, 90, 135]


def test_wait_gives_up_at_the_deadline_with_rows_pending(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    emu.configure(status_step=100_000.0)
    frame = results_frame(send(api, 3))
    outcome = wait_until_final(
        frame, api, timeout=600, interval=60, clock=clock, sleep=clock.sleep, policy=INSTANT
    )
    assert not outcome.all_final
    assert sum(clock.slept) == 600  # the last pause is cut to end at the deadline
    assert clock.slept == [60, 90, 135, 202.5, 112.5]
    assert outcome.rounds == 6 and outcome.last.pending == 3


def test_wait_backoff_is_capped(clock: FakeClock) -> None:
    source = ScriptedStatuses({1: "ACCEPTD"})
    wait_until_final(
        results_frame([1]),
        source,
        timeout=3000,
        interval=100,
        max_interval=300,
        backoff=2,
        clock=clock,
        sleep=clock.sleep,
    )
    assert clock.slept == [100, 200, 300, 300, 300, 300, 300, 300, 300, 300, 300]


def test_wait_stops_when_only_unknown_ids_remain(clock: FakeClock) -> None:
    source = ScriptedStatuses({1: "DELIVRD"})
    outcome = wait_until_final(
        results_frame([1, 2]), source, timeout=7200, clock=clock, sleep=clock.sleep
    )
    assert outcome.rounds == 1 and clock.slept == []
    assert not outcome.all_final and outcome.last.not_found == 1


def test_preloaded_messages_are_answered_like_sent_ones(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    (sent,) = send(api, 1)
    ids = emu.preload(250, prefix="7705")
    assert ids == range(sent + 1, sent + 251)
    assert emu.messages()[-1].to == "77050000249"
    frame = results_frame([sent, *ids])
    clock.now += 86_400
    emu.reset_calls()
    result = refresh(frame, api, clock)
    assert len(emu.calls(STATUS_CALL)) == 3 and result.final == 251


def test_the_users_own_status_column_is_never_written(api: MobizonClient, clock: FakeClock) -> None:
    ids = send(api, 2)
    frame = pd.DataFrame(
        {
            "name": ["a", "b"],
            "status": ["VIP", "new client"],
            "recipient": ["8 701 000 00 00", "8 701 000 00 01"],
            "recipient_result": ["77010000000", "77010000001"],
            "send_status": ["sent", "sent"],
            "message_id": [str(i) for i in ids],
        }
    )
    refresh(frame, api, clock)
    assert frame["status"].tolist() == ["VIP", "new client"]
    assert frame["status_result"].tolist() == ["NEW", "NEW"]
    assert list(frame.columns)[-6:] == ["status_result", *STATUS_COLUMNS[1:]]
    refresh(frame, api, clock)  # and again: found, not appended twice
    assert len(frame.columns) == 12
