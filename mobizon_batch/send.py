"""The send pass: every pending row sent once, at the allowed rate, crash-safe.

How it is put together, and why:

* One coordinator (the calling thread) owns the journal.  It commits the
  *intent* for a handful of rows (``sending``), hands them to the workers, and
  commits each outcome as it comes back.  Only a few rows are ever claimed
  ahead (twice the worker count), so a crash leaves at most those in
  ``sending``; on restart they become ``unknown`` and are reconciled.
* Workers (threads sharing one pooled client) wait for the rate limiter,
  POST, and retry only what surely created nothing (``retries.should_retry_send``).
* A send whose answer was lost becomes ``unknown``.  After a settle delay a
  worker searches Message/List for that recipient and exact text; the
  coordinator gives the row the first message no other row owns (the journal
  enforces one owner per message id), or, when there is none, sends again.
  At most one task per (recipient, text) pair is in flight at a time, so a
  search can never see a sibling's message before the journal knows whose it is.
* The search only accepts messages *newer* than the attempt.  Mobizon's
  timestamps carry no time zone, so the time filter is a generous day; what
  makes it exact is that message ids grow with time: a message our request
  created has a higher id than every message that existed before the request
  (the newest id in the account when the pass started, and every id the
  journal had received before the row's intent).  An identical text sent to
  the same person yesterday, by another run, is never taken for today's.
* Codes 4-6, 8, 9, 14 stop the run at once; one bad row never stops the others.
  ``request_stop()`` (Ctrl-C, SIGTERM) takes no new rows, cuts waits short and
  lets requests in flight finish; the pass always waits for them, so the
  journal is never left behind by a request still on its way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from mobizon_batch.client import MobizonClient, SendReceipt, to_datetime
from mobizon_batch.errors import (
    AnswerLost,
    ApiError,
    BackgroundTask,
    ConfigError,
    MobizonBatchError,
    RateLimited,
    RunAborted,
    ServiceError,
    TransportError,
    ValidationError,
)
from mobizon_batch.journal import Journal, JournalRow, Outcome
from mobizon_batch.listing import ListFilter, export_messages
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read, send_retrying, should_retry_send
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT, SendState

# Worker task kinds and result states beyond the journal's own.
SEND, SEARCH = "send", "search"
ABORT, FOUND, SEARCH_FAILED = "abort", "found", "search_failed"
STOPPED_BEFORE_ROW = "not sent: the run was stopped before this row"

log = logging.getLogger(__name__)

DEFERRED_MIN = timedelta(hours=1)
DEFERRED_MAX = timedelta(days=14)


@dataclass(frozen=True)
class SendOptions:
    """How to send: message parameters, pace, and the bounds on retrying."""

    sender: str | None = None
    name: str | None = None
    validity: int | None = None
    deferred_to: datetime | None = None
    flash: bool = False
    rate: float = 20.0
    workers: int = 8
    max_attempts: int = 5
    max_retry_seconds: float = 300.0
    settle_seconds: float = 5.0
    reconcile_window: timedelta = timedelta(days=1)
    #: consecutive rows that could not reach the API before the run gives up
    unreachable_after: int = 20


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


def check_deferred_to(text: str, now: datetime | None = None) -> datetime:
    """Parse ``--deferred-to`` and insist it is 1 hour to 14 days ahead (else ConfigError)."""
    try:
        moment = datetime.strptime(text.strip(), TIMESTAMP_FORMAT)
    except ValueError:
        raise ConfigError(
            f"--deferred-to {text!r} is not a time: write it as YYYY-MM-DD HH:MM:SS"
        ) from None
    current = now or datetime.now()
    # A minute of margin: the request takes a moment to reach the API.
    if not current + DEFERRED_MIN + timedelta(minutes=1) <= moment <= current + DEFERRED_MAX:
        raise ConfigError(
            f"--deferred-to {text} must be between 1 hour and 14 days from now "
            f"(Mobizon refuses other times)"
        )
    return moment


# ------------------------------------------------------------ worker results


@dataclass(frozen=True)
class _Task:
    kind: str  # "send" or "search"
    row: JournalRow  # its intent_at is the time of the request a search looks for
    #: for a search: only messages with a higher id can be this row's
    floor: int | None = None


@dataclass(frozen=True)
class _Result:
    task: _Task
    state: str  # sent, failed, unknown, pending, abort, found, search_failed
    posts: int = 0  # requests made
    #: requests that count against --max-attempts (not those refused with code 30)
    tries: int = 0
    receipt: SendReceipt | None = None
    error_code: int | None = None
    error: str = ""
    candidates: tuple[tuple[int, int | None], ...] = ()
    exception: MobizonBatchError | None = None
    unreachable: bool = False


@dataclass
class _Row:
    """What the coordinator tracks of one row during this pass."""

    row: JournalRow
    state: str
    tries: int = 0
    searches: int = 0
    #: the intent of this row's last request was made by this pass
    claimed_here: bool = False


@dataclass(eq=False)
class _Due:
    """A search to make at ``at`` (compared by identity: two may share a time)."""

    at: float
    row_key: str


class SendPass:
    """Send the journal's pending rows (and reconcile its unknown ones).

    ``keys`` limits the pass to those rows (the current list's): rows of an
    earlier version of the list that are still pending in the journal are
    left alone.  ``sleep`` and ``clock`` are injectable for tests;
    ``on_progress`` gets a ``SendProgress`` after each batch of outcomes;
    ``checkpoint`` (for example "rewrite the results file") is called every
    ``checkpoint_interval`` seconds in a background thread, never twice at once.
    """

    def __init__(
        self,
        client: MobizonClient,
        journal: Journal,
        options: SendOptions | None = None,
        *,
        keys: Collection[str] | None = None,
        limiter: RateLimiter | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_interval: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.journal = journal
        self.options = options or SendOptions()
        self.keys = frozenset(keys) if keys is not None else None
        # Set on a stop request, an abort and when the pass ends: workers take
        # no new rows, and waits (retry backoff, rate slots) end at once.
        self._halt = threading.Event()
        self.limiter = limiter or RateLimiter(self.options.rate, sleep=self._halt.wait)
        self.on_progress = on_progress
        self.checkpoint = checkpoint
        self.checkpoint_interval = checkpoint_interval
        self._interrupted = False
        self._sleep = sleep or self._interruptible_sleep
        self._read_policy = ReadPolicy(attempts=self.options.max_attempts, sleep=self._sleep)
        self._clock = clock
        self._retries = 0
        self._retries_lock = threading.Lock()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._halt.wait(seconds)

    # ---------------------------------------------------------------- control

    def request_stop(self) -> None:
        """Ctrl-C or SIGTERM: take no new rows, let requests in flight finish."""
        self._interrupted = True
        self._halt.set()

    @property
    def halted(self) -> bool:
        return self._halt.is_set()

    def _settle_left(self, intent_at: str | None) -> float:
        """Seconds until a row whose intent was at ``intent_at`` may be searched for."""
        intent = to_datetime(intent_at)
        if intent is None:
            return 0.0
        waited = (datetime.now() - intent).total_seconds()
        return max(0.0, self.options.settle_seconds - waited)

    def newest_message_id(self) -> int | None:
        """The highest message id in the account now, or None if it can't be learned.

        Sorted by campaignId (a documented sort field; every send makes its
        own campaign, so the newest campaign holds the newest message).
        """
        try:
            items, _ = call_read(
                partial(self.client.list_messages, page_size=25, sort={"campaignId": "DESC"}),
                policy=ReadPolicy(attempts=self.options.max_attempts, sleep=self._sleep),
            )
        except MobizonBatchError as exc:
            log.warning("could not read the newest message id (%s); searches use the journal", exc)
            return None
        ids = [item["id"] for item in items if isinstance(item.get("id"), int)]
        return max(ids) if ids else 0

    # ------------------------------------------------------------ coordinator

    def run(self) -> SendSummary:
        """Send until every pending row is settled, the API aborts, or a stop is asked."""
        run = _Run(self)
        try:
            run.loop()
        finally:
            self._halt.set()  # queued tasks are released at once, whatever ended the loop
            run.shutdown()  # ... and every request in flight has ended before we return
        summary = run.summary
        summary.counts = self.journal.counts(self.keys)
        summary.elapsed = self._clock() - run.started
        summary.interrupted = self._interrupted and summary.aborted is None
        summary.retries = self._retries
        summary.slowdowns = self.limiter.slowdowns
        return summary

    # ----------------------------------------------------------------- workers

    def _send(self, task: _Task) -> _Result:
        """POST one row, retrying only what surely created nothing."""
        row, options = task.row, self.options
        posts = 0
        counted = 0  # attempts that count against --max-attempts (code 30 does not)

        def attempt() -> SendReceipt:
            nonlocal posts, counted
            if self.halted:
                raise _Released()
            self.limiter.acquire()
            if self.halted:  # the wait for a slot ended because the run stopped
                raise _Released()
            posts += 1
            try:
                return self.client.send_sms(
                    row.recipient,
                    row.text,
                    sender=options.sender,
                    name=options.name,
                    deferred_to=options.deferred_to,
                    validity=options.validity,
                    mclass=0 if options.flash else None,
                )
            except RateLimited:
                self.limiter.slow_down()
                raise
            except MobizonBatchError:
                counted += 1
                raise

        def count_retry() -> None:
            with self._retries_lock:
                self._retries += 1

        policy = send_retrying(
            max_attempts=options.max_attempts,
            max_seconds=options.max_retry_seconds,
            attempts_counted=lambda: counted,
            halted=lambda: self.halted,
            sleep=self._sleep,
            on_retry=count_retry,
        )
        try:
            receipt = policy(attempt)
        except _Released:
            return _Result(task, SendState.PENDING, posts, error=STOPPED_BEFORE_ROW)
        except MobizonBatchError as exc:
            return replace(self._classify(task, exc, posts), tries=counted)
        except Exception as exc:  # a bug must not lose the row: its request may have left
            error = self.client.redact(f"internal error while sending: {exc!r}")
            return _Result(task, SendState.UNKNOWN, posts, tries=max(counted, 1), error=error)
        return _Result(task, SendState.SENT, posts, tries=counted + 1, receipt=receipt)

    def _classify(self, task: _Task, exc: MobizonBatchError, posts: int) -> _Result:
        """The row's fate after a send that did not succeed."""
        if should_retry_send(exc):  # retries ran out, or the run is stopping
            if self.halted:
                return _Result(task, SendState.PENDING, posts, error=STOPPED_BEFORE_ROW)
            return _Result(
                task,
                SendState.PENDING,
                posts,
                error=f"not sent: gave up retrying ({exc})",
                unreachable=isinstance(exc, TransportError),
            )
        if isinstance(exc, ConfigError) or (isinstance(exc, ApiError) and exc.aborts_run):
            # Nothing was created: a refused key, a redirect, a domain we may not use.
            # Halt here, not when the coordinator gets to it: the other workers
            # must not start one more request that can only be refused too.
            self._halt.set()
            return _Result(task, ABORT, posts, error=str(exc), exception=exc)
        if isinstance(exc, AnswerLost | ServiceError | BackgroundTask):
            code = exc.code if isinstance(exc, ApiError) else None
            return _Result(
                task, SendState.UNKNOWN, posts, error_code=code, error=f"outcome unknown: {exc}"
            )
        if isinstance(exc, ApiError):
            return _Result(
                task, SendState.FAILED, posts, error_code=exc.code, error=_rejection(exc)
            )
        return _Result(task, SendState.UNKNOWN, posts, error=f"outcome unknown: {exc}")

    def _search(self, task: _Task) -> _Result:
        """Look in Message/List for the message a lost answer may have created."""
        row = task.row
        if self.halted:
            return _Result(task, SEARCH_FAILED, error="outcome unknown: the run stopped first")
        since = to_datetime(row.intent_at) or datetime.now()
        # Not "from": the sender may differ from the one asked for (a default, or
        # another --from when resumed); recipient + exact text + a newer id decide.
        wanted = ListFilter(
            since=since - self.options.reconcile_window, to=row.recipient, text=row.text
        )
        try:
            listed = export_messages(
                self.client, wanted, sort={"campaignId": "DESC"}, policy=self._read_policy
            )
        except MobizonBatchError as exc:
            return _Result(
                task, SEARCH_FAILED, error=f"outcome unknown; the message list failed: {exc}"
            )
        found = _exact_matches(listed.items, row, task.floor)
        return _Result(task, FOUND, candidates=tuple(found))


class _Run:
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
        for row in self.journal.rows([SendState.UNKNOWN]):
            if keys is None or row.row_key in keys:
                self.tracked[row.row_key] = _Row(row, state=SendState.UNKNOWN)
                self.due.append(_Due(self.clock() + owner._settle_left(row.intent_at), row.row_key))
        self.live = self.journal.counts(keys)
        # Every message created by this pass's requests is newer than this one.
        self.newest_before = owner.newest_message_id() if self.pending or self.due else None
        self.busy_pairs: set[tuple[str, str]] = set()
        self.in_flight: dict[Future[_Result], _Task] = {}
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
        while True:
            if self.dispatching:
                self.dispatch()
            if not self.in_flight:
                if not self.dispatching or (not self.pending and not self.due):
                    return
                if self.due:  # nothing to do until the next search is due
                    wake = min(d.at for d in self.due)
                    self.owner._sleep(min(0.2, max(0.0, wake - self.clock())))
                continue
            done, _ = wait(list(self.in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
            outcomes: list[Outcome] = []
            for future in done:
                task = self.in_flight.pop(future)
                self.busy_pairs.discard((task.row.recipient, task.row.text))
                result = future.result()
                self.unreachable_streak = self.unreachable_streak + 1 if result.unreachable else 0
                self.absorb(result, outcomes)
            self.record(outcomes)
            if self.unreachable_streak >= self.options.unreachable_after and self.dispatching:
                self.summary.unreachable = (
                    f"{self.unreachable_streak} rows in a row could not reach the API; "
                    f"stopped sending (the rest stay pending: run the same command again)"
                )
                self.halt()
            self.report()
            self.checkpointer.maybe_run()

    def shutdown(self) -> None:
        # Wait for every request in flight: the journal must outlive them all.
        # Each ends within the HTTP timeouts (the halt cut every other wait).
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.checkpointer.finish()

    def dispatch(self) -> None:
        """Hand out due searches first, then claim and hand out pending rows."""
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
            self.submit(_Task(SEARCH, row, self.floor_for(tracked)))
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
        intent_at, claimed = self.journal.claim([row.row_key for row in batch])
        claimed_keys = set(claimed)
        for row in batch:
            if row.row_key not in claimed_keys:  # already settled: never handed out twice
                self.busy_pairs.discard((row.recipient, row.text))
                continue
            tracked = self.move(row, SendState.SENDING)
            tracked.claimed_here = True
            self.submit(_Task(SEND, replace(row, intent_at=intent_at)))

    def floor_for(self, tracked: _Row) -> int | None:
        """The id a message must exceed to be this row's (None: no bound known)."""
        floors = [self.journal.id_floor(tracked.row.intent_at)]
        if tracked.claimed_here:
            floors.append(self.newest_before)
        known = [f for f in floors if f is not None]
        return max(known) if known else None

    def submit(self, task: _Task) -> None:
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

    def absorb(self, result: _Result, outcomes: list[Outcome]) -> None:
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
                self.due.append(_Due(self.clock() + options.settle_seconds, key))
        elif result.state == ABORT:
            outcomes.append(Outcome(key, SendState.PENDING, result.posts, error=result.error))
            self.move(row, SendState.PENDING)
            if summary.aborted is None:
                summary.aborted = RunAborted(result.error, result.exception)
            self.halt()
        elif result.state == FOUND:
            self.record(outcomes)  # the adoption must see every id recorded so far
            adopted = self.journal.adopt(key, result.candidates) if result.candidates else None
            if adopted is not None:
                self.move(row, SendState.SENT)
                summary.adopted += 1
                summary.sent_now += 1
                summary.segments_sent += row.segments
            elif tracked.tries < options.max_attempts:
                summary.resent += 1
                self.pending.appendleft(row)
            else:
                outcomes.append(
                    Outcome(
                        key,
                        SendState.UNKNOWN,
                        error=f"no answer to {tracked.tries} attempts and not found in the "
                        f"message list; not sent again (check the Mobizon panel)",
                    )
                )
        elif result.state == SEARCH_FAILED:
            tracked.searches += 1
            if tracked.searches < options.max_attempts:
                self.due.append(_Due(self.clock() + max(options.settle_seconds, 1.0), key))
            outcomes.append(Outcome(key, SendState.UNKNOWN, error=result.error))

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


class _Released(Exception):
    """Internal: the run stopped before this row's request was made."""


def _rejection(exc: ApiError) -> str:
    if isinstance(exc, ValidationError) and exc.details:
        return f"rejected by Mobizon: {exc.details}"
    return f"rejected by Mobizon: {exc.api_message or exc}"


def _exact_matches(
    items: Sequence[dict[str, Any]], row: JournalRow, floor: int | None
) -> list[tuple[int, int | None]]:
    """``(id, campaignId)`` of listed messages that can be this row's.

    To exactly this recipient (the API's ``to`` criterion is a substring
    match), with exactly this text, and newer than ``floor`` when one is known.
    """
    found = []
    for item in items:
        message_id, campaign_id = item.get("id"), item.get("campaignId")
        if (
            str(item.get("to", "")) == row.recipient
            and item.get("text") == row.text
            and isinstance(message_id, int)
            and (floor is None or message_id > floor)
        ):
            found.append((message_id, campaign_id if isinstance(campaign_id, int) else None))
    return found


class _Checkpointer:
    """Runs a checkpoint in the background, spaced so it never takes over the run.

    The interval stretches to three times the last checkpoint's duration, so a
    slow XLSX rewrite of a big list does not run back to back.
    """

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
        if self.clock() - self.last < max(self.interval, 3 * self.last_duration):
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
