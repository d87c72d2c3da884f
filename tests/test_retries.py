"""The retry decisions for sends and reads, and the read policy with its limiter on code 30."""

from __future__ import annotations

import pytest

from mobizon_batch import errors
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read, should_retry_read, should_retry_send


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.NotSent("refused"), True),
        (errors.AnswerLost("reset"), True),
        (errors.RateLimited(30), True),
        (errors.ConcurrentSave(10), True),
        (errors.ServiceError(3), True),
        (errors.ServiceError(999), True),
        (errors.AuthError(8), False),
        (errors.AccessDenied(9), False),
        (errors.AccountBlocked(14), False),
        (errors.WrongRequest(5), False),
        (errors.LimitExceeded(12), False),
        (errors.ValidationError(1), False),
        (errors.NotFound(2), False),
        (ValueError("a bug of ours"), False),
    ],
)
def test_which_failures_are_retried(exc: BaseException, expected: bool) -> None:
    assert should_retry_read(exc) is expected


class Flaky:
    """Fails with the given errors, in order, then answers 'ok'."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_transport_failures_are_retried_with_growing_jittered_waits() -> None:
    waits: list[float] = []
    read = Flaky(errors.AnswerLost("reset"), errors.NotSent("refused"), errors.AnswerLost("x"))
    policy = ReadPolicy(initial_wait=1.0, max_wait=30.0, sleep=waits.append)
    assert call_read(read, policy=policy) == "ok"
    assert read.calls == 4
    # full jitter: each wait is somewhere in [0, 1 * 2**n], never above the cap
    assert len(waits) == 3
    assert all(0 <= w <= bound for w, bound in zip(waits, [1, 2, 4], strict=True))


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    read = Flaky(*(errors.AnswerLost(f"reset {i}") for i in range(10)))
    with pytest.raises(errors.AnswerLost, match="reset 3"):
        call_read(read, policy=ReadPolicy(attempts=4, sleep=lambda _s: None))
    assert read.calls == 4


def test_a_refusal_is_raised_at_once() -> None:
    read = Flaky(errors.AuthError(8))
    with pytest.raises(errors.AuthError):
        call_read(read, policy=ReadPolicy(sleep=lambda _s: None))
    assert read.calls == 1


def test_code_30_slows_the_limiter_and_every_attempt_takes_a_slot() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    read = Flaky(errors.RateLimited(30), errors.RateLimited(30))
    assert call_read(read, limiter=limiter, policy=ReadPolicy(sleep=lambda _s: None)) == "ok"
    assert limiter.slowdowns >= 1 and limiter.rate < 10
    # three attempts, spaced at the (slowed) rate: time moved on between them
    assert now[0] > 0.1


@pytest.mark.parametrize(
    ("error", "send", "read"),
    [
        (errors.NotSent("no connection"), True, True),
        (errors.AnswerLost("read timeout"), False, True),
        (errors.RateLimited(30), True, True),
        (errors.ConcurrentSave(10), True, True),
        (errors.ServiceError(3), False, True),
        (errors.ServiceError(999), False, True),
        (errors.ValidationError(1, "", {"recipient": "bad"}), False, False),
        (errors.AuthError(8), False, False),
        (errors.AccountBlocked(14), False, False),
        (errors.WrongDomain(13, "", "api.mobizon.uz"), False, False),
        (ValueError("a bug"), False, False),
    ],
)
def test_what_is_retried(error: BaseException, send: bool, read: bool) -> None:
    # A send is repeated only when it surely created nothing; a read whenever it may help.
    assert should_retry_send(error) is send
    assert should_retry_read(error) is read
