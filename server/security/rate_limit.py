"""Failed logins, rate limited per source: a password guesser gets a few tries, then waits.

Owns `LoginRateLimiter`, the policy every front-end that checks a password applies per client
address: the node has one, shared by the Kafka listener's SASL, the gRPC Authenticate RPC, the
console's login form and HTTP Basic on /metrics, so a guesser cannot spread its tries over the
ports. At most `failures_max` failed attempts per source within a sliding `window_s`; once a source
has reached that many, further attempts are refused without checking the password until its oldest
counted failure leaves the window. A success forgets the source's failures (a user who mistyped
once is not punished later). Refusing *before* the password check also bounds the CPU a guesser
can make the node spend on PBKDF2.

The table is bounded (`sources_max`): when full, the source whose latest failure is oldest is
forgotten, so a flood of spoofed or many sources costs bounded memory (and at worst gives the
forgotten source a fresh budget, never locks anyone out for longer).

Imports: standard library only. Time is injected (`clock`, seconds, monotonic).
Thread-safety: thread-safe (one lock; every method is O(failures_max) apart from a rare eviction).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

#: Defaults: 10 failures a minute per source, 10 000 sources remembered.
FAILURES_MAX = 10
WINDOW_S = 60.0
SOURCES_MAX = 10_000


class LoginRateLimiter:
    """Failed login attempts per source (a client IP address). Thread-safe."""

    def __init__(
        self,
        failures_max: int = FAILURES_MAX,
        window_s: float = WINDOW_S,
        sources_max: int = SOURCES_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert failures_max >= 1
        assert window_s > 0
        assert sources_max >= 1
        self.failures_max = failures_max
        self.window_s = window_s
        self.sources_max = sources_max
        self._clock = clock
        self._lock = threading.Lock()
        # source -> times of its failures within the window, oldest first (at most failures_max).
        self._failures: dict[str, collections.deque[float]] = {}

    def retry_after_s(self, source: str) -> float:
        """0 when `source` may try now; else the seconds until it may (check before verifying)."""
        with self._lock:
            now = self._clock()
            failures = self._current(source, now)
            if failures is None or len(failures) < self.failures_max:
                return 0.0
            return max(failures[0] + self.window_s - now, 0.001)

    def failed(self, source: str) -> None:
        """Count one failed attempt of `source`."""
        with self._lock:
            now = self._clock()
            failures = self._current(source, now)
            if failures is None:
                if len(self._failures) >= self.sources_max:
                    self._evict(now)
                failures = self._failures[source] = collections.deque(maxlen=self.failures_max)
            failures.append(now)

    def succeeded(self, source: str) -> None:
        """Forget the failures of `source` (it proved it knows a password)."""
        with self._lock:
            self._failures.pop(source, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)

    def _current(self, source: str, now: float) -> collections.deque[float] | None:
        """The source's failures still inside the window (drops older ones). Under the lock."""
        failures = self._failures.get(source)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[source]
            return None
        return failures

    def _evict(self, now: float) -> None:
        """Make room: drop every expired source, else the one whose latest failure is oldest."""
        expired = [source for source, times in self._failures.items() if times[-1] <= now - self.window_s]
        for source in expired:
            del self._failures[source]
        if len(self._failures) >= self.sources_max:
            stalest = min(self._failures, key=lambda source: self._failures[source][-1])
            del self._failures[stalest]
