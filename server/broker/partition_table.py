"""The partitions this broker runs, and the answers every data-plane path gives about them.

Owns the run-time `Partition` of every hosted replica the roles applied (keyed by (topic,
partition)), the high watermarks read from the checkpoint for replicas not applied yet, the
per-topic counters, and the error details every path builds the same way: NOT_LEADER with the
leader hint from metadata, a storage error naming the partition, "the partition if I lead it".

Imports: freshet.metadata (image), freshet.server (status, metrics, replication), freshet.storage
(errors), wire types.
Thread-safety: not thread-safe; mutated on the node's event loop only. The HTTP thread reads
`partitions` through copies (`list(...)`).
"""

from __future__ import annotations

from collections.abc import Callable

from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.server import status
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication.partition import LEADER, Partition
from freshet.storage.errors import StorageError
from freshet.v1 import common_pb2

E = common_pb2.ErrorCode
TopicPartition = tuple[str, int]


class PartitionTable:
    """Run-time partitions and their error details (see the module docstring). Not thread-safe (loop)."""

    def __init__(self, node_id: int, publisher: MetadataPublisher, metrics: BrokerMetrics) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self.partitions: dict[TopicPartition, Partition] = {}
        #: High watermarks from the checkpoint, for replicas whose Partition is not created yet.
        self.checkpointed: dict[TopicPartition, int] = {}
        self._publisher = publisher
        self._topic_counters: dict[str, TopicCounters] = {}
        #: Given to every Partition created (its `request_sync`): the data plane sets it to its
        #: durable flusher's `mark`.
        self.request_sync: Callable[[Partition], None] | None = None

    @property
    def image(self) -> MetadataImage:
        return self._publisher.image

    def get(self, key: TopicPartition) -> Partition | None:
        return self.partitions.get(key)

    def counters(self, topic: str) -> TopicCounters:
        counters = self._topic_counters.get(topic)
        if counters is None:
            counters = self._topic_counters[topic] = TopicCounters(self.metrics, topic)
        return counters

    def high_watermarks(self, hosted: set[TopicPartition] | dict) -> dict[TopicPartition, int]:
        """The high watermark of every hosted replica (checkpointed values for those not applied yet)."""
        values = {key: offset for key, offset in self.checkpointed.items() if key in hosted}
        for key, partition in self.partitions.items():
            values[key] = partition.high_watermark
        return values

    def not_leader_detail(self, topic: str, partition_number: int) -> common_pb2.ErrorDetail:
        """NOT_LEADER with the leader this broker's metadata names (UNKNOWN_TOPIC, or
        LEADER_NOT_AVAILABLE when there is none or it is this broker taking over)."""
        image = self._publisher.image
        tp = common_pb2.TopicPartition(topic=topic, partition=partition_number)
        found = image.partition(topic, partition_number)
        if found is None:
            what = f"topic {topic!r} does not exist" if image.topic(topic) is None else f"topic {topic!r} has no partition {partition_number}"
            return status.detail(E.UNKNOWN_TOPIC, what, partition=tp)
        if found.leader == NO_LEADER:
            return status.detail(E.LEADER_NOT_AVAILABLE, f"{topic}-{partition_number} has no leader", partition=tp, leader_id=-1)
        if found.leader == self.node_id:
            return status.detail(
                E.LEADER_NOT_AVAILABLE,
                f"{topic}-{partition_number}: this broker (node {self.node_id}) is taking over leadership at epoch {found.leader_epoch}",
                partition=tp,
                leader_id=-1,
            )
        broker = image.brokers.get(found.leader)
        hints: dict = {"partition": tp, "leader_id": found.leader, "leader_epoch": found.leader_epoch}
        if broker is not None:
            hints["leader"] = common_pb2.BrokerEndpoint(node_id=found.leader, host=broker.host, port=broker.port, rack=broker.rack)
        return status.detail(E.NOT_LEADER, f"node {self.node_id} does not lead {topic}-{partition_number}; node {found.leader} does", **hints)

    def not_leader_detail_of(self, partition: Partition) -> common_pb2.ErrorDetail:
        return self.not_leader_detail(partition.topic, partition.partition)

    def storage_detail(self, partition: Partition, error: StorageError) -> common_pb2.ErrorDetail:
        """The ErrorDetail of a storage error on `partition` (server/status.py), naming the partition."""
        detail = status.detail_for(error, self.node_id)
        detail.partition.CopyFrom(partition.topic_partition)
        return detail

    def leader_partition(self, topic: str, number: int) -> tuple[Partition | None, common_pb2.ErrorDetail | None]:
        """(the partition, None) when this broker leads it, else (None, the NOT_LEADER detail)."""
        partition = self.partitions.get((topic, number))
        if partition is not None and partition.role == LEADER:
            return partition, None
        return None, self.not_leader_detail(topic, number)


def safe_end_offset(partition: Partition) -> int:
    """The log end offset for a log line, -1 when the log is unusable."""
    try:
        return partition.log.log_end_offset
    except StorageError:
        return -1
