"""The registry: which messages another journal on this machine owns."""

from __future__ import annotations

from pathlib import Path

from mobizon_batch.journal import Journal, Outcome, PlanEntry
from mobizon_batch.registry import owned_elsewhere, register_journal
from mobizon_batch.vocabulary import SendState

HOST = "api.example.test"


def entry(key: str) -> PlanEntry:
    return PlanEntry(key, f"7701000000{key[-1]}", "Your order is ready.", "sendable", "", 1)


def test_a_row_another_journal_marked_already_sent_owns_nothing(tmp_path: Path) -> None:
    # day1's row 1 lost its answer (its message 501 was made); day2's history guard
    # marked the same row already_sent with message 501.  day1 looking its row up
    # must still be able to adopt 501: day2 only points at it.  Message 500, which
    # day2 sent itself, stays day2's.
    day1, day2 = tmp_path / "day1.sqlite", tmp_path / "day2.sqlite"
    with Journal(day1) as journal:
        journal.register([entry("r1")])
    with Journal(day2) as journal:
        journal.register([entry("r1"), entry("r2")])
        changed = journal.mark_already_sent([("r1", 501, 7, "not sent: already sent")])
        assert changed == 1
        journal.record([Outcome("r2", SendState.SENT, 1, 500, 8)])
    register_journal(day1, HOST)
    register_journal(day2, HOST)
    assert owned_elsewhere([500, 501], day1, HOST) == {500}
    assert owned_elsewhere([500, 501], day2, HOST) == set()
