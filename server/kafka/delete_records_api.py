"""DeleteRecords (key 21) over the Kafka protocol, through the broker's DeleteRecords path.

Owns the translation of a Kafka DeleteRecords request (KIP-107; what `AdminClient.delete_records`
and kafka-delete-records.sh send to each partition's leader) into the data plane's
`DeleteRecordsPath.delete_records` (the leader check with NOT_LEADER_OR_FOLLOWER, -1 meaning the
high watermark, OFFSET_OUT_OF_RANGE above it, the durable move of the log start offset, the wait
for every live replica until the request's timeout: REQUEST_TIMED_OUT) and of its answer back:
per partition the low watermark and the error code from the status table.

Imports: freshet.server (broker, kafka, status). Thread-safety: not thread-safe; runs on the
node's event loop.
"""

from __future__ import annotations

from typing import Any

from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.kafka import codec
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2


class DeleteRecordsHandler:
    """DeleteRecords v0-v2."""

    api_key = 21
    name = "DeleteRecords"
    versions = (0, 2)

    def __init__(self, data_plane: DataPlane, authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        wanted = [
            (topic.name, partition.partition_index, partition.offset)
            for topic in body.topics
            for partition in topic.partitions
        ]
        # Kafka: Delete on each topic; refused partitions answer TOPIC_AUTHORIZATION_FAILED, untouched.
        refused = rules.denials(self.authorizer, Operation.DELETE, ResourceType.TOPIC, (topic.name for topic in body.topics))
        return self._respond(request.api_version, wanted, codec.milliseconds(body.timeout), refused)

    async def _respond(
        self, api_version: int, wanted: list[tuple[str, int, int]], timeout_ms: int, refused: dict[str, str]
    ) -> Any:
        allowed = [item for item in wanted if item[0] not in refused]
        done = iter(await self._data_plane.delete_records(allowed, timeout_ms) if allowed else ())
        denied = (-1, common_pb2.ErrorDetail(code=common_pb2.TOPIC_AUTHORIZATION_FAILED))
        results = [denied if item[0] in refused else next(done) for item in wanted]
        schema = codec.response_schema(self.api_key, api_version)
        topic_type = codec.nested(schema, "DeleteRecordsTopicResult")
        partition_type = codec.nested(schema, "DeleteRecordsPartitionResult")
        by_topic: dict[str, list] = {}
        for (topic, number, _), (low_watermark, detail) in zip(wanted, results, strict=True):
            by_topic.setdefault(topic, []).append(codec.build(
                partition_type, partition_index=number, low_watermark=low_watermark,
                error_code=status.kafka_code(detail.code),
            ))
        topics = tuple(codec.build(topic_type, name=name, partitions=tuple(items)) for name, items in by_topic.items())
        return codec.build(schema, throttle_time=0, topics=topics)
