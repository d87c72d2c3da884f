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
* Codes 4-6, 8, 9, 14 stop the run at once; one bad row never stops the others.
  ``request_stop()`` (Ctrl-C, SIGTERM) takes no new rows and lets requests in
  flight finish.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from mobizon_batch.client import MobizonClient, SendReceipt
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
    WrongDomain,
)
from mobizon_batch.journal import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    TIMESTAMP_FORMAT,
    UNKNOWN,
    Journal,
    JournalRow,
    Outcome,
)
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read, should_retry_send

# Worker task kinds and result states beyond the journal's own.
SEND, SEARCH = "send", "search"
ABORT, FOUND, SEARCH_FAILED = "abort", "found", "search_failed"
STOPPED_BEFORE_ROW = "not sent: the run was stopped before this row"

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
    stop_grace_seconds: float = 60.0
    #: consecutive rows that could not reach the API before the run gives up
    unreachable_after: int = 20


@dataclass
class SendSummary:
    """What a pass did; ``counts`` are journal states of every registered row."""

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
        return sum(self.counts[s] for s in (FAILED, UNKNOWN, PENDING, "sending"))


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
    row: JournalRow
    intent_at: str = ""


@dataclass(frozen=True)
class _Result:
    task: _Task
    state: str  # sent, failed, unknown, pending, abort, found, search_failed
    posts: int = 0
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
    posts: int = 0
    searches: int = 0


@dataclass(order=True)
class _Due:
    at: float
    row_key: str = field(compare=False)


