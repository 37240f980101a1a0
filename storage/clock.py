"""Time as the storage layer sees it: an injected clock (Kafka's `Time` / `MockTime`).

Owns the `Clock` protocol and its two implementations: `SystemClock` for production and
`ManualClock` for tests and simulations, where time moves only when told to. Retention, segment
rolling by age, flush.ms, producer-id expiration and tombstone expiry all read time from here.

Imports: standard library only. Forbidden: grpc, wire types (freshet.v1), metadata, server, client,
cli (import-linter contract).

Thread-safety: SystemClock is thread-safe. ManualClock is thread-safe for reads while one thread
advances it (it stores a single int).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of time for a log."""

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (record timestamps, retention, expiry)."""
        ...

    def monotonic_ms(self) -> int:
        """Milliseconds from a monotonic source (intervals such as flush.ms)."""
        ...


class SystemClock:
    """The machine's clocks. Thread-safe."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when `advance` or `set` is called. Thread-safe for concurrent reads."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic_ms(self) -> int:
        return self._now_ms

    def advance(self, milliseconds: int) -> None:
        """Move time forward by `milliseconds` (>= 0)."""
        assert milliseconds >= 0
        self._now_ms += milliseconds

    def set(self, now_ms: int) -> None:
        """Jump to `now_ms`, which must not be in the past."""
        assert now_ms >= self._now_ms
        self._now_ms = now_ms
