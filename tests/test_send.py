"""The send pass over real HTTP against the emulator (library level).

The command-line tests (test_cli_send.py) repeat the headline cases through
`main()`; these pin down the pass's decisions one by one.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError
from mobizon_batch.journal import Journal, PlanEntry
from mobizon_batch.send import SendOptions, SendPass, SendProgress, check_deferred_to
from mobizon_batch.vocabulary import SendState
from tests.helpers import TEST_KEY, free_port

PENDING, SENDING, SENT = SendState.PENDING, SendState.SENDING, SendState.SENT
FAILED, UNKNOWN = SendState.FAILED, SendState.UNKNOWN


def fast_sleep(seconds: float) -> None:
    """Backoff waits shrunk to a millisecond or two: retries are instant."""
    time.sleep(min(seconds, 0.002))


def numbers(count: int) -> list[str]:
    return [f"7701{n:07d}" for n in range(count)]


def plan(count: int, text: str = "Привет, это тест") -> list[PlanEntry]:
    return [
        PlanEntry(f"key{n:06d}", number, text, "sendable", "", 1)
        for n, number in enumerate(numbers(count))
    ]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "out.csv.journal.sqlite") as opened:
        yield opened


def make_pass(client: MobizonClient, journal: Journal, **options: object) -> SendPass:
    settings = {"rate": 0, "workers": 8, "settle_seconds": 0.0, "max_attempts": 8, **options}
    return SendPass(client, journal, SendOptions(**settings), sleep=fast_sleep)  # type: ignore[arg-type]


def accepted(emulator: MobizonEmulator) -> Counter[str]:
    return Counter(m.to for m in emulator.messages())


def test_every_row_sent_once(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    journal.register(plan(300))
    progress: list[SendProgress] = []
    send = make_pass(client, journal)
    send.on_progress = progress.append
    summary = send.run()
    assert summary.counts == {SENT: 300}
    assert summary.sent_now == 300 and summary.incomplete == 0
    assert accepted(emulator) == Counter(numbers(300))
    rows = journal.rows()
    assert {r.message_id for r in rows} == {m.id for m in emulator.messages()}
    assert all(r.sent_at and r.attempts == 1 for r in rows)
    assert progress[-1].done == progress[-1].total == 300


def test_faults_and_rate_limit_lose_nothing_and_send_nothing_twice(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    emulator.configure(
        fault_503=0.05, fault_drop_before=0.05, fault_drop_after=0.03, rate_limit=400
    )
    journal.register(plan(1000))
    summary = make_pass(client, journal, rate=600).run()
    faults = Counter(c.fault for c in emulator.calls("message/sendsmsmessage"))
    assert faults["503"] > 0 and faults["drop_before"] > 0 and faults["drop_after"] > 0
    assert summary.counts == {SENT: 1000}
    assert accepted(emulator) == Counter(numbers(1000))  # each exactly once
    assert summary.adopted >= faults["drop_after"] > 0  # lost answers found in the list
    assert summary.resent >= faults["drop_before"]  # ... or surely absent, so sent again
    by_id = {m.id: m.to for m in emulator.messages()}
    assert all(by_id[r.message_id] == r.recipient for r in journal.rows() if r.message_id)


def test_rate_limit_code_30_slows_down_and_retries(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    emulator.configure(rate_limit=50)
    journal.register(plan(150))
    summary = make_pass(client, journal, rate=400).run()
    limited = sum(1 for c in emulator.calls("message/sendsmsmessage") if c.code == 30)
    assert limited > 0 and summary.slowdowns > 0
    assert summary.counts == {SENT: 150}
    assert accepted(emulator) == Counter(numbers(150))


def test_a_rejected_row_fails_alone(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    entries = plan(20)
    entries[7] = PlanEntry("bad", "123", "x", "sendable", "", 1)  # the API refuses this number
    journal.register(entries)
    summary = make_pass(client, journal).run()
    assert summary.counts == {SENT: 19, FAILED: 1}
    bad = journal.get("bad")
    assert bad is not None and bad.error_code == 1 and "recipient" in bad.error
    assert bad.attempts == 1  # a validation error is never retried


def test_bad_key_aborts_and_sends_nothing(emulator: MobizonEmulator, journal: Journal) -> None:
    journal.register(plan(50))
    with MobizonClient("W" * 40, emulator.url) as wrong:
        summary = make_pass(wrong, journal).run()
    assert summary.aborted is not None and "key was refused" in str(summary.aborted)
    assert emulator.messages() == []
    assert summary.counts == {PENDING: 50}


def test_service_error_is_reconciled_not_resent_blindly(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    # Code 999 says nothing of the outcome: here the message was created each time.
    emulator.configure(fault_999_after=0.25)
    journal.register(plan(40))
    summary = make_pass(client, journal).run()
    errors_999 = sum(1 for c in emulator.calls("message/sendsmsmessage") if c.code == 999)
    assert errors_999 > 0 and summary.adopted == errors_999
    assert summary.counts == {SENT: 40}
    assert accepted(emulator) == Counter(numbers(40))


def test_unknown_rows_from_a_crash_are_adopted_or_sent(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    journal.register(plan(10))
    journal.claim([f"key{n:06d}" for n in range(4)])  # the intents of a run that died
    for number in numbers(2):  # ... after two of the four requests reached the API
        client.send_sms(number, "Привет, это тест")
    summary = make_pass(client, journal).run()
    assert summary.counts == {SENT: 10}
    assert (summary.adopted, summary.resent) == (2, 2)
    assert accepted(emulator) == Counter(numbers(10))


def test_duplicates_allowed_are_each_sent_and_owned_once(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    # The same recipient and text three times (--allow-duplicates), with lost answers.
    entries = [PlanEntry(f"dup{n}", "77770000001", "same", "sendable", "", 1) for n in range(3)]
    journal.register(entries + plan(30))
    emulator.configure(fault_drop_after=0.3)
    summary = make_pass(client, journal).run()
    assert summary.counts == {SENT: 33}
    assert accepted(emulator)["77770000001"] == 3
    ids = [journal.get(f"dup{n}").message_id for n in range(3)]  # type: ignore[union-attr]
    assert len(set(ids)) == 3


def test_stop_request_finishes_in_flight_and_resumes(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    emulator.configure(latency=0.01)
    journal.register(plan(400))
    send = make_pass(client, journal, rate=200, workers=4)
    timer = threading.Timer(0.4, send.request_stop)
    timer.start()
    first = send.run()
    timer.cancel()
    assert first.interrupted
    assert 0 < first.counts[SENT] < 400
    assert first.counts[SENDING] == 0 and first.counts[UNKNOWN] == 0
    assert first.counts[SENT] + first.counts[PENDING] == 400
    second = make_pass(client, journal, rate=0).run()
    assert second.counts == {SENT: 400} and not second.interrupted
    assert accepted(emulator) == Counter(numbers(400))


def test_unreachable_api_leaves_rows_pending(journal: Journal) -> None:
    journal.register(plan(60))
    with MobizonClient(TEST_KEY, f"http://127.0.0.1:{free_port()}") as dead:
        summary = make_pass(dead, journal, max_attempts=2, unreachable_after=5).run()
    assert summary.unreachable and "could not reach the API" in summary.unreachable
    assert summary.counts == {PENDING: 60}
    assert any("gave up retrying" in r.error for r in journal.rows())


def test_send_parameters_reach_the_api(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    journal.register(plan(3))
    make_pass(client, journal, sender="Shop", name="Promo", validity=120, flash=True).run()
    for message in emulator.messages():
        assert (message.sender, message.name, message.validity, message.mclass) == (
            "Shop",
            "Promo",
            120,
            0,
        )


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-11-28 14:00:00", True),
        ("2026-12-12 11:59:00", True),
        ("2026-11-28 12:30:00", False),
        ("2026-12-12 12:01:00", False),
        ("tomorrow", False),
    ],
)
def test_deferred_to_window(text: str, ok: bool) -> None:
    from datetime import datetime

    now = datetime(2026, 11, 28, 12, 0, 0)
    if ok:
        assert check_deferred_to(text, now).strftime("%Y-%m-%d %H:%M:%S") == text
    else:
        with pytest.raises(ConfigError, match="deferred-to"):
            check_deferred_to(text, now)


def test_rows_of_an_earlier_version_of_the_list_are_left_alone(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    old = [PlanEntry("old-typo", "77770000009", "Sale tomorow!", "sendable", "", 1)]
    journal.register(old + plan(3))  # a run that stopped before sending anything
    current = [PlanEntry("new", "77770000009", "Sale tomorrow!", "sendable", "", 1), *plan(3)]
    journal.register(current)
    summary = SendPass(
        client, journal, SendOptions(rate=0, settle_seconds=0), keys={e.row_key for e in current}
    ).run()
    assert sorted(m.text for m in emulator.messages() if m.to == "77770000009") == [
        "Sale tomorrow!"
    ]
    assert summary.counts == {SENT: 4}  # the old row is not counted either
    old_row = journal.get("old-typo")
    assert old_row is not None and old_row.state == PENDING


def test_an_older_identical_message_is_never_adopted(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    # Yesterday's run (another journal) sent the very same texts to the same people.
    for number in numbers(30):
        client.send_sms(number, "Привет, это тест")
    emulator.shift_messages(86_400)  # ... a day ago, not a millisecond ago
    yesterday = {m.id for m in emulator.messages()}
    emulator.configure(fault_drop_before=0.3, fault_methods=frozenset({"message/sendsmsmessage"}))
    journal.register(plan(30))
    summary = make_pass(client, journal).run()
    dropped = sum(1 for c in emulator.calls("message/sendsmsmessage") if c.fault == "drop_before")
    assert dropped > 0
    assert summary.counts == {SENT: 30} and summary.adopted == 0
    assert not {r.message_id for r in journal.rows()} & yesterday
    assert accepted(emulator) == Counter({n: 2 for n in numbers(30)})  # yesterday's + today's


def test_searches_use_documented_criteria_only(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    emulator.configure(fault_drop_after=0.5, fault_methods=frozenset({"message/sendsmsmessage"}))
    journal.register(plan(10))
    make_pass(client, journal, sender="Shop").run()
    searches = emulator.calls("message/list")
    assert searches
    for call in searches:
        assert call.params.get("sort") in ({"campaignId": "DESC"},)
        assert "from" not in call.params.get("criteria", {})  # the sender may differ


def test_a_stop_ends_waits_for_a_rate_slot_without_sending(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    journal.register(plan(40))
    send = make_pass(client, journal, rate=1, workers=8)
    timer = threading.Timer(0.5, send.request_stop)
    timer.start()
    started = time.monotonic()
    summary = send.run()
    assert time.monotonic() - started < 3  # nobody sat out their slot
    assert len(emulator.messages()) == summary.counts[SENT] <= 2
    assert summary.counts[PENDING] == 40 - summary.counts[SENT]


def test_an_abort_stops_the_other_workers(emulator: MobizonEmulator, journal: Journal) -> None:
    journal.register(plan(100))
    with MobizonClient("W" * 40, emulator.url) as wrong:
        summary = make_pass(wrong, journal, rate=0, workers=8).run()
    refused = [c for c in emulator.calls("message/sendsmsmessage") if c.code == 8]
    assert summary.aborted is not None
    assert len(refused) <= 8  # the requests already on their way, and no more
    assert summary.counts == {PENDING: 100}


def test_requests_refused_with_code_30_do_not_use_up_the_attempts(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    # Far too fast for the provider, and a connection dropped now and then: rows
    # collect many code-30 refusals, which must not count against --max-attempts
    # (a dropped, uncreated send is looked up, not found, and sent again).
    sends = frozenset({"message/sendsmsmessage"})
    emulator.configure(rate_limit=40, fault_drop_before=0.03, fault_methods=sends)
    journal.register(plan(120))
    summary = make_pass(client, journal, rate=400, max_attempts=4).run()
    refused = sum(1 for c in emulator.calls("message/sendsmsmessage") if c.code == 30)
    assert refused > 120 and summary.resent > 0
    assert summary.counts == {SENT: 120}
    assert accepted(emulator) == Counter(numbers(120))


def test_checkpoints_take_at_most_a_tenth_of_a_long_pass() -> None:
    """After a checkpoint that took d seconds, the next waits at least 10·d (not 3·d)."""
    from mobizon_batch.sendloop import _Checkpointer

    now = [0.0]
    runs: list[float] = []

    def slow_checkpoint() -> None:
        runs.append(now[0])
        now[0] += 2.0  # a big XLSX rewrite: two seconds

    checkpointer = _Checkpointer(slow_checkpoint, 5.0, lambda: now[0])
    busy = 0.0
    while now[0] < 600:
        before = now[0]
        checkpointer.maybe_run()
        checkpointer.finish()
        busy += now[0] - before
        now[0] += 0.5  # sending goes on between looks
    assert len(runs) > 5
    assert busy / now[0] < 0.10
    assert min(b - a for a, b in itertools.pairwise(runs[1:])) >= 20.0


def test_each_intent_is_committed_before_its_request_with_one_sync_per_answer(
    emulator: MobizonEmulator, client: MobizonClient, journal: Journal
) -> None:
    """The outcomes ride along with the next intents: one commit per answer.

    At the moment each request leaves, another connection already sees its
    row ``sending`` with its intent (committed, not cached).
    """
    count = 200
    journal.register(plan(count))
    seen = sqlite3.connect(journal.path, check_same_thread=False)
    seen_lock = threading.Lock()
    unsynced: list[str] = []
    original = client.send_sms

    def checked(recipient: str, *args: object, **kwargs: object) -> object:
        with seen_lock:
            state = seen.execute(
                "SELECT state FROM rows WHERE recipient=? AND intent_at IS NOT NULL",
                (recipient,),
            ).fetchone()
        if state is None or state[0] != SENDING:
            unsynced.append(recipient)
        return original(recipient, *args, **kwargs)  # type: ignore[arg-type]

    commits: list[str] = []
    client.send_sms = checked  # type: ignore[method-assign]
    journal._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        summary = make_pass(client, journal, workers=1).run()
    finally:
        journal._db.set_trace_callback(None)
        seen.close()
    assert summary.counts == {SENT: count}
    assert unsynced == []
    # One worker: an answer at a time.  Each answer costs one commit (its outcome
    # with the next intent; before, two), plus the first claim, the recovery of
    # a crash's rows and what the pass keeps at the end.
    assert len(commits) <= count + 5
