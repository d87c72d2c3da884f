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

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

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
from mobizon_batch.journal import Journal, JournalRow
from mobizon_batch.listing import ListFilter, export_messages
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read, send_retrying, should_retry_send
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
        return summary

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
            return Result(
                task, SEARCH_FAILED, error=f"outcome unknown; the message list failed: {exc}"
            )
        found = _exact_matches(listed.items, row, task.floor)
        return Result(task, FOUND, candidates=tuple(found))


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


__all__ = [
    "SendOptions",
    "SendPass",
    "SendProgress",
    "SendSummary",
    "check_deferred_to",
]
