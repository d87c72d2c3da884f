"""The send pass: every pending row sent once, at the allowed rate, crash-safe.

How it is put together, and why:

* One coordinator (the calling thread; ``sendloop.Run``) owns the journal.
  It commits the *intent* for a handful of rows (``sending``), hands them to
  the workers, and commits each outcome as it comes back.  Only a few rows are ever claimed
  ahead (twice the worker count), so a crash leaves at most those in
  ``sending``; on restart they become ``unknown`` and are reconciled.
* Workers (threads sharing one pooled client) wait for the rate limiter,
  POST, and retry only what surely created nothing (``retries.should_retry_send``).
* A send whose answer was lost becomes ``unknown``.  After a settle delay a
  worker looks it up in Message/List (``lookup.Reconciler``: by recipient,
  text compared whitespace-normalized, and creation time after the intent in
  the account's own clock — never by id order); the coordinator gives the row
  the first message found that no other row owns (the journal enforces one
  owner per message id).  Only when the list is surely old enough to show the
  message (its lag, learned from our own sends, has passed) does "not found"
  mean "not created", and the row is sent again; until then the lookup is
  repeated with growing pauses, and after ``lookup_seconds`` the row stays
  ``unknown`` (a later run looks again).  At most one task per (recipient,
  text) pair is in flight at a time, so a lookup can never see a sibling's
  message before the journal knows whose it is.
* Codes 4-6, 8, 9, 14 stop the run at once; one bad row never stops the others.
  ``request_stop()`` (Ctrl-C, SIGTERM) takes no new rows, cuts waits short and
  lets requests in flight finish; the pass always waits for them, so the
  journal is never left behind by a request still on its way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from mobizon_batch.accountclock import AccountClock
from mobizon_batch.client import MobizonClient, SendReceipt, to_datetime
from mobizon_batch.errors import (
    AnswerLost,
    ApiError,
    BackgroundTask,
    ConfigError,
    MobizonBatchError,
    RateLimited,
    ServiceError,
    TransportError,
    ValidationError,
)
from mobizon_batch.journal import Journal
from mobizon_batch.lookup import Ack, Reconciler
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.registry import (
    known_offset,
    owned_elsewhere,
    register_journal,
    remember_offset,
)
from mobizon_batch.retries import ReadPolicy, send_retrying, should_retry_send
from mobizon_batch.sendloop import (
    ABORT,
    FOUND,
    SEARCH_FAILED,
    Result,
    Run,
    SendProgress,
    SendSummary,
    Task,
)
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT, SendState

STOPPED_BEFORE_ROW = "not sent: the run was stopped before this row"
#: The journal setting that keeps the list's lag learned by an earlier run.
LAG_SETTING = "listing_lag_seconds"
#: Seconds a pass waits at its end for its sends to show, to learn the account's clock.
CLOCK_PATIENCE = 5.0

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
    #: how long a lost answer is looked for before the row is left ``unknown``
    lookup_seconds: float = 180.0
    #: consecutive rows that could not reach the API before the run gives up
    unreachable_after: int = 20


def check_deferred_to(
    text: str, now: datetime | None = None, clock: AccountClock | None = None
) -> datetime:
    """Parse ``--deferred-to`` and insist it is 1 hour to 14 days ahead (else ConfigError).

    "Ahead" on the account's clock (``clock``), which is what Mobizon applies;
    ``now`` (that clock's wall time, naive) may be given instead.  With
    neither, the account's zone is not known yet: only a time that no zone
    (UTC-12 to UTC+14) could accept is refused, so a typo stops before any
    call and the exact check follows once the zone is known.
    """
    try:
        moment = datetime.strptime(text.strip(), TIMESTAMP_FORMAT)
    except ValueError:
        raise ConfigError(
            f"--deferred-to {text!r} is not a time: write it as YYYY-MM-DD HH:MM:SS"
        ) from None
    if now is not None:
        earliest = latest = now
    elif clock is not None:
        earliest = latest = clock.now()
    else:
        utc = datetime.now(UTC).replace(tzinfo=None)
        earliest, latest = utc - timedelta(hours=12), utc + timedelta(hours=14)
    # A minute of margin: the request takes a moment to reach the API.
    if not earliest + DEFERRED_MIN + timedelta(minutes=1) <= moment <= latest + DEFERRED_MAX:
        where = f" in the account's time zone, {clock.describe()}" if clock is not None else ""
        there = f"; it is {earliest:%Y-%m-%d %H:%M} there now" if clock is not None else ""
        raise ConfigError(
            f"--deferred-to {text} must be between 1 hour and 14 days from now{where}{there} "
            f"(Mobizon refuses other times"
            + ("; give --timezone if that zone is wrong)" if clock is not None else ")")
        )
    return moment


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
        known_before: Collection[int] = (),
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
        # ``known_before``: messages listed before this pass sent anything (the
        # history guard's): they can never be the outcome of one of its requests.
        register_journal(journal.path, client.host)
        saved_lag = journal.setting(LAG_SETTING)
        self.reconciler = Reconciler(
            client,
            self._read_policy,
            known_before=frozenset(known_before),
            owned_elsewhere=partial(owned_elsewhere, own=journal.path, host=client.host),
            saved_lag=float(saved_lag) if saved_lag else None,
            earlier_acks=_earlier_acks(journal),
        )

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

    # ------------------------------------------------------------ coordinator

    def run(self) -> SendSummary:
        """Send until every pending row is settled, the API aborts, or a stop is asked."""
        run = Run(self)
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
        summary.list_calls = self.reconciler.calls
        self._keep_what_was_learned()
        return summary

    def _keep_what_was_learned(self) -> None:
        """The list's lag (in the journal) and the account's clock (for this machine).

        A later run of this journal settles rows a crash left in flight with the
        lag learned here; the history guard of any later run places its window
        with the clock.
        """
        reconciler = self.reconciler
        need_clock = reconciler.clock.offset is None and known_offset(self.client.host) is None
        need_lag = (
            reconciler.lag.learned() is None
            and reconciler.lag.saved is None
            and self.journal.counts(self.keys)[SendState.UNKNOWN] > 0
        )
        if (need_clock or need_lag) and not self._interrupted:
            self._learn_at_end(need_lag)
        offset = reconciler.clock.offset
        if offset is not None:
            remember_offset(self.client.host, offset.total_seconds())
        bound = self.reconciler.lag.learned()
        if bound is not None:
            saved = self.reconciler.lag.saved
            self.journal.keep_setting(LAG_SETTING, f"{max(bound, saved or 0.0):.3f}")

    def _learn_at_end(self, need_lag: bool) -> None:
        """Watch this pass's last sends show, to learn the clock (and the lag) for later runs.

        The history guard of the next run needs the clock to place its window
        (without it the window is widened by a day), and a run that settles
        rows left ``unknown`` needs the lag.  A few List calls, bounded to
        about ``CLOCK_PATIENCE`` seconds for the sends to show.
        """
        reconciler = self.reconciler
        reconciler.want()
        waited, pause = 0.0, 0.2
        while reconciler.lag.recent:
            try:
                reconciler.learn()
            except MobizonBatchError as exc:
                log.info("could not learn the account's clock (%s)", exc)
                return
            done = reconciler.clock.offset is not None and (
                not need_lag or reconciler.lag.learned() is not None
            )
            if done or waited >= CLOCK_PATIENCE:
                return
            time.sleep(pause)
            waited, pause = waited + pause, pause * 2

    # ----------------------------------------------------------------- workers

    def _send(self, task: Task) -> Result:
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
            started = datetime.now()
            try:
                receipt = self.client.send_sms(
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
            # Our own acknowledged sends teach the lookups the list's lag and the clock.
            self.reconciler.note_ack(
                Ack(receipt.message_id, receipt.campaign_id, started, datetime.now())
            )
            return receipt

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
            return Result(task, SendState.PENDING, posts, error=STOPPED_BEFORE_ROW)
        except MobizonBatchError as exc:
            return replace(self._classify(task, exc, posts), tries=counted)
        except Exception as exc:  # a bug must not lose the row: its request may have left
            error = self.client.redact(f"internal error while sending: {exc!r}")
            return Result(task, SendState.UNKNOWN, posts, tries=max(counted, 1), error=error)
        return Result(task, SendState.SENT, posts, tries=counted + 1, receipt=receipt)

    def _classify(self, task: Task, exc: MobizonBatchError, posts: int) -> Result:
        """The row's fate after a send that did not succeed."""
        if should_retry_send(exc):  # retries ran out, or the run is stopping
            if self.halted:
                return Result(task, SendState.PENDING, posts, error=STOPPED_BEFORE_ROW)
            return Result(
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
            return Result(task, ABORT, posts, error=str(exc), exception=exc)
        if isinstance(exc, AnswerLost | ServiceError | BackgroundTask):
            code = exc.code if isinstance(exc, ApiError) else None
            return Result(
                task, SendState.UNKNOWN, posts, error_code=code, error=f"outcome unknown: {exc}"
            )
        if isinstance(exc, ApiError):
            return Result(task, SendState.FAILED, posts, error_code=exc.code, error=_rejection(exc))
        return Result(task, SendState.UNKNOWN, posts, error=f"outcome unknown: {exc}")

    def _search(self, task: Task) -> Result:
        """Look in Message/List for the message a lost answer may have created."""
        row = task.row
        if self.halted:
            return Result(task, SEARCH_FAILED, error="outcome unknown: the run stopped first")
        intent = to_datetime(row.intent_at) or datetime.now()
        try:
            finding = self.reconciler.lookup(
                row.recipient, row.text, intent, task.ended or datetime.now()
            )
        except MobizonBatchError as exc:
            return Result(
                task, SEARCH_FAILED, error=f"outcome unknown; the message list failed: {exc}"
            )
        return Result(
            task,
            FOUND,
            candidates=finding.candidates,
            settled=finding.settled,
            error=finding.reason,
        )


def _earlier_acks(journal: Journal) -> list[Ack]:
    """The journal's last accepted sends, as bounds on when each message was made.

    Journal times are whole seconds: the message was made at or after the
    intent's second, and before the second after the one the answer was kept.
    """
    acks = []
    for row in journal.recent_sends():
        started, answered = to_datetime(row.intent_at), to_datetime(row.sent_at)
        if started and answered and row.message_id and row.campaign_id:
            acks.append(
                Ack(row.message_id, row.campaign_id, started, answered + timedelta(seconds=1))
            )
    return acks


class _Released(Exception):
    """Internal: the run stopped before this row's request was made."""


def _rejection(exc: ApiError) -> str:
    if isinstance(exc, ValidationError) and exc.details:
        return f"rejected by Mobizon: {exc.details}"
    return f"rejected by Mobizon: {exc.api_message or exc}"


__all__ = [
    "SendOptions",
    "SendPass",
    "SendProgress",
    "SendSummary",
    "check_deferred_to",
]
