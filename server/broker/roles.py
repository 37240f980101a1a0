"""Replica roles: bring each hosted partition's run-time role in line with metadata.

Owns, on the node's event loop (Kafka's ReplicaManager.makeLeaders/makeFollowers):

- following `HostedReplicas`: every new, changed or removed replica is applied, but only once
  this broker's metadata has caught up to its registration (a restarted broker's stale image must
  not make it act as a leader);
- become leader: stop fetching, record where the leader epoch starts
  (`assign_epoch_start_offset` at the log end), start a `LeaderState` whose high watermark is the
  replica's own (checkpointed or last known) and frozen until every ISR member has reported;
- become follower: waiting acks=all requests answer NOT_LEADER with the new leader, and fetch
  from the new leader (truncation happens through diverging_epoch on the first reset position,
  never by high watermark alone);
- removed (topic deleted, replica moved) or unusable: stop fetching, fail waiters;
- leadership listeners (the group coordinator loads and unloads `__consumer_offsets` partitions).

The transitions themselves are `Partition.become_leader/become_follower/stop`, which assert the
allowed previous role and epoch order.

Imports: freshet.metadata (image), freshet.server (broker, replication), freshet.storage (errors).
Role changes reach the loop in order through one queue, applied at most
`ROLE_CHANGES_PER_TURN` per loop turn: a topic of thousands of partitions used to arrive as
thousands of callbacks that the loop ran in one turn, seconds in which no heartbeat, request or
replication message was served (a 5,000-partition create fenced every broker: session expired).

Thread-safety: not thread-safe (loop), except `on_replica_change_thread`, which only queues the
change and wakes the loop (call_soon_threadsafe).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.server.broker.hosted_replicas import HostedReplica
from freshet.server.broker.partition_table import PartitionTable, TopicPartition, safe_end_offset
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.replication.core import LeaderState
from freshet.server.replication.fetcher import ReplicaFetcherManager
from freshet.server.replication.partition import FOLLOWER, LEADER, Partition
from freshet.storage.clock import Clock
from freshet.storage.errors import StorageError

logger = logging.getLogger(__name__)

#: Role changes applied per turn of the event loop before other ready callbacks get their turn.
ROLE_CHANGES_PER_TURN = 100

#: listener(topic, partition, is_leader, leader_epoch)
LeadershipListener = Callable[[str, int, bool, int], None]


class ReplicaRoles:
    """Applies hosted replicas' roles to run-time partitions (module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        table: PartitionTable,
        publisher: MetadataPublisher,
        fetcher: ReplicaFetcherManager,
        may_act: Callable[[MetadataImage], bool],
        clock: Clock,
    ) -> None:
        self._table = table
        self._publisher = publisher
        self._fetcher = fetcher
        self._may_act = may_act
        self._clock = clock
        self.node_id = table.node_id
        self.hosted: dict[TopicPartition, HostedReplica] = {}
        self.is_active = False
        self.is_closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leadership_listeners: list[LeadershipListener] = []
        #: (old, new) changes from the HostedReplicas worker, in order, not yet applied on the loop.
        self._incoming: deque[tuple[HostedReplica | None, HostedReplica | None]] = deque()
        self._incoming_lock = threading.Lock()
        self._is_drain_scheduled = False
        #: Called after metadata changed a partition this broker leads (ISR maintenance checks it).
        self.leader_metadata_applied: Callable[[Partition], None] = lambda partition: None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.maybe_activate()

    # -- following metadata ----------------------------------------------------------------------

    def on_replica_change_thread(self, old: HostedReplica | None, new: HostedReplica | None) -> None:
        """HostedReplicas worker thread: queue the change for the loop, in order."""
        loop = self._loop
        if loop is None or self.is_closed:
            return
        with self._incoming_lock:
            self._incoming.append((old, new))
            if self._is_drain_scheduled:
                return
            self._is_drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain_incoming)
        except RuntimeError:
            pass                                          # the loop closed: the node is stopping

    def _drain_incoming(self) -> None:
        """Apply up to ROLE_CHANGES_PER_TURN queued changes; the rest after the loop's other work."""
        for _ in range(ROLE_CHANGES_PER_TURN):
            with self._incoming_lock:
                if not self._incoming:
                    self._is_drain_scheduled = False
                    return
                old, new = self._incoming.popleft()
            self._on_replica_change(old, new)
        assert self._loop is not None
        self._loop.call_soon(self._drain_incoming)       # behind the callbacks already ready

    def _on_replica_change(self, old: HostedReplica | None, new: HostedReplica | None) -> None:
        if self.is_closed:
            return
        replica = new if new is not None else old
        assert replica is not None
        key = (replica.topic, replica.partition)
        if new is None:
            if self.hosted.get(key) is old:
                del self.hosted[key]
        else:
            self.hosted[key] = new
        if self.is_active:
            self.apply(key)
        else:
            self.maybe_activate()

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        if not self.is_active:
            self.maybe_activate()

    def maybe_activate(self) -> None:
        if self.is_active or self.is_closed or self._loop is None or not self._may_act(self._publisher.image):
            return
        self.is_active = True
        logger.info("metadata caught up with this broker's registration: applying %d replica roles", len(self.hosted))
        self._apply_in_turns(sorted(self.hosted), 0)

    def _apply_in_turns(self, keys: list[TopicPartition], start: int) -> None:
        """Apply `keys[start:]`, ROLE_CHANGES_PER_TURN per loop turn (a change queued meanwhile
        applies its partition's latest state; applying it again here is a no-op)."""
        if self.is_closed:
            return
        end = start + ROLE_CHANGES_PER_TURN
        for key in keys[start:end]:
            self.apply(key)
        if end < len(keys):
            assert self._loop is not None
            self._loop.call_soon(self._apply_in_turns, keys, end)

    def apply(self, key: TopicPartition) -> None:
        """Bring the partition's run-time state in line with the latest hosted replica state."""
        hosted = self.hosted.get(key)
        partitions = self._table.partitions
        partition = partitions.get(key)
        if partition is not None and (hosted is None or partition.topic_id != hosted.topic_id or partition.log is not hosted.log):
            self.stop(partition, "the replica is no longer hosted here" if hosted is None else "the log was replaced")
            del partitions[key]
            partition = None
        if hosted is None:
            return
        if partition is None:
            partition = self._create(key, hosted)
            if partition is None:
                return
        if hosted.role == LEADER:
            if partition.role == LEADER and partition.leader_epoch == hosted.leader_epoch:
                partition.leader_metadata_changed(
                    hosted.replicas, hosted.isr, hosted.partition_epoch, hosted.min_insync_replicas,
                    self._clock.monotonic_ms(), self.node_id,
                )
                self.leader_metadata_applied(partition)
            else:
                self._become_leader(partition, hosted)
        else:
            partition.min_insync_replicas = hosted.min_insync_replicas
            partition.partition_epoch = hosted.partition_epoch
            if partition.role != FOLLOWER or (partition.leader_id, partition.leader_epoch) != (hosted.leader_id, hosted.leader_epoch):
                self._become_follower(partition, hosted)

    def _create(self, key: TopicPartition, hosted: HostedReplica) -> Partition | None:
        high_watermark = self._table.checkpointed.pop(key, 0)
        try:
            partition = Partition(key[0], key[1], hosted.topic_id, hosted.log, high_watermark, self._table.counters(key[0]))
        except StorageError as error:
            logger.error("%s-%d: the log is unusable: %s", key[0], key[1], error)
            return None
        partition.request_sync = self._table.request_sync
        self._table.partitions[key] = partition
        return partition

    # -- transitions -----------------------------------------------------------------------------

    def _become_leader(self, partition: Partition, hosted: HostedReplica) -> None:
        self._fetcher.remove(partition.key)
        log = partition.log
        try:
            end_offset = log.log_end_offset
            if hosted.leader_epoch > log.latest_epoch:
                log.assign_epoch_start_offset(hosted.leader_epoch, end_offset)
        except StorageError as error:
            logger.error("%s-%d: cannot become leader, the log is unusable: %s", partition.topic, partition.partition, error)
            self.stop(partition, "the log is unusable")
            return
        now_ms = self._clock.monotonic_ms()
        partition.clamp_high_watermark()
        partition.min_insync_replicas = hosted.min_insync_replicas
        leader = LeaderState(
            self.node_id,
            hosted.leader_epoch,
            hosted.partition_epoch,
            hosted.replicas,
            hosted.isr if self.node_id in hosted.isr else (*hosted.isr, self.node_id),
            end_offset,
            partition.high_watermark,
            end_offset,
            now_ms,
            hosted.min_insync_replicas,
            is_durable=partition.is_durable,
            durable_offset=log.durable_offset,
        )
        was = partition.become_leader(leader, self.node_id)
        logger.info(
            "%s-%d: leader at epoch %d (was %s), log end offset %d, high watermark %d, ISR %s",
            partition.topic, partition.partition, hosted.leader_epoch, was, end_offset, partition.high_watermark, list(hosted.isr),
        )
        partition.wake_all()
        partition.leader_appended(end_offset, now_ms)
        self._notify_leadership(partition, True)

    def _become_follower(self, partition: Partition, hosted: HostedReplica) -> None:
        was = partition.become_follower(hosted.leader_id, hosted.leader_epoch, self._table.not_leader_detail_of)
        if was == LEADER:
            self._notify_leadership(partition, False)
        if hosted.leader_id == NO_LEADER:
            self._fetcher.remove(partition.key)
        else:
            self._fetcher.add(partition, hosted.leader_id, hosted.leader_epoch)
            partition.note_unsynced()          # a durable follower reports what it has fsynced
        logger.info(
            "%s-%d: follower of %d at epoch %d (was %s), log end offset %d",
            partition.topic, partition.partition, hosted.leader_id, hosted.leader_epoch, was, safe_end_offset(partition),
        )

    def stop(self, partition: Partition, reason: str) -> None:
        self._fetcher.remove(partition.key)
        was = partition.stop(self._table.not_leader_detail_of)
        if was == LEADER:
            self._notify_leadership(partition, False)
        logger.info("%s-%d: stopped (%s)", partition.topic, partition.partition, reason)

    def stop_all(self, reason: str) -> None:
        self.is_closed = True
        for partition in list(self._table.partitions.values()):
            self.stop(partition, reason)

    # -- leadership listeners --------------------------------------------------------------------

    def add_leadership_listener(self, listener: LeadershipListener) -> None:
        self._leadership_listeners.append(listener)

    def remove_leadership_listener(self, listener: LeadershipListener) -> None:
        self._leadership_listeners.remove(listener)

    def _notify_leadership(self, partition: Partition, is_leader: bool) -> None:
        for listener in list(self._leadership_listeners):
            try:
                listener(partition.topic, partition.partition, is_leader, partition.leader_epoch)
            except Exception:
                logger.exception("a leadership listener failed for %s-%d", partition.topic, partition.partition)
