"""One hosted partition replica at run time, and the purgatories that wait on its high watermark.

Owns, per partition on this broker (Kafka's `Partition`):

- the role the data plane applied (leader, follower or stopped), the leader epoch, and for a
  leader its `LeaderState` (server/replication/core.py: followers, ISR, high watermark);
- the replica's high watermark (a follower's is min(leader's, its own log end offset)), never
  decreasing except when a truncation cuts below it;
- the produce purgatory (Kafka's DelayedProduce): acks=all requests waiting until the high
  watermark passes their batch, ordered by the offset they need (a heap: an idempotent retry
  answered from the producer state may need an older offset than the newest waiter);
- the fetch waiters: futures of long-poll fetches and fetch streams, resolved when the high
  watermark moves or the role changes (no polling);
- the leader-side follower sessions that push this partition (woken on append and on high
  watermark changes).

`ProduceOperation` is one produce request in flight: its response under construction, the
partitions still waiting, and one timer for the whole request (REQUEST_TIMED_OUT).

Imports: asyncio, heapq, freshet.server (replication, metrics), freshet.storage (log), wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from freshet.server import status
from freshet.server.metrics import TopicCounters
from freshet.server.replication.core import LeaderState
from freshet.storage.log import PartitionLog
from freshet.v1 import broker_pb2, common_pb2

E = common_pb2.ErrorCode

LEADER = "leader"
FOLLOWER = "follower"
STOPPED = "stopped"

_sequence = itertools.count()


class ProduceOperation:
    """One produce request in flight (Kafka's DelayedProduce). Not thread-safe (loop).

    Completes (calls `on_done(response)` once) when every partition waiting on its high
    watermark has an answer, or at the request's timeout (REQUEST_TIMED_OUT for the rest).
    """

    __slots__ = ("response", "waiting", "remaining", "timer", "on_done", "is_done", "started_s")

    def __init__(self, response: broker_pb2.ProduceResponse, on_done: Callable[[broker_pb2.ProduceResponse], None], started_s: float) -> None:
        self.response = response
        self.waiting: list[ProduceWaiter] = []
        self.remaining = 0
        self.timer: asyncio.TimerHandle | None = None
        self.on_done = on_done
        self.is_done = False
        self.started_s = started_s

    def answer(self, waiter: ProduceWaiter, detail: common_pb2.ErrorDetail | None) -> None:
        """Settle one waiting partition (None: success), finishing the request after the last."""
        if waiter.is_done or self.is_done:
            return
        waiter.is_done = True
        waiter.partition.waiting_count -= 1
        if detail is not None:
            waiter.result.error.CopyFrom(detail)
        self.remaining -= 1
        if self.remaining == 0:
            self.finish()

    def finish(self) -> None:
        if self.is_done:
            return
        self.is_done = True
        if self.timer is not None:
            self.timer.cancel()
        self.on_done(self.response)

    def expire(self) -> None:
        """The request's timeout passed: every partition still waiting gets REQUEST_TIMED_OUT."""
        self.timer = None
        for waiter in self.waiting:
            if not waiter.is_done:
                partition = waiter.partition
                self.answer(
                    waiter,
                    status.detail(
                        E.REQUEST_TIMED_OUT,
                        f"{partition.topic}-{partition.partition}: the in-sync replicas did not acknowledge offset "
                        f"{waiter.required_offset - 1} within the request's timeout (the records may still be committed)",
                        partition=common_pb2.TopicPartition(topic=partition.topic, partition=partition.partition),
                    ),
                )


class ProduceWaiter:
    """One partition of a ProduceOperation waiting for high watermark >= `required_offset`.
    Not thread-safe (loop)."""

    __slots__ = ("required_offset", "operation", "result", "partition", "is_done")

    def __init__(self, required_offset: int, operation: ProduceOperation, result: broker_pb2.PartitionProduceResult, partition: Partition) -> None:
        self.required_offset = required_offset
        self.operation = operation
        self.result = result
        self.partition = partition
        self.is_done = False


class Partition:
    """A hosted replica at run time (see the module docstring). Not thread-safe (loop).

    Invariants: `leader` is set exactly when `role` is LEADER; `high_watermark` <= the log end
    offset; `waiting_count` is the number of produce waiters not yet answered.
    """

    def __init__(self, topic: str, partition: int, topic_id: bytes, log: PartitionLog, high_watermark: int, counters: TopicCounters) -> None:
        self.topic = topic
        self.partition = partition
        self.key = (topic, partition)
        self.topic_id = topic_id
        self.log = log
        self.role = STOPPED
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.min_insync_replicas = 1
        self.leader: LeaderState | None = None
        self.high_watermark = max(0, min(high_watermark, log.log_end_offset))
        self.counters = counters
        self.topic_partition = common_pb2.TopicPartition(topic=topic, partition=partition)
        self._produce_waiters: list[tuple[int, int, ProduceWaiter]] = []
        self.waiting_count = 0
        self.fetch_waiters: set[asyncio.Future] = set()
        # Leader side: the follower sessions pushing this partition (server/replication/leader_sessions.py).
        self.sessions: set = set()

    def __repr__(self) -> str:
        return f"Partition({self.topic}-{self.partition}, {self.role}, epoch {self.leader_epoch}, hw {self.high_watermark})"

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    # -- high watermark --------------------------------------------------------------------------

    def set_high_watermark(self, offset: int) -> bool:
        """Move the high watermark forward (never back); wake what waits on it. Returns whether it moved."""
        if offset <= self.high_watermark:
            return False
        self.high_watermark = offset
        self.complete_produce_waiters()
        self.wake_fetch_waiters()
        for session in self.sessions:
            session.on_high_watermark(self)
        return True

    def clamp_high_watermark(self) -> None:
        """After a truncation: the high watermark cannot exceed the log end offset."""
        end = self.log.log_end_offset
        if self.high_watermark > end:
            self.high_watermark = end

    # -- produce purgatory -----------------------------------------------------------------------

    def add_produce_waiter(self, waiter: ProduceWaiter) -> None:
        heapq.heappush(self._produce_waiters, (waiter.required_offset, next(_sequence), waiter))
        self.waiting_count += 1

    def complete_produce_waiters(self) -> None:
        """Answer every waiter whose offset the high watermark passed: success, or Kafka's
        NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below min.insync.replicas by then."""
        heap = self._produce_waiters
        high_watermark = self.high_watermark
        while heap and heap[0][0] <= high_watermark:
            waiter = heapq.heappop(heap)[2]
            if waiter.is_done:
                continue
            leader = self.leader
            isr_size = len(leader.isr) if leader is not None else 0
            if isr_size < self.min_insync_replicas:
                detail = status.detail(
                    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    f"{self.topic}-{self.partition}: the records were appended and reached the high watermark, but the "
                    f"ISR shrank to {isr_size} replicas, below min.insync.replicas={self.min_insync_replicas}",
                    partition=self.topic_partition,
                )
                waiter.operation.answer(waiter, detail)
            else:
                waiter.operation.answer(waiter, None)
        if len(heap) > 64 and len(heap) > 4 * self.waiting_count:
            # Drop answered (timed-out) entries so a stuck high watermark cannot grow the heap.
            self._produce_waiters = [entry for entry in heap if not entry[2].is_done]
            heapq.heapify(self._produce_waiters)

    def fail_produce_waiters(self, detail_for: Callable[[Partition], common_pb2.ErrorDetail]) -> None:
        """Answer every waiter with an error (leadership moved away: NOT_LEADER with the hint)."""
        heap, self._produce_waiters = self._produce_waiters, []
        if not heap:
            return
        detail = detail_for(self)
        for _, _, waiter in heap:
            if not waiter.is_done:
                waiter.operation.answer(waiter, detail)

    # -- fetch waiters ---------------------------------------------------------------------------

    def wake_fetch_waiters(self) -> None:
        if not self.fetch_waiters:
            return
        waiters, self.fetch_waiters = self.fetch_waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def wake_all(self) -> None:
        """The role changed: every waiter re-checks (a fetch then answers NOT_LEADER)."""
        self.wake_fetch_waiters()
        for session in list(self.sessions):
            session.on_partition_change(self)
