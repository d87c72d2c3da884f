"""The coordinator of a send pass: the one thread that owns the journal.

Why apart from ``send.py``: that module says what one request and one
search do (the workers); this one decides what runs when and writes down
what came of it.  It commits the *intent* for a handful of rows, hands them
to the workers, records each outcome as it comes back, schedules searches
for lost answers, adopts what they find or sends again, and stops the pass
on an abort, a stop request or an unreachable API.  See ``send.py`` for the
reasoning behind each of those rules.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from mobizon_batch.client import SendReceipt
from mobizon_batch.errors import MobizonBatchError, RunAborted
from mobizon_batch.journal import JournalRow, Outcome
from mobizon_batch.lookup import describe_unsure
from mobizon_batch.vocabulary import SendState

if TYPE_CHECKING:
    from mobizon_batch.send import SendPass

# Worker task kinds and result states beyond the journal's own.
SEND, SEARCH = "send", "search"
ABORT, FOUND, SEARCH_FAILED = "abort", "found", "search_failed"


@dataclass
class SendSummary:
    """What a pass did; ``counts`` are the journal states of the pass's rows."""

    counts: Counter[str]
    sent_now: int = 0
    failed_now: int = 0
    adopted: int = 0
    resent: int = 0
    retries: int = 0
    slowdowns: int = 0
    segments_sent: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    aborted: RunAborted | None = None
    unreachable: str = ""
    #: lost answers the message list could not settle in time (left ``unknown``)
    unsettled: int = 0
    #: Message/List calls the lookups made
    list_calls: int = 0

    @property
    def rate(self) -> float:
        """Messages accepted per second in this pass."""
        return self.sent_now / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def incomplete(self) -> int:
        """Rows that are neither sent nor settled by a verdict: failed, unknown, pending."""
        return sum(
            self.counts[s]
            for s in (SendState.FAILED, SendState.UNKNOWN, SendState.PENDING, SendState.SENDING)
        )


@dataclass(frozen=True)
class SendProgress:
    """A snapshot for a progress display."""

    done: int
    total: int
    sent: int
    failed: int
    unknown: int
    rate: float


@dataclass(frozen=True)
class Task:
    kind: str  # "send" or "search"
    row: JournalRow  # its intent_at is the time of the request a search looks for
    #: for a search: when the lost request ended (our clock), at the latest
    ended: datetime | None = None


@dataclass(frozen=True)
class Result:
    task: Task
    state: str  # sent, failed, unknown, pending, abort, found, search_failed
    posts: int = 0  # requests made
    #: requests that count against --max-attempts (not those refused with code 30)
    tries: int = 0
    receipt: SendReceipt | None = None
    error_code: int | None = None
    error: str = ""
    candidates: tuple[tuple[int, int | None], ...] = ()
    #: a search: the list is old enough that what it lacks was not created
    settled: bool = False
    exception: MobizonBatchError | None = None
    unreachable: bool = False


@dataclass
class _Row:
    """What the coordinator tracks of one row during this pass."""

    row: JournalRow
    state: str
    tries: int = 0
    searches: int = 0
    #: when its answer was lost (our clock; a crash's rows: when this pass began)
    ended: datetime | None = None
    #: the pass clock's reading then: the lookups give up ``lookup_seconds`` later
    lost_at: float = 0.0


@dataclass(eq=False)
class _Due:
    """A search to make at ``at`` (compared by identity: two may share a time)."""

    at: float
    row_key: str


