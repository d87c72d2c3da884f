"""The limiter spaces calls evenly, halves on code 30 and recovers gradually."""

from __future__ import annotations

import threading
import time

from mobizon_batch.ratelimit import RateLimiter


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_calls_are_spaced_at_the_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        limiter.acquire()
    # 50 calls at 10/s: the first is immediate, the last 4.9 s later.
    assert abs(fake.now - 1004.9) < 1e-6


def test_unlimited_never_sleeps() -> None:
    fake = FakeTime()
    limiter = RateLimiter(0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        limiter.acquire()
    assert fake.now == 1000.0
    assert limiter.slow_down() is False


def test_slow_down_halves_once_per_burst_and_recovers() -> None:
    fake = FakeTime()
    limiter = RateLimiter(
        20, clock=fake.clock, sleep=fake.sleep, cooldown=1.0, recovery_interval=2.0
    )
    assert limiter.slow_down() is True
    assert limiter.rate == 10
    # Seven more workers report the same code 30 at the same moment: no further halving.
    assert not any(limiter.slow_down() for _ in range(7))
    assert limiter.rate == 10
    fake.now += 1.5
    assert limiter.slow_down() is True  # a new burst after the cooldown
    assert limiter.rate == 5
    rates = []
    for _ in range(12):
        fake.now += 2.0
        limiter.acquire()
        rates.append(limiter.rate)
    assert rates[0] == 7 and rates == sorted(rates)  # +2 (a tenth of 20) per quiet interval
    assert rates[-1] == 20  # back to the target, never above


def test_never_below_the_floor() -> None:
    fake = FakeTime()
    limiter = RateLimiter(4, clock=fake.clock, sleep=fake.sleep, min_rate=1.0, cooldown=0)
    for _ in range(10):
        limiter.slow_down()
    assert limiter.rate == 1.0


def test_threads_share_the_rate_in_real_time() -> None:
    limiter = RateLimiter(200)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 200 calls at 200/s take at least 199 intervals of 5 ms, whatever the threads do.
    assert max(stamps) - started >= 0.99
    assert len(stamps) == 200
