"""The webhook event store: once per eventId, durable across reopen, owner-only, picky about files."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from mobizon_batch.errors import InputError
from mobizon_batch.journal import Journal
from mobizon_batch.runs.webhook import export_optout, unsubscribed_numbers
from mobizon_batch.webhook_store import DELIVERY_REPORT, UNSUBSCRIBE, Event, EventStore


def report(event_id: str, message_id: int, status: str, updated: str | None = None) -> Event:
    return Event(
        event_id=event_id,
        event_type=DELIVERY_REPORT,
        event_create_ts="2026-01-15 11:42:28",
        attempt=1,
        data={"messageId": message_id, "status": status},
        message_id=message_id,
        status=status,
        seg_num=1,
        status_update_ts=updated,
    )


def unsubscribe(event_id: str, *items: tuple[str, str]) -> Event:
    data = {"formId": 846, "items": [{"fieldType": t, "value": v} for t, v in items]}
    return Event(event_id, UNSUBSCRIBE, "2026-01-15 17:33:47", 1, data)


def test_an_event_is_stored_once_and_its_deliveries_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    with EventStore(path) as store:
        assert store.record(report("1", 41000001, "DELIVRD")) is True
        assert store.record(report("1", 41000001, "UNDELIV")) is False  # the first one stays

    with EventStore(path, create=False) as reopened:
        counts = reopened.counts()
        assert (counts.events, counts.deliveries, counts.reports) == (1, 2, 1)
        assert reopened.reports_for([41000001])[41000001].status == "DELIVRD"


def test_the_later_status_update_wins_when_two_events_name_one_message(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.sqlite") as store:
        store.record(report("2", 7, "DELIVRD", "2026-01-15 11:50:00"))
        store.record(report("1", 7, "EXPIRED", "2026-01-15 11:40:00"))
        store.record(report("3", 8, "UNDELIV", None))

        found = store.reports_for([7, 8, 9, 7])

    assert {k: v.status for k, v in found.items()} == {7: "DELIVRD", 8: "UNDELIV"}


def test_many_ids_are_looked_up_in_chunks(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.sqlite") as store:
        for number in range(1, 1301):
            store.record(report(str(number), number, "DELIVRD"))

        found = store.reports_for(range(1, 2001))

    assert sorted(found) == list(range(1, 1301))


def test_files_are_created_owner_only_even_with_a_loose_umask(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    old = os.umask(0o000)
    try:
        with EventStore(path) as store:
            store.record(report("1", 1, "DELIVRD"))
            modes = {
                name: stat.S_IMODE(Path(f"{path}{name}").stat().st_mode)
                for name in ("", "-wal", "-shm")
            }
    finally:
        os.umask(old)

    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_a_loose_existing_store_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    EventStore(path).close()
    path.chmod(0o644)

    EventStore(path).close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reading_needs_an_existing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(InputError, match="event store not found"):
        EventStore(missing, create=False)
    assert not missing.exists()


@pytest.mark.parametrize("kind", ["text", "journal", "other sqlite"])
def test_other_files_are_not_taken_for_a_store(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "file.sqlite"
    if kind == "text":
        path.write_text("phone\n77011234567\n")
    elif kind == "journal":
        Journal(path).close()
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (x)")
        db.close()
    path.chmod(0o644)  # not ours to tighten: refused files keep their mode
    before = path.read_bytes()

    with pytest.raises(InputError, match="not a webhook event store"):
        EventStore(path, create=False)
    with pytest.raises(InputError, match="not a webhook event store"):
        EventStore(path)  # not even the receiver writes into a journal
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_unsubscribed_numbers_take_phone_fields_only(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.sqlite") as store:
        store.record(unsubscribe("45", ("EMAIL", "test@mobizon.com"), ("MOBILE", "380737893456")))
        store.record(unsubscribe("46", ("TEXT_STRING", "Ivan"), ("TEXT_STRING", "77011234567")))
        store.record(unsubscribe("47", ("MOBILE", "+380 73 789 34 56")))  # the same number
        store.record(unsubscribe("48", ("MOBILE", "12-34")))  # unreadable: kept as sent
        store.record(report("49", 1, "DELIVRD"))

        numbers = unsubscribed_numbers(store)

    assert numbers == ["+380737893456", "+77011234567", "12-34"]


def test_the_export_adds_to_an_optout_list_and_never_drops(tmp_path: Path) -> None:
    store_path = tmp_path / "events.sqlite"
    with EventStore(store_path) as store:
        store.record(unsubscribe("45", ("MOBILE", "380737893456"), ("MOBILE", "77011234567")))
    optout = tmp_path / "optout.csv"
    optout.write_text("phone;note\n8 701 123 45 67;by hand\n+998901234567;called\n")

    first = export_optout(store_path, optout)
    second = export_optout(store_path, optout)

    assert (first.in_store, first.added, second.added) == (2, 1, 0)
    assert optout.read_text() == (
        "phone;note\n8 701 123 45 67;by hand\n+998901234567;called\n+380737893456\n"
    )


def test_the_export_refuses_a_workbook_name(tmp_path: Path) -> None:
    EventStore(tmp_path / "events.sqlite").close()

    with pytest.raises(Exception, match=r"\.txt or \.csv"):
        export_optout(tmp_path / "events.sqlite", tmp_path / "optout.xlsx")


def test_the_export_runs_again_over_the_empty_list_it_wrote(tmp_path: Path) -> None:
    # A nightly export before anyone unsubscribed writes an empty list; the next
    # night's export must read it as a list with no numbers, not refuse it.
    store_path = tmp_path / "events.sqlite"
    EventStore(store_path).close()
    optout = tmp_path / "optout.txt"

    first = export_optout(store_path, optout)
    with EventStore(store_path) as store:
        store.record(unsubscribe("46", ("MOBILE", "77011234567")))
    second = export_optout(store_path, optout)

    assert (first.added, second.added) == (0, 1)
    assert optout.read_text() == "+77011234567\n"
