"""The partition replicas this broker hosts, and its role in each (leader or follower).

Owns, on every metadata change: which partitions have a replica on this broker; their logs
(created through `LogManager.get_or_create` with the topic's typed LogConfig, reconfigured when
the topic's config changes); deleting the logs of deleted topics, of replicas moved away, and of
a topic re-created under the same name (a different topic id).

This is the seam for the data plane (server/broker/data_plane.py): role listeners get every new,
changed (role, leader, leader epoch, partition epoch, min.insync.replicas) or removed
`HostedReplica`. The data plane records where a leader epoch starts (`assign_epoch_start_offset`)
itself, on its event loop after it stopped fetching the partition, so that no follower append
can land between the two.

Safety: nothing is deleted before this broker's metadata has caught up to its registration (a
broker starting with a stale image must not delete data because it has not heard of a topic yet).

Blocking work (directory creation, fsyncs, recovery of deleted logs) runs on one worker thread,
so changes are applied in image order and the event loop never blocks on the disk.

Imports: asyncio, freshet.metadata (configs, image), freshet.storage (LogManager, LogConfig),
freshet.server.
Thread-safety: thread-safe for readers: `replicas` is replaced (never mutated) by the worker
thread; the loop and the HTTP thread read the current mapping. Reconciliation runs on the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping

from freshet.metadata import configs
from freshet.metadata.image import MetadataImage, PartitionImage, TopicImage
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.replication.partition import FOLLOWER, LEADER, ReplicaRole
from freshet.server.tasks import cancel_and_wait
from freshet.storage.config import LogConfig
from freshet.storage.errors import InconsistentTopicIdError, StorageError
from freshet.storage.log import PartitionLog
from freshet.storage.log_manager import LogManager

logger = logging.getLogger(__name__)

# How soon a replica that could not be hosted (its log could not be created or opened: a full disk,
# an older topic's log still in the way) is looked at again when no new metadata arrives.
RETRY_UNHOSTED_S = 2.0

TopicPartition = tuple[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class HostedReplica:
    """One partition replica on this broker. Thread-safe (immutable; the log is thread-safe).

    Attributes:
        topic, partition, topic_id: which partition.
        role: LEADER or FOLLOWER.
        leader_id, leader_epoch, partition_epoch: the partition state it was last reconciled with.
        log: the partition log.
        replicas, isr: the partition's replica set and ISR in that state.
        min_insync_replicas: the topic's min.insync.replicas.
    """

    topic: str
    partition: int
    topic_id: bytes
    role: ReplicaRole
    leader_id: int
    leader_epoch: int
    partition_epoch: int
    log: PartitionLog
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    min_insync_replicas: int = 1

    def state_key(self) -> tuple:
        """What a role listener must hear about when it changes (everything but the log)."""
        return (
            self.role, self.leader_id, self.leader_epoch, self.partition_epoch, self.topic_id, self.min_insync_replicas
        )


def log_config(image: MetadataImage, topic: TopicImage) -> LogConfig:
    """The storage LogConfig of a topic: freshet.metadata.configs' typed topic config (schema
    defaults < cluster values < topic values), by Kafka name."""
    typed = image.topic_config(topic.topic_id)
    assert typed is not None
    values = {key: getattr(typed, configs.SCHEMA[key].attribute) for key in configs.TOPIC_KEYS}
    return LogConfig.from_kafka_names(values)


def changed_partitions(before: TopicImage | None, topic: TopicImage) -> frozenset[int] | None:
    """The numbers of the partitions of `topic` that are not the very PartitionImage objects of
    `before` (images share unchanged ones), or None when the whole topic must be looked at: it
    is new, or its name, configs or partition count changed."""
    if (
        before is None
        or before.name != topic.name
        or before.configs is not topic.configs
        or len(before.partitions) != len(topic.partitions)
    ):
        return None
    return frozenset(number for number, (old, new) in enumerate(zip(before.partitions, topic.partitions, strict=True)) if old is not new)


class HostedReplicas:
    """Hosted replicas and roles (see the module docstring). Thread-safe for readers."""

    def __init__(
        self,
        node_id: int,
        log_manager: LogManager,
        publisher: MetadataPublisher,
        may_delete: Callable[[MetadataImage], bool],
    ) -> None:
        self.node_id = node_id
        self.log_manager = log_manager
        self._publisher = publisher
        self._may_delete = may_delete
        self.replicas: Mapping[TopicPartition, HostedReplica] = {}
        self.reconciled_offset = 0
        self.deleted_logs = 0
        # What the last pass saw (worker thread only): the topics it completed, the cluster
        # configs it used, whether a pass with deletions allowed has run.
        self._reconciled_topics: Mapping[bytes, TopicImage] = {}
        self._cluster_configs: Mapping[str, str] | None = None
        self._deletes_done = False
        self._role_listeners: list[Callable[[HostedReplica | None, HostedReplica | None], None]] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"replicas-{node_id}")
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def leader_count(self) -> int:
        return sum(1 for replica in self.replicas.values() if replica.role == LEADER)

    def add_role_listener(self, listener: Callable[[HostedReplica | None, HostedReplica | None], None]) -> None:
        """Call listener(old, new) on the worker thread when a replica appears (old None),
        disappears (new None), or changes its state (`HostedReplica.state_key`). For the data plane."""
        self._role_listeners.append(listener)

    async def start(self) -> None:
        self._publisher.add_listener(self._on_image)
        self._task = asyncio.create_task(self._run(), name="replica-manager")
        self._dirty.set()

    async def close(self) -> None:
        self._publisher.remove_listener(self._on_image)
        await cancel_and_wait(self._task)
        self._executor.shutdown(wait=True)

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        self._dirty.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pending = False
        while True:
            if pending:       # a replica could not be hosted (e.g. ENOSPC): look again without a new image
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), RETRY_UNHOSTED_S)
            else:
                await self._dirty.wait()
            self._dirty.clear()
            image = self._publisher.image
            allow_deletes = self._may_delete(image)
            try:
                pending = await loop.run_in_executor(self._executor, self.reconcile, image, allow_deletes)
            except Exception:
                logger.exception("reconciling replicas with metadata offset %d failed", image.offset)
                pending = True

    def reconcile(self, image: MetadataImage, allow_deletes: bool) -> bool:
        """Bring the hosted replicas in line with `image` (worker thread, or a test's thread);
        True when some replica could not be hosted yet (the caller looks again soon).

        Incremental: images share unchanged TopicImage objects, so only topics that are new,
        changed or gone since the last pass are looked at (a broker with 10,000 replicas does not
        touch them all for every command); and within a topic whose name, configs and partition
        count are unchanged, only the PartitionImage objects that changed (an ISR change to one
        partition of a 5,000-partition topic cost a 0.2-0.5 s pass over all of them). A full pass runs the first time, when cluster-wide
        configs change, and the first time deletions are allowed (it also deletes logs on disk
        that metadata does not place here).
        """
        full = image.cluster_configs is not self._cluster_configs or (allow_deletes and not self._deletes_done)
        reconciled = self._reconciled_topics
        changed: dict[bytes, frozenset[int]] = {}      # topics where only these partitions changed
        if full:
            topics = list(image.topics_by_id.values())
        else:
            topics = []
            for topic in image.topics_by_id.values():
                before = reconciled.get(topic.topic_id)
                if before is topic:
                    continue
                numbers = changed_partitions(before, topic)
                if numbers is None:
                    topics.append(topic)
                else:
                    changed[topic.topic_id] = numbers
        looked_at = {topic.topic_id for topic in topics} | (set(reconciled) - set(image.topics_by_id))

        def is_looked_at(key: TopicPartition, replica: HostedReplica) -> bool:
            return replica.topic_id in looked_at or key[1] in changed.get(replica.topic_id, ())

        previous = self.replicas
        current = {key: replica for key, replica in previous.items() if not full and not is_looked_at(key, replica)}
        wanted = self._wanted(topics)
        for topic_id, numbers in changed.items():
            topic = image.topics_by_id[topic_id]
            wanted.update(self._wanted_partitions(topic, (topic.partitions[number] for number in sorted(numbers))))
        if allow_deletes:
            if full:
                gone = (set(self.log_manager.all()) | set(self.log_manager.offline_partitions)) - set(wanted)
            else:
                gone = {key for key, replica in previous.items() if is_looked_at(key, replica)} - set(wanted)
            for key in sorted(gone):
                logger.info("deleting the log of %s-%d: no replica here in metadata offset %d", key[0], key[1], image.offset)
                self._delete(key)
        incomplete = self._host_wanted(image, wanted, previous, current, allow_deletes)
        for key, before in previous.items():
            if key not in current:
                self._notify(before, None)
        self.replicas = current
        self._reconciled_topics = {
            topic_id: topic for topic_id, topic in image.topics_by_id.items() if topic_id not in incomplete
        }
        self._cluster_configs = image.cluster_configs
        self._deletes_done = self._deletes_done or (allow_deletes and full)
        self.reconciled_offset = image.offset
        return bool(incomplete)

    def _wanted(self, topics: list[TopicImage]) -> dict[TopicPartition, tuple[TopicImage, object]]:
        """The partitions of `topics` that place a replica on this node."""
        wanted: dict[TopicPartition, tuple[TopicImage, object]] = {}
        for topic in topics:
            wanted.update(self._wanted_partitions(topic, topic.partitions))
        return wanted

    def _wanted_partitions(
        self, topic: TopicImage, partitions: Iterable[PartitionImage]
    ) -> dict[TopicPartition, tuple[TopicImage, object]]:
        """Those of `partitions` (of `topic`) that place a replica on this node."""
        return {(topic.name, p.partition): (topic, p) for p in partitions if self.node_id in p.replicas}

    def _host_wanted(
        self,
        image: MetadataImage,
        wanted: dict[TopicPartition, tuple[TopicImage, object]],
        previous: dict[TopicPartition, HostedReplica],
        current: dict[TopicPartition, HostedReplica],
        allow_deletes: bool,
    ) -> set[bytes]:
        """Open (or create) the log of every wanted replica and put its HostedReplica in `current`,
        notifying listeners of each change; the ids of topics with a replica that could not be
        hosted yet (offline, or an older topic's log in the way), to look at again next pass."""
        configs_by_topic: dict[bytes, tuple[LogConfig, int]] = {}
        for topic, _ in wanted.values():
            if topic.topic_id not in configs_by_topic:
                typed = image.topic_config(topic.topic_id)
                assert typed is not None
                configs_by_topic[topic.topic_id] = (log_config(image, topic), typed.min_insync_replicas)
        # A new topic brings thousands of logs to create: open them on the log manager's threads
        # first (their fsyncs overlap); the loop below then finds them open, or meets each
        # failure itself, as before.
        self.log_manager.open_missing(
            (key[0], key[1], topic.topic_id.hex(), configs_by_topic[topic.topic_id][0])
            for key, (topic, _) in wanted.items()
            if key not in previous
        )
        incomplete: set[bytes] = set()
        for key, (topic, partition) in sorted(wanted.items()):
            config, min_insync_replicas = configs_by_topic[topic.topic_id]
            try:
                log = self._log(key, topic, config, allow_deletes)
            except StorageError as error:
                logger.error("the replica of %s-%d is offline: %s", key[0], key[1], error)
                incomplete.add(topic.topic_id)
                continue
            if log is None:
                incomplete.add(topic.topic_id)
                continue
            current[key] = self._hosted(key, topic, partition, log, min_insync_replicas, previous.get(key))
        return incomplete

    def _hosted(
        self,
        key: TopicPartition,
        topic: TopicImage,
        partition: PartitionImage,
        log: PartitionLog,
        min_insync_replicas: int,
        before: HostedReplica | None,
    ) -> HostedReplica:
        """The replica as metadata places it now; listeners hear of it if it differs from `before`."""
        role = LEADER if partition.leader == self.node_id else FOLLOWER
        replica = HostedReplica(
            key[0],
            key[1],
            topic.topic_id,
            role,
            partition.leader,
            partition.leader_epoch,
            partition.partition_epoch,
            log,
            partition.replicas,
            partition.isr,
            min_insync_replicas,
        )
        if before is None or before.state_key() != replica.state_key() or before.log is not log:
            if before is None or (before.role, before.leader_epoch, before.topic_id) != (role, replica.leader_epoch, replica.topic_id):
                logger.info(
                    "%s-%d: %s at leader epoch %d (leader %d, log end offset %d)",
                    key[0], key[1], role, partition.leader_epoch, partition.leader, log.log_end_offset,
                )
            self._notify(before, replica)
        return replica

    def _log(self, key: TopicPartition, topic: TopicImage, config: LogConfig, allow_deletes: bool) -> PartitionLog | None:
        topic_id = topic.topic_id.hex()
        try:
            return self.log_manager.get_or_create(key[0], key[1], topic_id, config)
        except InconsistentTopicIdError:
            if not allow_deletes:
                logger.info("%s-%d holds an older topic's log; waiting for metadata to catch up", key[0], key[1])
                return None
            logger.info("%s-%d holds the log of a deleted topic with the same name: deleting it", key[0], key[1])
            self._delete(key)
            return self.log_manager.get_or_create(key[0], key[1], topic_id, config)

    def _delete(self, key: TopicPartition) -> None:
        try:
            if self.log_manager.delete(*key):
                self.deleted_logs += 1
        except StorageError as error:
            logger.error("deleting the log of %s-%d failed: %s", key[0], key[1], error)

    def _notify(self, old: HostedReplica | None, new: HostedReplica | None) -> None:
        for listener in self._role_listeners:
            try:
                listener(old, new)
            except Exception:
                logger.exception("replica role listener failed")
