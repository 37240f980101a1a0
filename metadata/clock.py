"""Time as the metadata layer sees it: the injected clock of the active controller (Kafka's
`Time` / `MockTime`).

Owns the `Clock` protocol and its two implementations: `SystemClock` for production and
`ManualClock` for tests and transcripts, where time moves only when told to. The controller's
broker sessions (deadlines, reconnect grace) and its rebalance timer read time from here, never
from `time` directly; server code that needs time can take a `Clock` the same way.

The method names match freshet.storage.clock's clocks (`now_ms`, `monotonic_ms`), so one object
satisfies both protocols; storage keeps its own copy because storage may not import metadata
(layering), and metadata may not import storage.

Imports: standard library only. Forbidden: grpc, pysyncobj, storage, server, client, cli.

Thread-safety: SystemClock is thread-safe. ManualClock is thread-safe for reads while one thread
advances it (it stores a single int).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of time. Implementations state their own thread-safety."""

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (timestamps shown to people or written)."""
        ...

    def monotonic_ms(self) -> int:
        """Milliseconds from a monotonic source (deadlines and intervals)."""
        ...


class SystemClock:
    """The machine's clocks. Thread-safe."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when `advance` or `set` is called. Thread-safe for concurrent reads
    while one thread moves it."""

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
