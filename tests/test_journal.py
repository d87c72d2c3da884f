"""The journal: registration follows the plan only for untried rows; one owner per id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mobizon_batch.errors import ConfigError, StorageError
from mobizon_batch.journal import (
    Journal,
    JournalLocked,
    Outcome,
    PlanEntry,
    default_journal_path,
)
from mobizon_batch.vocabulary import SendState

PENDING, SENDING, SENT = SendState.PENDING, SendState.SENDING, SendState.SENT
FAILED, UNKNOWN = SendState.FAILED, SendState.UNKNOWN


def entry(key: str, verdict: str = "sendable") -> PlanEntry:
    return PlanEntry(key, f"7701{abs(hash(key)) % 10**7:07d}", f"text {key}", verdict, "", 1)


def test_default_path_is_beside_the_results(tmp_path: Path) -> None:
    assert default_journal_path(tmp_path / "out.xlsx") == tmp_path / "out.xlsx.journal.sqlite"


def test_register_and_replan_only_untried_rows(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        first = journal.register([entry("a"), entry("b", "duplicate"), entry("c"), entry("d")])
        assert (first.new, first.replanned, first.kept) == (4, 0, 0)
        journal.claim(["c", "d"])
        journal.record([Outcome("c", SENT, 1, 100, 200), Outcome("d", FAILED, 1, error="bad")])
        # The new plan: a now opted out, b allowed, c and d different verdicts — ignored.
        again = journal.register(
            [
                entry("a", "opted_out"),
                entry("b"),
                entry("c", "invalid"),
                entry("d", "invalid"),
                entry("e"),
            ]
        )
        assert (again.new, again.replanned, again.kept) == (1, 2, 2)
        states = {row.row_key: row.state for row in journal.rows()}
        assert states == {"a": "opted_out", "b": PENDING, "c": SENT, "d": FAILED, "e": PENDING}
        retried = journal.register([entry("d")], retry_failed=True)
        assert retried.replanned == 1
        row = journal.get("d")
        assert row is not None and row.state == PENDING and row.error == ""


def test_claim_then_crash_leaves_sending_then_unknown(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.register([entry("a"), entry("b")])
        intent, claimed = journal.claim(["a"])
        assert claimed == ["a"]
    # A separate connection sees the intent: it was committed, not just cached.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state, intent_at FROM rows WHERE row_key='a'").fetchone() == (
            SENDING,
            intent,
        )
    with Journal(path) as journal:
        assert journal.recover_interrupted() == 1
        assert journal.counts() == {UNKNOWN: 1, PENDING: 1}


def test_one_owner_per_message_id(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.register([entry("a"), entry("b"), entry("c")])
        journal.record([Outcome("a", SENT, 1, 100, 1)])
        assert journal.adopt("b", [(100, 1), (101, 2)]) == 101  # 100 belongs to a
        assert journal.adopt("c", [(100, 1), (101, 2)]) is None
        b = journal.get("b")
        assert b is not None and (b.state, b.message_id, b.campaign_id) == (SENT, 101, 2)
        journal.record([Outcome("c", SENT, 1, 101, 2)])  # an id someone else owns
        c = journal.get("c")
        assert c is not None and c.state == UNKNOWN and c.message_id is None
        assert "101" in c.error and "another row" in c.error
        assert journal.owned_ids() == {100, 101}


def test_a_second_process_cannot_open_a_journal_in_use(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path):
        with pytest.raises(JournalLocked, match="in use"):
            Journal(path)
    with Journal(path):  # released on close
        pass


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception, match="not a usable journal"):
        Journal(path)


def test_claim_never_hands_out_a_settled_row(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.register([entry("a"), entry("b"), entry("c"), entry("d", "invalid")])
        journal.claim(["a", "b"])
        journal.record([Outcome("a", SENT, 1, 100, 1), Outcome("b", UNKNOWN, 1)])
        _, claimed = journal.claim(["a", "b", "c", "d", "nope"])
        assert claimed == ["b", "c"]  # not the sent one, not the invalid one


def test_counts_of_the_current_list_only(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.register([entry("a"), entry("b"), entry("c", "duplicate")])
        assert journal.counts() == {PENDING: 2, "duplicate": 1}
        assert journal.counts({"a", "c"}) == {PENDING: 1, "duplicate": 1}


def test_a_path_climbing_past_the_root_opens_where_the_system_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    climbing = Path("../" * 60 + str(tmp_path).lstrip("/") + "/deep/j.sqlite")
    with Journal(climbing) as journal:
        journal.register([entry("a")])
    assert (tmp_path / "deep" / "j.sqlite").is_file()


def test_unusable_places_are_named_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        Journal(tmp_path)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Journal(tmp_path / "file" / "j.sqlite")


def test_a_full_disk_is_a_storage_error_and_what_was_committed_stays(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.register([entry("a"), entry("b")])
        journal.claim(["a"])
        # SQLite's own "disk full": the file may not grow past its current size.
        pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
        journal._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError, match=r"cannot write the journal .*: the disk is full"):
            journal.register([entry(f"new{n}") for n in range(5000)])
        assert journal.counts() == {SENDING: 1, PENDING: 1}  # the failed write left nothing
        journal._db.execute("PRAGMA max_page_count = 1073741823")
        journal.record([Outcome("a", SENT, 1, 100)])  # and the journal goes on once there is room
    with Journal(path) as journal:
        assert journal.counts() == {SENT: 1, PENDING: 1}


def test_a_claim_records_the_finished_outcomes_in_its_transaction(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.register([entry("a"), entry("b"), entry("c"), entry("d")])
        journal.claim(["a", "b"])
        journal.record([Outcome("a", SENT, 1, 100, 1)])
        done = [Outcome("b", SENT, 1, 100, 2)]  # an id a owns: stored unknown, as by record
        intent, claimed = journal.claim(["c"], [*done, Outcome("a", SENT, 1, 100, 1)])
        assert claimed == ["c"]
        b = journal.get("b")
        assert b is not None and b.state == UNKNOWN and "another row" in b.error
        # Both halves were committed: another connection sees them.
        with sqlite3.connect(path) as db:
            rows = dict(db.execute("SELECT row_key, state FROM rows").fetchall())
            assert rows == {"a": SENT, "b": UNKNOWN, "c": SENDING, "d": PENDING}
            assert db.execute("SELECT intent_at FROM rows WHERE row_key='c'").fetchone() == (
                intent,
            )
