"""When to try a request again: one small decision for sends, one for reads.

The one place for retry decisions: ``should_retry_send`` and
``send_retrying`` (the policy the send pass runs each row's request under),
``should_retry_read`` and ``call_read`` for everything that only reads.

Why two: a read (GetSMSStatus, Message/List, GetOwnBalance) changes nothing,
so asking again after a lost answer can never cost money or deliver an SMS
twice — the status pass of a 100,000-row file must not die on one dropped
connection.  A send reaches a person and the API has no idempotency key: it
may be repeated only when the failed request surely created nothing;
everything ambiguous goes to reconciliation instead (see ``send.py``).

Both use tenacity with exponential backoff and full jitter (so workers that
failed together do not come back together), bounded attempts, and a sleep
that tests can replace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from mobizon_batch.errors import (
    ConcurrentSave,
    NotSent,
    RateLimited,
    ServiceError,
    TransportError,
)
from mobizon_batch.ratelimit import RateLimiter

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadPolicy:
    """How often and how patiently a read is repeated.

    Waits grow exponentially from ``initial_wait`` with full jitter (so many
    clients that failed together do not come back together), capped at
    ``max_wait``; after ``attempts`` tries the last error is raised as is.
    ``sleep`` is injectable so tests retry instantly.
    """

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    sleep: Callable[[float], None] = time.sleep


def should_retry_send(exc: BaseException) -> bool:
    """True only when the failed send surely created no message."""
    # NotSent: no connection was made, or a proxy turned the request away
    # (HTTP 429/503 without an envelope) before the API saw it.
    # RateLimited (code 30) and ConcurrentSave (code 10): the API refused the
    # request before creating anything.
    # Code 13 (wrong domain) is retried inside the client, once, after the switch.
    # Not here: AnswerLost and ServiceError (3, 999) — the message may exist;
    # resending could deliver it twice.  Those rows are reconciled instead.
    return isinstance(exc, NotSent | RateLimited | ConcurrentSave)


def send_retrying(
    *,
    max_attempts: int,
    max_seconds: float,
    attempts_counted: Callable[[], int],
    halted: Callable[[], bool],
    sleep: Callable[[float], None],
    on_retry: Callable[[], None],
) -> Retrying:
    """The retry policy of one send: what may be repeated, how often, how patiently.

    Repeats only what ``should_retry_send`` allows, with the same jittered
    backoff as reads, and gives up when the run is halting (``halted``),
    when ``attempts_counted()`` reaches ``max_attempts`` — the caller counts
    the attempts that use up a row's tries: a code-30 refusal is the
    provider pacing us and does not — or after ``max_seconds`` of trying.
    ``on_retry`` is called before each pause (the send pass counts retries);
    the last error is raised as is.
    """

    def give_up(state: RetryCallState) -> bool:
        return (
            halted()
            or attempts_counted() >= max_attempts
            or (state.seconds_since_start or 0.0) >= max_seconds
        )

    def before_pause(state: RetryCallState) -> None:
        on_retry()

    return Retrying(
        retry=retry_if_exception(should_retry_send),
        stop=give_up,
        wait=wait_random_exponential(multiplier=0.5, max=30),
        sleep=sleep,
        before_sleep=before_pause,
        reraise=True,
    )


def should_retry_read(exc: BaseException) -> bool:
    """Whether a failed read is worth repeating.

    Decision, case by case (compare ``should_retry_send``, which retries only
    what surely created nothing):
    - ``NotSent`` and ``AnswerLost`` alike: for a read it does not matter
      whether the server acted; the answer is what we want.
    - Code 30 (``RateLimited``): yes, after slowing the limiter (done by
      ``call_read``); this is the provider asking us to wait.
    - Codes 10, 3 and 999: transient trouble on the provider's side, and a
      repeated read is harmless.
    - Everything else (bad key, blocked account, a parameter the API refuses,
      our own bugs): no — repeating gives the same answer, only later.
    """
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, RateLimited | ConcurrentSave | ServiceError)


def call_read(
    read: Callable[[], T],
    *,
    limiter: RateLimiter | None = None,
    policy: ReadPolicy | None = None,
) -> T:
    """Run ``read`` under the limiter, repeating it as ``should_retry_read`` says.

    Each attempt takes a slot from ``limiter``; a code 30 halves its rate
    before the backoff wait, so the next attempts come slower for everyone
    sharing the limiter.
    """
    rules = policy or ReadPolicy()

    def attempt() -> T:
        if limiter is not None:
            limiter.acquire()
        try:
            return read()
        except RateLimited:
            if limiter is not None:
                limiter.slow_down()
            raise

    retrying = Retrying(
        stop=stop_after_attempt(max(rules.attempts, 1)),
        wait=wait_random_exponential(multiplier=rules.initial_wait, max=rules.max_wait),
        retry=retry_if_exception(should_retry_read),
        sleep=rules.sleep,
        reraise=True,
        before_sleep=_log_retry,
    )
    return retrying(attempt)


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    pause = state.next_action.sleep if state.next_action is not None else 0.0
    log.info(
        "read failed (attempt %d: %s); trying again in %.1f s",
        state.attempt_number,
        error,
        pause,
    )
