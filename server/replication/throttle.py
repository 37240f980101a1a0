"""The leader's replication throttle: bytes/s sent to replicas that a reassignment is adding.

Owns `TokenBucket` (pure: time is passed in) and `ReplicationThrottle`, the one bucket of a
leader broker, shared by every follower stream (Kafka's leader.replication.throttled.rate is per
broker too). Which replicas are throttled: the follower is an adding replica of the partition's
reassignment (metadata `adding_replicas`) and not in the ISR, i.e. it is catching up because of
a move (Kafka's reassignment tool sets leader.replication.throttled.replicas to the same set).
ISR followers are never throttled, so acks=all producers never wait for the throttle.

The rate is the broker config `replication.throttle.bytes.per.second` (dynamic: broker, then
cluster, then the default); 0 means unlimited. The bucket holds at most BURST_S worth of tokens;
a send may take more than the tokens left (a read returns whole batches), leaving a debt that
later sends wait for, so the long-run rate stays at the configured one.

Imports: the standard library and freshet.metadata (image) only for type hints.
Thread-safety: not thread-safe; the leader's push sessions run on the node's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freshet.metadata.image import MetadataImage

BURST_S = 0.1                 # the bucket's capacity: 100 ms at the configured rate


class TokenBucket:
    """Bytes per second with a small burst and debt. Not thread-safe.

    Invariant: tokens <= capacity (tokens may be negative: a debt).
    """

    def __init__(self, rate_bytes_per_second: int, now_ms: int) -> None:
        assert rate_bytes_per_second > 0
        self.rate_bytes_per_second = rate_bytes_per_second
        self.capacity = max(1.0, rate_bytes_per_second * BURST_S)
        self.tokens = self.capacity
        self._updated_ms = now_ms

    def set_rate(self, rate_bytes_per_second: int, now_ms: int) -> None:
        assert rate_bytes_per_second > 0
        self._refill(now_ms)
        self.rate_bytes_per_second = rate_bytes_per_second
        self.capacity = max(1.0, rate_bytes_per_second * BURST_S)
        self.tokens = min(self.tokens, self.capacity)

    def _refill(self, now_ms: int) -> None:
        elapsed_ms = max(0, now_ms - self._updated_ms)
        self._updated_ms = max(self._updated_ms, now_ms)
        self.tokens = min(self.capacity, self.tokens + elapsed_ms * self.rate_bytes_per_second / 1000)
        assert self.tokens <= self.capacity

    def available(self, now_ms: int) -> int:
        """Whole bytes that may be sent now (0 while in debt)."""
        self._refill(now_ms)
        return max(0, int(self.tokens))

    def consume(self, sent_bytes: int, now_ms: int) -> None:
        """Count `sent_bytes` as sent (may leave a debt)."""
        assert sent_bytes >= 0
        self._refill(now_ms)
        self.tokens -= sent_bytes

    def wait_ms(self, now_ms: int) -> int:
        """Milliseconds until at least one byte may be sent (0: now)."""
        self._refill(now_ms)
        if self.tokens >= 1:
            return 0
        return max(1, int((1 - self.tokens) * 1000 / self.rate_bytes_per_second) + 1)


class ReplicationThrottle:
    """The throttle of one leader broker (module docstring). Not thread-safe (loop)."""

    def __init__(self, rate: Callable[[], int], image: Callable[[], MetadataImage], monotonic_ms: Callable[[], int]) -> None:
        self._rate = rate
        self._image = image
        self._monotonic_ms = monotonic_ms
        self._bucket: TokenBucket | None = None
        self.throttled_bytes = 0               # bytes sent under the throttle (a counter)

    def is_throttled(self, topic: str, partition: int, replica_id: int) -> bool:
        """Whether pushes of topic-partition to `replica_id` are throttled: it is being added by
        a reassignment and is not in the ISR, and a rate is configured."""
        if self._rate() <= 0:
            return False
        found = self._image().partition(topic, partition)
        return found is not None and replica_id in found.adding_replicas and replica_id not in found.isr

    def _current(self) -> TokenBucket | None:
        rate = self._rate()
        if rate <= 0:
            self._bucket = None
            return None
        now = self._monotonic_ms()
        if self._bucket is None:
            self._bucket = TokenBucket(rate, now)
        elif self._bucket.rate_bytes_per_second != rate:
            self._bucket.set_rate(rate, now)
        return self._bucket

    def allowance(self) -> int | None:
        """Bytes a throttled push may read now (None: unlimited; 0: wait `wait_ms()`)."""
        bucket = self._current()
        return None if bucket is None else bucket.available(self._monotonic_ms())

    def wait_ms(self) -> int:
        bucket = self._current()
        return 0 if bucket is None else bucket.wait_ms(self._monotonic_ms())

    def consume(self, sent_bytes: int) -> None:
        self.throttled_bytes += sent_bytes
        bucket = self._current()
        if bucket is not None:
            bucket.consume(sent_bytes, self._monotonic_ms())