class Run:
    """The coordinator's state for one pass; it alone touches the journal."""

    def __init__(self, owner: SendPass) -> None:
        self.owner = owner
        self.journal = owner.journal
        self.options = owner.options
        self.clock = owner._clock
        self.started = self.clock()
        self.summary = SendSummary(counts=Counter())
        keys = owner.keys
        self.journal.recover_interrupted()
        self.pending: deque[JournalRow] = deque(
            row
            for row in self.journal.rows([SendState.PENDING])
            if keys is None or row.row_key in keys
        )
        self.tracked: dict[str, _Row] = {}
        self.due: list[_Due] = []
        # Rows a crash (or an earlier run's lookups) left unknown: their requests
        # ended before this pass began at the latest.
        for row in self.journal.rows([SendState.UNKNOWN]):
            if keys is None or row.row_key in keys:
                self.tracked[row.row_key] = _Row(
                    row, state=SendState.UNKNOWN, ended=datetime.now(), lost_at=self.started
                )
                self.due.append(_Due(self.clock() + owner._settle_left(row.intent_at), row.row_key))
        if self.due:
            owner.reconciler.want()  # watch our first sends: the lookups need the lag
        self.live = self.journal.counts(keys)
        self.busy_pairs: set[tuple[str, str]] = set()
        self.in_flight: dict[Future[Result], Task] = {}
        self.capacity = max(1, self.options.workers) * 2
        self.unreachable_streak = 0
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, self.options.workers), thread_name_prefix="send"
        )
        self.checkpointer = _Checkpointer(owner.checkpoint, owner.checkpoint_interval, self.clock)

    @property
    def dispatching(self) -> bool:
        return not self.owner.halted

    def halt(self) -> None:
        """Stop handing out work, and cut every wait short (an abort, no API)."""
        self.owner._halt.set()

    def loop(self) -> None:
        # Outcomes wait for the next dispatch, which records them in the
        # transaction that commits the next intents (one sync for both);
        # ``record`` takes what no dispatch took along.
        outcomes: list[Outcome] = []
        answered = False
        while True:
            if self.dispatching:
                self.dispatch(outcomes)
            self.record(outcomes)
            if answered:
                self.report()
                self.checkpointer.maybe_run()
                answered = False
            if not self.in_flight:
                if not self.dispatching or (not self.pending and not self.due):
                    return
                if self.due:  # nothing to do until the next search is due
                    wake = min(d.at for d in self.due)
                    self.owner._sleep(min(0.2, max(0.0, wake - self.clock())))
                continue
            done, _ = wait(list(self.in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                task = self.in_flight.pop(future)
                self.busy_pairs.discard((task.row.recipient, task.row.text))
                result = future.result()
                self.unreachable_streak = self.unreachable_streak + 1 if result.unreachable else 0
                self.absorb(result, outcomes)
            answered = True
            if self.unreachable_streak >= self.options.unreachable_after and self.dispatching:
                self.summary.unreachable = (
                    f"{self.unreachable_streak} rows in a row could not reach the API; "
                    f"stopped sending (the rest stay pending: run the same command again)"
                )
                self.halt()

    def shutdown(self) -> None:
        # Wait for every request in flight: the journal must outlive them all.
        # Each ends within the HTTP timeouts (the halt cut every other wait).
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.checkpointer.finish()

    def dispatch(self, outcomes: list[Outcome]) -> None:
        """Hand out due searches first, then claim and hand out pending rows.

        The claim records ``outcomes`` too (and empties the list): one
        transaction, one sync.
        """
        now = self.clock()
        for item in sorted(self.due, key=lambda d: d.at):
            if len(self.in_flight) >= self.capacity or item.at > now:
                break
            tracked = self.tracked[item.row_key]
            row = tracked.row
            pair = (row.recipient, row.text)
            if pair in self.busy_pairs:
                continue
            self.due = [d for d in self.due if d is not item]
            self.busy_pairs.add(pair)
            self.submit(Task(SEARCH, row, tracked.ended))
        batch: list[JournalRow] = []
        skipped: list[JournalRow] = []
        while self.pending and len(self.in_flight) + len(batch) < self.capacity:
            row = self.pending.popleft()
            pair = (row.recipient, row.text)
            if pair in self.busy_pairs:
                skipped.append(row)
                continue
            self.busy_pairs.add(pair)
            batch.append(row)
        self.pending.extendleft(reversed(skipped))
        if not batch:
            return
        # The intent is committed (fully synced) before any of these requests leaves.
        intent_at, claimed = self.journal.claim([row.row_key for row in batch], outcomes)
        outcomes.clear()
        claimed_keys = set(claimed)
        for row in batch:
            if row.row_key not in claimed_keys:  # already settled: never handed out twice
                self.busy_pairs.discard((row.recipient, row.text))
                continue
            self.move(row, SendState.SENDING)
            self.submit(Task(SEND, replace(row, intent_at=intent_at)))

    def submit(self, task: Task) -> None:
        work = self.owner._send if task.kind == SEND else self.owner._search
        self.in_flight[self.pool.submit(work, task)] = task

    def move(self, row: JournalRow, state: str) -> _Row:
        """Track the row's state for live counts (the journal holds the truth)."""
        tracked = self.tracked.setdefault(row.row_key, _Row(row, state=row.state))
        if tracked.state != state:
            self.live[tracked.state] -= 1
            self.live[state] += 1
            tracked.state = state
        tracked.row = row
        return tracked

    def record(self, outcomes: list[Outcome]) -> None:
        self.journal.record(outcomes)
        outcomes.clear()

    def absorb(self, result: Result, outcomes: list[Outcome]) -> None:
        """Turn one worker result into journal outcomes and follow-up work."""
        row, summary, options = result.task.row, self.summary, self.options
        key = row.row_key
        tracked = self.tracked.setdefault(key, _Row(row, state=row.state))
        tracked.tries += result.tries
        if result.state == SendState.SENT and result.receipt is not None:
            receipt = result.receipt
            outcomes.append(
                Outcome(key, SendState.SENT, result.posts, receipt.message_id, receipt.campaign_id)
            )
            self.move(row, SendState.SENT)
            summary.sent_now += 1
            summary.segments_sent += row.segments
        elif result.state in (SendState.FAILED, SendState.UNKNOWN, SendState.PENDING):
            outcomes.append(
                Outcome(
                    key, result.state, result.posts, None, None, result.error_code, result.error
                )
            )
            self.move(row, result.state)
            if result.state == SendState.FAILED:
                summary.failed_now += 1
            if result.state == SendState.UNKNOWN:
                tracked.ended, tracked.lost_at, tracked.searches = datetime.now(), self.clock(), 0
                self.owner.reconciler.want()
                self.due.append(_Due(self.clock() + options.settle_seconds, key))
        elif result.state == ABORT:
            outcomes.append(Outcome(key, SendState.PENDING, result.posts, error=result.error))
            self.move(row, SendState.PENDING)
            if summary.aborted is None:
                summary.aborted = RunAborted(result.error, result.exception)
            self.halt()
        elif result.state == FOUND:
            self.record(outcomes)  # the adoption must see every id recorded so far
            self.settle(tracked, result, outcomes)
        elif result.state == SEARCH_FAILED:
            tracked.searches += 1
            if tracked.searches < options.max_attempts:
                self.due.append(_Due(self.clock() + self.pause(tracked), key))
            outcomes.append(Outcome(key, SendState.UNKNOWN, error=result.error))

    def settle(self, tracked: _Row, result: Result, outcomes: list[Outcome]) -> None:
        """Act on what a lookup found: adopt, send again, look again, or leave unknown."""
        row, summary, options = tracked.row, self.summary, self.options
        key = row.row_key
        # 1. A message no other row owns, made after the intent: it is this row's.
        adopted = self.journal.adopt(key, result.candidates) if result.candidates else None
        if adopted is not None:
            self.move(row, SendState.SENT)
            summary.adopted += 1
            summary.sent_now += 1
            summary.segments_sent += row.segments
        # 2. The list would show it by now and does not: nothing was created.
        elif result.settled and tracked.tries < options.max_attempts:
            summary.resent += 1
            self.pending.appendleft(row)
        elif result.settled:
            outcomes.append(
                Outcome(
                    key,
                    SendState.UNKNOWN,
                    error=f"no answer to {tracked.tries} attempts and not found in the "
                    f"message list; not sent again (check the Mobizon panel)",
                )
            )
        # 3. Not sure yet: look again after a longer pause, within the bound.
        elif self.clock() - tracked.lost_at < options.lookup_seconds and self.dispatching:
            tracked.searches += 1
            self.due.append(_Due(self.clock() + self.pause(tracked), key))
        # 4. Still not sure: leave it unknown, and say why (a later run looks again).
        else:
            summary.unsettled += 1
            outcomes.append(Outcome(key, SendState.UNKNOWN, error=describe_unsure(result.error)))

    def pause(self, tracked: _Row) -> float:
        """Growing pauses between lookups of one row: settle, then doubling, at most 30 s."""
        first = max(self.options.settle_seconds, 0.5)
        return float(min(first * 2 ** min(tracked.searches, 10), 30.0))

    def report(self) -> None:
        callback = self.owner.on_progress
        if callback is None:
            return
        live = self.live
        elapsed = self.clock() - self.started
        callback(
            SendProgress(
                done=live[SendState.SENT] + live[SendState.FAILED],
                total=sum(
                    live[s]
                    for s in (
                        SendState.PENDING,
                        SendState.SENDING,
                        SendState.SENT,
                        SendState.FAILED,
                        SendState.UNKNOWN,
                    )
                ),
                sent=live[SendState.SENT],
                failed=live[SendState.FAILED],
                unknown=live[SendState.UNKNOWN],
                rate=self.summary.sent_now / elapsed if elapsed > 0 else 0.0,
            )
        )


class _Checkpointer:
    """Runs a checkpoint in the background, spaced so it never takes over the run.

    The interval stretches to SPACING times the last checkpoint's duration,
    so rewriting the results of a big list (a few seconds for a 100,000-row
    XLSX) takes at most a twelfth of the pass: the threads sending share the
    interpreter with it, and the journal, not the file, is what a crash
    needs.
    """

    SPACING = 12

    def __init__(
        self, action: Callable[[], None] | None, interval: float, clock: Callable[[], float]
    ) -> None:
        self.action = action
        self.interval = interval
        self.clock = clock
        self.last = clock()
        self.last_duration = 0.0
        self.thread: threading.Thread | None = None

    def maybe_run(self) -> None:
        if self.action is None or (self.thread is not None and self.thread.is_alive()):
            return
        if self.clock() - self.last < max(self.interval, self.SPACING * self.last_duration):
            return
        self.last = self.clock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.action is not None
        started = self.clock()
        # A failed checkpoint must not stop the sending; the action reports it.
        with contextlib.suppress(Exception):
            self.action()
        self.last_duration = self.clock() - started

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
