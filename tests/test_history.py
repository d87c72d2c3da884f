"""The history guard: what counts as already sent, which query it picks, and its bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError
from mobizon_batch.history import LIST_WORKERS, Planned, guard


def planned(count: int, text: str = "Sale today", prefix: str = "7701") -> list[Planned]:
    return [Planned(f"k{n}", f"{prefix}{n:07d}", text) for n in range(count)]


def test_rows_already_sent_get_that_message(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    ids = emulator.preload(5, text="Sale today")
    time.sleep(0.3)  # on their way: startSendTs is set
    report = guard(client, planned(8), offset=0.0)
    assert {key: e.message_id for key, e in report.already.items()} == {
        f"k{n}": ids[n] for n in range(5)
    }
    assert report.seen_ids == set(ids)
    assert all(e.started for e in report.already.values())  # when it went, for the reason


def test_only_the_same_text_to_the_same_number_counts(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(3, text="Sale today!")  # another text
    emulator.preload(3, prefix="7702", text="Sale today")  # other numbers
    assert guard(client, planned(3), offset=0.0).already == {}


def test_texts_match_whitespace_normalized_both_ways(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(2, text="Sale  today ")
    emulator.configure(normalize_whitespace=True)
    client.send_sms("77010000002", "Sale   today")  # stored as "Sale today"
    report = guard(client, planned(3, "Sale  today"), offset=0.0)
    assert set(report.already) == {"k0", "k1", "k2"}


def test_messages_outside_the_window_or_staged_do_not_count(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(2, text="Sale today", age=3 * 3600)  # three hours ago
    emulator.preload(2, text="Sale today", sent=False)  # staged, never sent
    assert guard(client, planned(4), window=timedelta(hours=2), offset=0.0).already == {}
    assert len(guard(client, planned(4), window=timedelta(hours=4), offset=0.0).already) == 2


def test_an_unknown_account_clock_widens_the_window(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(2, text="Sale today", age=3 * 3600)
    report = guard(client, planned(2), window=timedelta(hours=2), offset=None)
    assert report.widened and len(report.already) == 2  # errs towards not sending


def test_messages_this_journal_owns_are_not_history(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    ids = emulator.preload(3, text="Sale today")
    report = guard(client, planned(3), offset=0.0, own_ids={ids[0]})
    assert set(report.already) == {"k1", "k2"}


def test_one_earlier_message_answers_for_one_row(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    # The list asks for the same text to one number twice (--allow-duplicates).
    emulator.preload(1, text="Sale today")
    rows = [Planned("a", "77010000000", "Sale today"), Planned("b", "77010000000", "Sale today")]
    assert list(guard(client, rows, offset=0.0).already) == ["a"]


def test_few_texts_are_asked_by_text_many_by_time_window(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(1000, prefix="7709", text="Someone else's campaign")
    emulator.preload(30, text="Sale today")
    by_text = guard(client, planned(30), offset=0.0)
    assert by_text.query == "by text" and len(by_text.already) == 30
    assert by_text.calls == 2  # the size of the window, then one page of the text
    emulator.reset_calls()
    many = [Planned(f"k{n}", f"7701{n:07d}", f"Code {n}") for n in range(30)]
    by_time = guard(client, many, offset=0.0)
    assert by_time.query == "by time window"
    assert by_time.calls == len(emulator.calls("message/list")) == 11  # 1,030 messages
    assert len(guard(client, planned(30), offset=0.0).already) == 30


def test_the_guard_stops_at_its_bound_with_a_sentence(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.preload(500, prefix="7709", text="Other")
    many = [Planned(f"k{n}", f"7701{n:07d}", f"Code {n}") for n in range(30)]
    with pytest.raises(ConfigError, match="history guard stopped after 3 Message/List calls"):
        guard(client, many, offset=0.0, max_calls=3)


class PagedAccount:
    """A ListSource of ``count`` messages that takes ``delay`` a page and notes how many overlap.

    ``grow_to``: the total it reports from the second call on (a window that
    grows while it is listed); ``broken``: a page that fails.
    """

    def __init__(
        self, count: int, *, delay: float = 0.0, grow_to: int | None = None, broken: int = -1
    ) -> None:
        self.count, self.delay, self.grow_to, self.broken = count, delay, grow_to, broken
        self.asked: list[int] = []
        self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def list_messages(
        self,
        criteria: Mapping[str, Any] | None = None,
        page: int = 0,
        page_size: int = 100,
        sort: Mapping[str, str] | None = None,
        *,
        with_number_info: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            self.asked.append(page)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            total = self.count if len(self.asked) == 1 or self.grow_to is None else self.grow_to
        try:
            time.sleep(self.delay)
            if page == self.broken:
                raise RuntimeError(f"page {page} broke")
            first = page * page_size
            items = [
                {"id": n + 1, "to": f"7701{n:07d}", "text": f"Code {n}", "campaignId": n + 1}
                for n in range(first, min(first + page_size, total))
            ]
            return items, total
        finally:
            with self.lock:
                self.running -= 1


def many_codes(numbers: range) -> list[Planned]:
    return [Planned(f"k{n}", f"7701{n:07d}", f"Code {n}") for n in numbers]


def test_the_window_is_listed_several_pages_at_once_and_wholly() -> None:
    account = PagedAccount(2_000, delay=0.05)
    report = guard(account, many_codes(range(1_950, 2_000)), offset=0.0)
    assert report.query == "by time window"
    assert sorted(account.asked) == list(range(20)) and report.calls == 20  # no page twice
    assert account.most_at_once == LIST_WORKERS
    assert {key: e.message_id for key, e in report.already.items()} == {
        f"k{n}": n + 1 for n in range(1_950, 2_000)
    }


def test_a_window_that_grows_while_it_is_listed_is_followed_to_its_end() -> None:
    account = PagedAccount(1_000, grow_to=1_450)
    report = guard(account, many_codes(range(1_400, 1_450)), offset=0.0)
    assert sorted(account.asked) == list(range(15))
    assert len(report.already) == 50


def test_a_page_that_fails_fails_the_guard() -> None:
    account = PagedAccount(3_000, broken=7)
    with pytest.raises(RuntimeError, match="page 7 broke"):
        guard(account, many_codes(range(60)), offset=0.0)


def test_the_bound_holds_with_pages_asked_at_once() -> None:
    account = PagedAccount(5_000, delay=0.01)
    with pytest.raises(ConfigError, match="history guard stopped after 9 Message/List calls"):
        guard(account, many_codes(range(60)), offset=0.0, max_calls=9)
    assert len(account.asked) == 9


class ShiftingAccount(PagedAccount):
    """A window that moves under parallel readers: serving page ``late + 1`` inserts a message
    at its front (an older campaign sent meanwhile), and page ``late`` waits for that.

    A reader that asks the pages out of order then finds the last message of page ``late``
    on neither page (it moved onto the page already read); one that reads them in order
    meets it once or twice, never not at all.
    """

    def __init__(self, count: int, late: int) -> None:
        super().__init__(count)
        self.late = late
        self.messages = [
            {"id": n + 1, "to": f"7701{n:07d}", "text": f"Code {n}", "campaignId": n + 1}
            for n in range(count)
        ]
        self.moved = threading.Event()

    def list_messages(
        self,
        criteria: Mapping[str, Any] | None = None,
        page: int = 0,
        page_size: int = 100,
        sort: Mapping[str, str] | None = None,
        *,
        with_number_info: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        if page == self.late:
            self.moved.wait(timeout=30)  # a bound, not a timing: the page after it is in flight
        with self.lock:
            self.asked.append(page)
            items = [dict(item) for item in self.messages[page * page_size :][:page_size]]
            total = len(self.messages)
            if page == self.late + 1 and not self.moved.is_set():
                front = {"id": 99_999, "to": "77019999999", "text": "Other", "campaignId": 0}
                self.messages.insert(0, front)
                self.moved.set()
        return items, total


def test_a_message_pushed_onto_a_page_already_read_is_still_found() -> None:
    account = ShiftingAccount(600, late=2)
    last_of_late_page = 299
    report = guard(account, many_codes(range(250, 350)), offset=0.0)
    assert account.moved.is_set()
    assert f"k{last_of_late_page}" in report.already
    assert len(report.already) == 100


def test_ctrl_c_stops_the_guard_without_waiting_for_the_reads_in_flight() -> None:
    """A read that hangs does not hold the guard once the user interrupts it."""
    import _thread

    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    class HangingAccount(PagedAccount):
        def list_messages(self, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
            page = kwargs.get("page", args[1] if len(args) > 1 else 0)
            if page == 2:
                started.set()
                release.wait(10)  # a read the server does not answer (until the test ends)
                finished.set()
            return super().list_messages(*args, **kwargs)

    def interrupt_once_the_read_hangs() -> None:
        if started.wait(10):
            _thread.interrupt_main()

    threading.Thread(target=interrupt_once_the_read_hangs, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            guard(HangingAccount(1_000), many_codes(range(60)), offset=0.0)
        assert not finished.is_set()  # the guard ended while the read still hung
    finally:
        release.set()
