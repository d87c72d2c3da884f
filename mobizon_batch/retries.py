"""When to try a request again: one small decision for sends, one for reads.

Why two: a read (GetSMSStatus, Message/List) changes nothing, so any failure
may be retried.  A send costs money and reaches a person, and the API has no
idempotency key: it may be repeated only when the failed request surely
created nothing.  Everything ambiguous goes to reconciliation instead.

Both policies use tenacity: exponential backoff with full jitter (so eight
workers that failed together don't retry together), bounded by attempts and
by time, sleeping through an injectable function so that tests run instantly
and a stop request cuts a wait short.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from mobizon_batch.errors import (
    ConcurrentSave,
    NotSent,
    RateLimited,
    ServiceError,
    TransportError,
)

T = TypeVar("T")


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


def should_retry_read(exc: BaseException) -> bool:
    """True for any failure of a request that changes nothing."""
    # Reads are idempotent: a lost answer costs only the repeat.  API errors
    # other than "too fast", "busy saving" and "service error" are answers
    # (bad parameters, bad key) that a repeat would only get again.
    return isinstance(exc, TransportError | RateLimited | ConcurrentSave | ServiceError)


def retrying(
    decide: Callable[[BaseException], bool],
    *,
    max_attempts: int,
    max_seconds: float,
    sleep: Callable[[float], None],
    initial_wait: float = 0.5,
    max_wait: float = 30.0,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` for ``decide`` with the project's backoff and bounds."""
    return Retrying(
        retry=retry_if_exception(decide),
        stop=stop_after_attempt(max_attempts) | stop_after_delay(max_seconds),
        wait=wait_random_exponential(multiplier=initial_wait, max=max_wait),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def call_read(
    action: Callable[[], T],
    *,
    sleep: Callable[[float], None],
    max_attempts: int = 6,
    max_seconds: float = 120.0,
    on_rate_limited: Callable[[], object] | None = None,
) -> T:
    """Run a read with retries on any transport failure and on codes 30, 10, 3, 999."""

    def note(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RateLimited) and on_rate_limited is not None:
            on_rate_limited()

    policy = retrying(
        should_retry_read,
        max_attempts=max_attempts,
        max_seconds=max_seconds,
        sleep=sleep,
        before_sleep=note,
    )
    return policy(action)
