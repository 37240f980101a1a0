"""DescribeLogDirs (key 35) and DescribeProducers (key 61) over the Kafka protocol.

Owns the Kafka view of this broker's replicas, from the data plane's reads (the paths the gRPC
DescribeLogDirs takes, server/broker/fetch.py):

- DescribeLogDirs: one log dir, the broker's `logs` directory, with its total and usable bytes
  (v4+) and, per hosted replica asked for (null topics: all of them), its size in bytes and
  offset lag (Kafka's: max(high watermark - log end offset, 0), so 0 for a leader). A requested
  replica this broker does not host, or whose log is offline, is left out, as Kafka leaves out
  replicas that are not in a dir;
- DescribeProducers: per partition this broker leads, the idempotent producers its log
  remembers: producer id, epoch, last sequence, last timestamp; coordinator epoch and current
  transaction start offset are -1 (no transactions). NOT_LEADER_OR_FOLLOWER elsewhere, as Kafka.

Imports: shutil, freshet.server (broker, kafka, status), wire types. Thread-safety: not
thread-safe; runs on the node's event loop (disk usage is one statvfs call).
"""

from __future__ import annotations

import shutil
from typing import Any

from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server import status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.kafka import codec
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import broker_pb2, common_pb2

E = common_pb2.ErrorCode
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31


class DescribeLogDirsHandler:
    """DescribeLogDirs v1-v4 (v0 has no kio schema)."""

    api_key = 35
    name = "DescribeLogDirs"
    versions = (1, 4)

    def __init__(self, data_plane: DataPlane, logs_dir: str, authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self._logs_dir = logs_dir
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        if rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.CLUSTER, (CLUSTER_NAME,)):
            # Kafka: no result, CLUSTER_AUTHORIZATION_FAILED at the top (v3+).
            return codec.build(schema, throttle_time=0, error_code=CLUSTER_AUTHORIZATION_FAILED, results=())
        result_type = codec.nested(schema, "DescribeLogDirsResult")
        topic_type = codec.nested(schema, "DescribeLogDirsTopic")
        partition_type = codec.nested(schema, "DescribeLogDirsPartition")
        wire = broker_pb2.DescribeLogDirsRequest()
        if body.topics is not None:
            for topic in body.topics:
                for number in topic.partitions:
                    wire.partitions.add(topic=topic.topic, partition=number)
            if not wire.partitions:
                return codec.build(schema, throttle_time=0, error_code=0, results=())
        answer = self._data_plane.describe_log_dirs(wire)
        by_topic: dict[str, list] = {}
        for replica in answer.replicas:
            if replica.error.code != E.NONE:
                continue
            by_topic.setdefault(replica.topic, []).append(codec.build(
                partition_type, partition_index=replica.partition, partition_size=replica.size_bytes,
                offset_lag=max(replica.high_watermark - replica.log_end_offset, 0), is_future_key=False,
            ))
        topics = tuple(codec.build(topic_type, name=name, partitions=tuple(items)) for name, items in by_topic.items())
        try:
            usage = shutil.disk_usage(self._logs_dir)
            total_bytes, usable_bytes = usage.total, usage.free
        except OSError:
            total_bytes = usable_bytes = -1
        result = codec.build(result_type, error_code=0, log_dir=self._logs_dir, topics=topics,
                             total_bytes=total_bytes, usable_bytes=usable_bytes)
        return codec.build(schema, throttle_time=0, error_code=0, results=(result,))


class DescribeProducersHandler:
    """DescribeProducers v0."""

    api_key = 61
    name = "DescribeProducers"
    versions = (0, 0)

    def __init__(self, data_plane: DataPlane, authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        refused = rules.denials(self.authorizer, Operation.READ, ResourceType.TOPIC, (t.name for t in request.body.topics))
        topic_type = codec.nested(schema, "TopicResponse")
        partition_type = codec.nested(schema, "PartitionResponse")
        producer_type = codec.nested(schema, "ProducerState")
        topics = []
        for topic in request.body.topics:
            partitions = []
            for number in topic.partition_indexes:
                if topic.name in refused:
                    partitions.append(codec.build(
                        partition_type, partition_index=number, error_code=TOPIC_AUTHORIZATION_FAILED,
                        error_message=refused[topic.name], active_producers=(),
                    ))
                    continue
                detail, producers = self._data_plane.describe_producers(topic.name, number)
                code = status.kafka_code(detail.code)
                partitions.append(codec.build(
                    partition_type, partition_index=number, error_code=code,
                    error_message=detail.message or None if code else None,
                    active_producers=tuple(
                        codec.build(producer_type, producer_id=producer_id, producer_epoch=epoch, last_sequence=sequence,
                                    last_timestamp=timestamp, coordinator_epoch=-1, current_txn_start_offset=-1)
                        for producer_id, epoch, sequence, timestamp in producers
                    ),
                ))
            topics.append(codec.build(topic_type, name=topic.name, partitions=tuple(partitions)))
        return codec.build(schema, throttle_time=0, topics=tuple(topics))
