"""One hosted partition replica at run time: its role, high watermark and purgatories.

Owns, per partition on this broker (Kafka's `Partition`):

- the replica's role (`ReplicaRole`) and the transitions between roles, each a method that
  asserts where it comes from (etcd's becomeX, Kafka's QuorumState):

      STOPPED  --become_leader-->  LEADER    --become_follower-->  FOLLOWER
      FOLLOWER --become_leader-->  LEADER    (leader epoch not older)
      LEADER   --become_leader-->  LEADER    (a newer leader epoch only)
      FOLLOWER --become_follower-> FOLLOWER  (another leader or a newer epoch)
      any      --stop-->           STOPPED

- for a leader its `LeaderState` (server/replication/core.py: followers, ISR, high watermark),
  and the one place that applies what that pure core decided (`_apply_leader_update`);
- the replica's high watermark (a follower's is min(leader's, its own log end offset)), never
  decreasing except when a truncation cuts below it (asserted in `set_high_watermark`);
- the produce purgatory (Kafka's DelayedProduce): acks=all requests waiting until the high
  watermark passes their batch, ordered by the offset they need (a heap: an idempotent retry
  answered from the producer state may need an older offset than the newest waiter);
  `ProduceOperation` is one produce request in flight (its response under construction, the
  partitions still waiting, one timer for the whole request: REQUEST_TIMED_OUT), and
  `ProduceWaiter` one partition of it waiting for high watermark >= an offset;
- the fetch waiters: futures of long-poll fetches and fetch streams, resolved when the high
  watermark moves or the role changes (no polling);
- the low-watermark waiters (Kafka's DelayedDeleteRecords): futures of DeleteRecords requests,
  resolved when the leader's or a follower's log start offset moves or the role changes;
- the leader-side follower sessions that push this partition (woken on append and on high
  watermark changes).

Imports: asyncio, heapq, freshet.server (status, metrics, replication), freshet.storage (log),
wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from collections.abc import Callable, Collection
from typing import Protocol

from freshet.server import status
from freshet.server.metrics import TopicCounters
from freshet.server.replication.core import AlterIsr, LeaderState
from freshet.storage.log import PartitionLog
from freshet.v1 import broker_pb2, common_pb2

E = common_pb2.ErrorCode

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


class PushSession(Protocol):
    """What a partition tells the leader's push sessions that carry it
    (server/replication/leader_sessions.py `FollowerSession`); a protocol, so this module does not
    import the sessions back."""

    def on_append(self, partition: Partition) -> None: ...

    def on_high_watermark(self, partition: Partition) -> None: ...

    def on_partition_change(self, partition: Partition) -> None: ...


class ReplicaRole(enum.StrEnum):
    """What a hosted replica does now (a str, so /status shows "leader", "follower", "stopped")."""

    LEADER = "leader"
    FOLLOWER = "follower"
    STOPPED = "stopped"


LEADER = ReplicaRole.LEADER
FOLLOWER = ReplicaRole.FOLLOWER
STOPPED = ReplicaRole.STOPPED


class Partition:
    """A hosted replica at run time (see the module docstring). Not thread-safe (loop).

    Invariants (asserted where they can break): `leader` is set exactly when `role` is LEADER;
    the leader is in its ISR (LeaderState); `high_watermark` <= the log end offset and never
    decreases except by `clamp_high_watermark` after a truncation; the leader epoch never
    decreases; `waiting_count` is the number of produce waiters not yet answered.
    """

    def __init__(self, topic: str, partition: int, topic_id: bytes, log: PartitionLog, high_watermark: int, counters: TopicCounters) -> None:
        self.topic = topic
        self.partition = partition
        self.key = (topic, partition)
        self.topic_id = topic_id
        self.log = log
        self.role: ReplicaRole = STOPPED
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
        # DeleteRecords requests waiting for the low watermark (woken on any change; they re-check).
        self.low_watermark_waiters: set[asyncio.Future] = set()
        # Leader side: the follower sessions pushing this partition (server/replication/leader_sessions.py).
        self.sessions: set[PushSession] = set()
        #: The broker's durable flusher (server/broker/durable_flusher.py), told when a durable
        #: replica has appended something not yet fsynced; None: nothing to tell.
        self.request_sync: Callable[[Partition], None] | None = None

    def __repr__(self) -> str:
        return f"Partition({self.topic}-{self.partition}, {self.role}, epoch {self.leader_epoch}, hw {self.high_watermark})"

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    @property
    def is_durable(self) -> bool:
        """Whether acks=all waits for fsync on the ISR (the topic's write.caching=false)."""
        return not self.log.config.write_caching

    def note_unsynced(self) -> None:
        """This replica appended (or took a role): a durable one asks its flusher for a round."""
        if self.request_sync is not None and self.is_durable:
            self.request_sync(self)

    # -- role transitions ------------------------------------------------------------------------

    def become_leader(self, leader: LeaderState, leader_id: int) -> ReplicaRole:
        """Lead at `leader.leader_epoch` with `leader` as the replication state. Returns the
        previous role. Allowed from STOPPED and FOLLOWER (epoch not older) and from LEADER only
        for a newer epoch."""
        was = self.role
        epoch = leader.leader_epoch
        assert epoch >= self.leader_epoch, f"invalid transition [{was} epoch {self.leader_epoch} -> leader epoch {epoch}]"
        assert was != LEADER or epoch > self.leader_epoch, f"invalid transition [leader -> leader at the same epoch {epoch}]"
        assert leader.leader_id == leader_id
        self.role = LEADER
        self.leader = leader
        self.leader_id = leader_id
        self.leader_epoch = epoch
        self.partition_epoch = leader.partition_epoch
        return was

    def become_follower(self, leader_id: int, leader_epoch: int, not_leader: Callable[[Partition], common_pb2.ErrorDetail]) -> ReplicaRole:
        """Follow `leader_id` (NO_LEADER: nobody to follow yet) at `leader_epoch`. Returns the
        previous role. A leader stepping down answers its waiting produce requests with
        `not_leader(self)`. Allowed from any role with an epoch not older; FOLLOWER -> FOLLOWER
        only when the leader or the epoch changes."""
        was = self.role
        assert leader_epoch >= self.leader_epoch, f"invalid transition [{was} epoch {self.leader_epoch} -> follower epoch {leader_epoch}]"
        assert was != FOLLOWER or (leader_id, leader_epoch) != (self.leader_id, self.leader_epoch), (
            f"invalid transition [follower of {leader_id} -> the same leader at the same epoch {leader_epoch}]"
        )
        if was == LEADER:
            self.leader = None
            self.role = FOLLOWER
            self.fail_produce_waiters(not_leader)
        self.role = FOLLOWER
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.clamp_high_watermark()
        self.wake_all()
        return was

    def stop(self, not_leader: Callable[[Partition], common_pb2.ErrorDetail]) -> ReplicaRole:
        """Stop leading or following (removed, replaced log, unusable log, broker stopping).
        Returns the previous role; waiting produce requests get `not_leader(self)`."""
        was = self.role
        if was == LEADER:
            self.fail_produce_waiters(not_leader)
        self.leader = None
        self.role = STOPPED
        self.wake_all()
        return was

    # -- the leader's replication state: every update of the pure core is applied here ---------

    def _apply_leader_update(self, leader: LeaderState, moved: bool) -> bool:
        """Apply what LeaderState decided: move the high watermark when it moved. The one place
        that turns the core's answer into effects (waiters, fetches, sessions)."""
        if moved and self.leader is leader:
            self.set_high_watermark(leader.high_watermark)
        return moved

    def leader_appended(self, log_end_offset: int, now_ms: int) -> None:
        """The leader appended up to `log_end_offset`: update the core, wake the push sessions."""
        leader = self.leader
        assert leader is not None, self
        is_durable = self.is_durable
        if is_durable != leader.is_durable:
            leader.set_durable(is_durable)
        self._apply_leader_update(leader, leader.on_append(log_end_offset, now_ms))
        for session in self.sessions:
            session.on_append(self)
        self.note_unsynced()

    def leader_synced(self, durable_offset: int) -> None:
        """The flusher fsynced this leader's log below `durable_offset`."""
        leader = self.leader
        if leader is not None:
            self._apply_leader_update(leader, leader.on_durable(durable_offset))

    def follower_acknowledged(self, replica: int, log_end_offset: int, now_ms: int, durable_offset: int = -1) -> bool:
        """A follower holds everything below `log_end_offset` (fsynced below `durable_offset`,
        -1: unknown). Returns whether it is outside the ISR (so the caller asks for an ISR check:
        it may have caught up)."""
        leader = self.leader
        assert leader is not None, self
        self._apply_leader_update(leader, leader.on_follower_position(replica, log_end_offset, now_ms, durable_offset))
        return replica not in leader.isr

    def leader_metadata_changed(
        self, replicas: Collection[int], isr: Collection[int], partition_epoch: int, min_insync_replicas: int, now_ms: int, node_id: int
    ) -> None:
        """Metadata brought a newer partition state under this leader's epoch."""
        leader = self.leader
        assert leader is not None, self
        self.min_insync_replicas = min_insync_replicas
        self.partition_epoch = partition_epoch
        moved = leader.set_min_insync_replicas(min_insync_replicas)
        if leader.is_durable != self.is_durable:
            moved = leader.set_durable(self.is_durable) or moved
        if node_id in isr and leader.update_partition(replicas, isr, partition_epoch, now_ms):
            moved = True
        self._apply_leader_update(leader, moved)

    def alter_isr_answered(
        self, leader: LeaderState, action: AlterIsr, now_ms: int, error_code: int, partition_epoch: int, isr: Collection[int], leader_epoch: int
    ) -> None:
        """The controller answered an AlterPartition this leader sent (`leader` is the state that
        sent it: a newer leadership ignores the answer's high watermark)."""
        moved = leader.on_alter_isr_result(action, now_ms, error_code, partition_epoch, isr, leader_epoch)
        self._apply_leader_update(leader, moved)

    # -- high watermark --------------------------------------------------------------------------

    def set_high_watermark(self, offset: int) -> bool:
        """Move the high watermark forward (never back); wake what waits on it. Returns whether it moved."""
        if offset <= self.high_watermark:
            return False
        assert offset <= self.log.log_end_offset, (self, offset, self.log.log_end_offset)
        self.high_watermark = offset
        self.complete_produce_waiters()
        self.wake_fetch_waiters()
        for session in self.sessions:
            session.on_high_watermark(self)
        return True

    # -- log start offset (DeleteRecords) -------------------------------------------------------

    def log_start_offset_moved(self) -> None:
        """The leader's log start offset moved (DeleteRecords): the push sessions send it to the
        followers with the next high-watermark message, and DeleteRecords waiters re-check."""
        for session in self.sessions:
            session.on_high_watermark(self)
        self.wake_low_watermark_waiters()

    def follower_log_start_offset(self, replica: int, log_start_offset: int) -> None:
        """A follower reported its log start offset: wake DeleteRecords waiters if it moved."""
        leader = self.leader
        if leader is not None and leader.on_follower_log_start_offset(replica, log_start_offset):
            self.wake_low_watermark_waiters()

    def wake_low_watermark_waiters(self) -> None:
        waiters, self.low_watermark_waiters = self.low_watermark_waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

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
        self.wake_low_watermark_waiters()
        for session in list(self.sessions):
            session.on_partition_change(self)
