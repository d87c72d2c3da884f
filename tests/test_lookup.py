"""Lost-answer lookups: the clock, the lag, the text rule, and what happens when unsure."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.journal import Journal, PlanEntry
from mobizon_batch.lookup import MAX_OFFSET_QUERIES, Ack, LearnedOffset, ListingLag, same_text
from mobizon_batch.lookup import _Watched as Watched
from mobizon_batch.send import LAG_SETTING, SendOptions, SendPass
from mobizon_batch.vocabulary import SendState

SENDS = frozenset({"message/sendsmsmessage"})
NOON = datetime(2026, 11, 28, 12, 0, 0)


def test_texts_compare_as_a_normalizing_service_stores_them() -> None:
    assert same_text("Hello there ", "Hello  there")
    assert same_text("a\tb\nc", " a b c ")
    assert not same_text("Hello there", "Hello, there")
    assert not same_text("hello there", "Hello there")


@pytest.mark.parametrize(
    ("offset", "start_send_delay"),
    [
        (timedelta(0), 2.0),
        (timedelta(hours=5, minutes=30, seconds=7), 2.0),
        (timedelta(hours=-11, seconds=-41), 0.0),
        (timedelta(hours=3), None),  # no startSendTs: searched from our own clock
    ],
)
def test_the_clock_offset_found_is_a_tight_lower_bound(
    offset: timedelta, start_send_delay: float | None
) -> None:
    started = NOON + timedelta(microseconds=250_000)
    answered = started + timedelta(milliseconds=300)
    created = started + timedelta(milliseconds=120) + offset  # account time
    created_second = created.replace(microsecond=0)
    start_send = None
    if start_send_delay is not None:
        start_send = (created + timedelta(seconds=start_send_delay)).replace(microsecond=0)
    clock = LearnedOffset()

    def listed(campaign: int, moment: datetime) -> bool:
        assert campaign == 7
        return created_second >= moment

    assert clock.learn(Watched(Ack(1, 7, started, answered), NOON, start_send), listed)
    assert clock.offset is not None
    assert clock.offset <= offset  # never excludes our own message
    assert offset - clock.offset <= timedelta(seconds=1.5)  # ... nor much else
    assert clock.queries <= (6 if start_send is not None else MAX_OFFSET_QUERIES)
    # The floor of a request made at our ``started`` is not after its creation.
    assert clock.floor(started) <= created


def test_the_lag_is_known_only_once_every_watched_send_has_shown() -> None:
    lag = ListingLag()
    ack = Ack(1, 1, NOON, NOON + timedelta(seconds=0.2))
    lag.note(ack)
    assert lag.watched == []  # nothing needs it yet: no List call is spent
    lag.want()
    assert lag.bound(NOON + timedelta(seconds=5)) is None
    lag.watched[0].seen_at = NOON + timedelta(seconds=3)
    assert lag.bound(NOON + timedelta(seconds=5)) == 3.0
    lag.note(Ack(2, 2, NOON + timedelta(seconds=4), NOON + timedelta(seconds=4.1)))
    assert lag.bound(NOON + timedelta(seconds=6)) is None  # the second has not shown yet
    saved = ListingLag(saved=10.0)
    saved.want()
    saved.note(ack)
    assert saved.bound(NOON + timedelta(seconds=5)) == 10.0
    assert saved.bound(NOON + timedelta(seconds=12)) is None  # it has waited longer than that


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "out.csv.journal.sqlite") as opened:
        yield opened


def plan(count: int) -> list[PlanEntry]:
    return [
        PlanEntry(f"key{n:04d}", f"7701{n:07d}", f"Code {n}", "sendable", "", 1)
        for n in range(count)
    ]


def test_unsure_rows_stay_unknown_and_a_later_run_settles_them(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    # The list lags 2 s, and the lookups may only try for half a second:
    # every lost answer must end unknown — neither sent again nor guessed.
    emulator.configure(list_lag=2.0, fault_drop_after=0.15, fault_methods=SENDS)
    journal.register(plan(80))
    options = SendOptions(rate=0, settle_seconds=0.1, lookup_seconds=0.5)
    first = SendPass(client, journal, options).run()
    lost = sum(1 for c in emulator.calls("message/sendsmsmessage") if c.fault)
    assert lost > 0
    assert first.counts[SendState.UNKNOWN] == first.unsettled == lost
    assert Counter(m.to for m in emulator.messages()).most_common(1)[0][1] == 1
    for row in journal.rows([SendState.UNKNOWN]):
        assert "could not settle it" in row.error and "Run the same command later" in row.error
    assert journal.setting(LAG_SETTING) is not None  # learned at the end, for the next run
    # Later: the next run has nothing new to send, and settles every one of them.
    emulator.configure(fault_drop_after=0.0)
    time.sleep(2.5)
    second = SendPass(client, journal, SendOptions(rate=0, settle_seconds=0)).run()
    assert second.counts == {SendState.SENT: 80}
    assert second.adopted == lost and second.resent == 0
    assert Counter(m.to for m in emulator.messages()) == Counter(e.recipient for e in plan(80))


def test_a_message_another_journal_of_this_machine_owns_is_never_adopted(
    emulator: MobizonEmulator, client: MobizonClient, tmp_path: Path
) -> None:
    # Two results files, the same list.  This one's intent for a row is
    # committed, then it dies before its request leaves; meanwhile the other
    # sends that very text to that very number.  The message is newer than the
    # intent and matches — but it is the other file's.
    entries = plan(5)
    with Journal(tmp_path / "mine.journal.sqlite") as mine:
        mine.register(entries)
        mine.claim(["key0000"])
        time.sleep(1.1)  # the other's message is surely newer than the intent's second
        with Journal(tmp_path / "other.journal.sqlite") as other:
            other.register(entries[:1])
            SendPass(client, other, SendOptions(rate=0)).run()
            theirs = other.get("key0000")
        assert theirs is not None and theirs.message_id is not None
        summary = SendPass(client, mine, SendOptions(rate=0, settle_seconds=0)).run()
        row = mine.get("key0000")
    assert summary.adopted == 0 and summary.resent == 1
    assert row is not None and row.state == SendState.SENT
    assert row.message_id != theirs.message_id