class SendPass:
    """Send the journal's pending rows (and reconcile its unknown ones).

    ``sleep`` and ``clock`` are injectable for tests; ``on_progress`` gets a
    ``SendProgress`` after each batch of outcomes; ``checkpoint`` (for example
    "rewrite the results file") is called every ``checkpoint_interval`` seconds
    in a background thread, and never twice at once.
    """

    def __init__(
        self,
        client: MobizonClient,
        journal: Journal,
        options: SendOptions | None = None,
        *,
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
        self.limiter = limiter or RateLimiter(self.options.rate)
        self.on_progress = on_progress
        self.checkpoint = checkpoint
        self.checkpoint_interval = checkpoint_interval
        # Set on a stop request and when the pass ends: workers take no new rows
        # and cut retry waits short.
        self._halt = threading.Event()
        self._interrupted = False
        self._sleep = sleep or self._interruptible_sleep
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
        intent = _parse_time(intent_at)
        if intent is None:
            return 0.0
        waited = (datetime.now() - intent).total_seconds()
        return max(0.0, self.options.settle_seconds - waited)

    # ------------------------------------------------------------ coordinator

    def run(self) -> SendSummary:
        """Send until every pending row is settled, the API aborts, or a stop is asked."""
        run = _Run(self)
        try:
            run.loop()
        finally:
            self._halt.set()  # queued tasks are released at once, whatever ended the loop
            run.shutdown()
        summary = run.summary
        summary.counts = self.journal.counts()
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

        def give_up(state: RetryCallState) -> bool:
            return (
                self.halted
                or counted >= options.max_attempts
                or (state.seconds_since_start or 0.0) >= options.max_retry_seconds
            )

        def count_retry(state: RetryCallState) -> None:
            with self._retries_lock:
                self._retries += 1

        policy = Retrying(
            retry=retry_if_exception(should_retry_send),
            stop=give_up,
            wait=wait_random_exponential(multiplier=0.5, max=30),
            sleep=self._sleep,
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            receipt = policy(attempt)
        except _Released:
            return _Result(task, PENDING, posts, error=STOPPED_BEFORE_ROW)
        except MobizonBatchError as exc:
            return self._classify(task, exc, posts)
        except Exception as exc:  # a bug must not lose the row: its request may have left
            return _Result(task, UNKNOWN, posts, error=f"internal error while sending: {exc!r}")
        return _Result(task, SENT, posts, receipt=receipt)

    def _classify(self, task: _Task, exc: MobizonBatchError, posts: int) -> _Result:
        """The row's fate after a send that did not succeed."""
        if should_retry_send(exc):  # retries ran out, or the run is stopping
            if self.halted:
                return _Result(task, PENDING, posts, error=STOPPED_BEFORE_ROW)
            return _Result(
                task,
                PENDING,
                posts,
                error=f"not sent: gave up retrying ({exc})",
                unreachable=isinstance(exc, TransportError),
            )
        if isinstance(exc, WrongDomain) or (isinstance(exc, ApiError) and exc.aborts_run):
            return _Result(task, ABORT, posts, error=str(exc), exception=exc)
        if isinstance(exc, AnswerLost | ServiceError | BackgroundTask):
            code = exc.code if isinstance(exc, ApiError) else None
            return _Result(task, UNKNOWN, posts, error_code=code, error=f"outcome unknown: {exc}")
        if isinstance(exc, ApiError):
            return _Result(task, FAILED, posts, error_code=exc.code, error=_rejection(exc))
        return _Result(task, UNKNOWN, posts, error=f"outcome unknown: {exc}")

    def _search(self, task: _Task) -> _Result:
        """Look in Message/List for the message a lost answer may have created."""
        row = task.row
        if self.halted:
            return _Result(task, SEARCH_FAILED, error="outcome unknown: the run stopped first")
        since = _parse_time(task.intent_at) or datetime.now()
        criteria: dict[str, Any] = {
            "to": row.recipient,
            "text": row.text,
            "from": self.options.sender or None,
            "campaignCreateTsFrom": (since - self.options.reconcile_window).strftime(
                TIMESTAMP_FORMAT
            ),
        }
        found: list[tuple[int, int | None]] = []
        page = 0
        try:
            while True:
                items, total = call_read(
                    partial(
                        self.client.list_messages,
                        criteria,
                        page=page,
                        page_size=100,
                        sort={"id": "DESC"},
                    ),
                    policy=ReadPolicy(attempts=self.options.max_attempts, sleep=self._sleep),
                )
                found.extend(_exact_matches(items, row))
                page += 1
                if not items or page * 100 >= total:
                    break
        except MobizonBatchError as exc:
            return _Result(
                task, SEARCH_FAILED, error=f"outcome unknown; the message list failed: {exc}"
            )
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
        self.journal.recover_interrupted()
        self.pending: deque[JournalRow] = deque(self.journal.rows([PENDING]))
        self.tracked: dict[str, _Row] = {}
        self.due: list[_Due] = []
        for row in self.journal.rows([UNKNOWN]):
            self.tracked[row.row_key] = _Row(row, state=UNKNOWN)
            self.due.append(_Due(self.clock() + owner._settle_left(row.intent_at), row.row_key))
        self.live = self.journal.counts()
        self.busy_pairs: set[tuple[str, str]] = set()
        self.in_flight: dict[Future[_Result], _Task] = {}
        self.capacity = max(1, self.options.workers) * 2
        self.unreachable_streak = 0
        self.halted_at: float | None = None
        self.abandoned = False
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, self.options.workers), thread_name_prefix="send"
        )
        self.checkpointer = _Checkpointer(owner.checkpoint, owner.checkpoint_interval, self.clock)

    @property
    def dispatching(self) -> bool:
        return (
            not self.owner.halted and self.summary.aborted is None and not self.summary.unreachable
        )

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
            if not done and self.grace_over():
                self.abandoned = True  # stragglers stay "sending": the next run reconciles them
                return
            outcomes: list[Outcome] = []
            for future in done:
                task = self.in_flight.pop(future)
                self.busy_pairs.discard((task.row.recipient, task.row.text))
                result = future.result()
                self.unreachable_streak = self.unreachable_streak + 1 if result.unreachable else 0
                self.absorb(result, outcomes)
            self.record(outcomes)
            if self.unreachable_streak >= self.options.unreachable_after:
                self.summary.unreachable = (
                    f"{self.unreachable_streak} rows in a row could not reach the API; "
                    f"stopped sending (the rest stay pending: run the same command again)"
                )
            self.report()
            self.checkpointer.maybe_run()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=not self.abandoned, cancel_futures=True)
        self.checkpointer.finish()

    def grace_over(self) -> bool:
        if self.dispatching:
            return False
        if self.halted_at is None:
            self.halted_at = self.clock()
        return self.clock() - self.halted_at > self.options.stop_grace_seconds

    def dispatch(self) -> None:
        """Hand out due searches first, then claim and hand out pending rows."""
        now = self.clock()
        for item in sorted(self.due):
            if len(self.in_flight) >= self.capacity or item.at > now:
                break
            row = self.tracked[item.row_key].row
            pair = (row.recipient, row.text)
            if pair in self.busy_pairs:
                continue
            self.due.remove(item)
            self.busy_pairs.add(pair)
            self.submit(_Task(SEARCH, row, row.intent_at or ""))
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
        intent_at = self.journal.claim([row.row_key for row in batch])
        for row in batch:
            self.move(row, SENDING)
            self.submit(_Task(SEND, replace(row, intent_at=intent_at), intent_at))

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
        tracked.posts += result.posts
        if result.state == SENT and result.receipt is not None:
            receipt = result.receipt
            outcomes.append(
                Outcome(key, SENT, result.posts, receipt.message_id, receipt.campaign_id)
            )
            self.move(row, SENT)
            summary.sent_now += 1
            summary.segments_sent += row.segments
        elif result.state in (FAILED, UNKNOWN, PENDING):
            outcomes.append(
                Outcome(
                    key, result.state, result.posts, None, None, result.error_code, result.error
                )
            )
            self.move(row, result.state)
            if result.state == FAILED:
                summary.failed_now += 1
            if result.state == UNKNOWN:
                self.due.append(_Due(self.clock() + options.settle_seconds, key))
        elif result.state == ABORT:
            outcomes.append(Outcome(key, PENDING, result.posts, error=result.error))
            self.move(row, PENDING)
            if summary.aborted is None and isinstance(result.exception, ApiError):
                summary.aborted = RunAborted(result.error, result.exception)
        elif result.state == FOUND:
            self.record(outcomes)  # the adoption must see every id recorded so far
            adopted = self.journal.adopt(key, result.candidates) if result.candidates else None
            if adopted is not None:
                self.move(row, SENT)
                summary.adopted += 1
                summary.sent_now += 1
                summary.segments_sent += row.segments
            elif tracked.posts < options.max_attempts:
                summary.resent += 1
                self.pending.appendleft(row)
            else:
                outcomes.append(
                    Outcome(
                        key,
                        UNKNOWN,
                        error=f"no answer to {tracked.posts} attempts and not found in the "
                        f"message list; not sent again (check the Mobizon panel)",
                    )
                )
        elif result.state == SEARCH_FAILED:
            tracked.searches += 1
            if tracked.searches < options.max_attempts:
                self.due.append(_Due(self.clock() + max(options.settle_seconds, 1.0), key))
            outcomes.append(Outcome(key, UNKNOWN, error=result.error))

    def report(self) -> None:
        callback = self.owner.on_progress
        if callback is None:
            return
        live = self.live
        elapsed = self.clock() - self.started
        callback(
            SendProgress(
                done=live[SENT] + live[FAILED],
                total=sum(live[s] for s in (PENDING, SENDING, SENT, FAILED, UNKNOWN)),
                sent=live[SENT],
                failed=live[FAILED],
                unknown=live[UNKNOWN],
                rate=self.summary.sent_now / elapsed if elapsed > 0 else 0.0,
            )
        )


class _Released(Exception):
    """Internal: the run stopped before this row's request was made."""


def _rejection(exc: ApiError) -> str:
    if isinstance(exc, ValidationError) and exc.fields:
        details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        return f"rejected by Mobizon: {details}"
    return f"rejected by Mobizon: {exc.api_message or exc}"


def _exact_matches(
    items: Sequence[dict[str, Any]], row: JournalRow
) -> list[tuple[int, int | None]]:
    """``(id, campaignId)`` of listed messages to exactly this recipient with exactly this text.

    The API's ``to`` criterion is a substring match, so the filter is repeated here.
    """
    found = []
    for item in items:
        message_id, campaign_id = item.get("id"), item.get("campaignId")
        if (
            str(item.get("to", "")) == row.recipient
            and item.get("text") == row.text
            and isinstance(message_id, int)
        ):
            found.append((message_id, campaign_id if isinstance(campaign_id, int) else None))
    return found


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:
        return None


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
        self.error: BaseException | None = None

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
        try:
            self.action()
        except Exception as exc:  # a failed checkpoint must not stop the sending
            self.error = exc
        self.last_duration = self.clock() - started

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
