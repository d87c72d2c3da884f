"""A thread-safe rate limiter that backs off when the API says "too fast".

Why slots rather than a token bucket: a bulk send wants an even flow at the
configured rate (a burst of 8 workers firing at once is exactly what trips
the provider's limit), and scheduling each caller into the next free slot
gives that with one lock and one sleep per call.

Mobizon publishes no rate numbers; it answers code 30 when a method is
called too fast.  ``slow_down()`` then halves the rate (once per cooldown,
however many workers saw the same code 30 at once), and the rate climbs back
by a tenth of the target per quiet interval — multiplicative decrease,
additive increase, as TCP does it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces callers of ``acquire()`` at most ``rate`` per second across threads.

    ``rate`` of 0 (or None) means no limit.  ``clock`` and ``sleep`` are
    injectable so tests run without waiting, and so that a caller can make the
    wait end early (``threading.Event.wait`` is a fine ``sleep``): whoever
    acquires must then check whether it still wants to go ahead.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        min_rate: float = 0.5,
        cooldown: float = 1.0,
        recovery_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.target = float(rate) if rate and rate > 0 else 0.0
        self._rate = self.target
        self._min_rate = min(min_rate, self.target) if self.target else 0.0
        self._cooldown = cooldown
        self._recovery_interval = recovery_interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._last_change = clock()
        self.slowdowns = 0

    @property
    def rate(self) -> float:
        """The rate in force now (0 when unlimited)."""
        return self._rate

    def acquire(self) -> None:
        """Block until the caller may make one request."""
        if not self.target:
            return
        with self._lock:
            now = self._clock()
            self._recover(now)
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self._rate
        if slot > now:
            self._sleep(slot - now)

    def slow_down(self) -> bool:
        """Halve the rate after a code 30; True if this call changed it."""
        if not self.target:
            return False
        with self._lock:
            now = self._clock()
            if now - self._last_change < self._cooldown and self._rate < self.target:
                return False  # the same burst of code 30s: already halved for it
            self._rate = max(self._min_rate, self._rate / 2)
            self._last_change = now
            # Pending slots were spaced for the old rate; respace from now.
            self._next_slot = max(self._next_slot, now + 1.0 / self._rate)
            self.slowdowns += 1
            return True

    def _recover(self, now: float) -> None:
        if self._rate < self.target and now - self._last_change >= self._recovery_interval:
            self._rate = min(self.target, self._rate + self.target / 10)
            self._last_change = now
