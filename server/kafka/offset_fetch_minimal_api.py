"""OffsetFetch (key 9) v1-v7 over the Kafka protocol — the minimal one the classic group tests need.

Owns the Kafka answer to "what did group G commit": `GroupCoordinator.fetch_offsets` for the
requested partitions (null topics: every committed partition, v2+), -1 for a partition without a
commit. One group per request (v8+ batches groups and is not advertised). A consumer asks this
when it is assigned partitions, before fetching, even with auto-commit off.

Kept in its own module so that the full offsets APIs (branch g-offsets) can replace it.

Imports: freshet.server (groups, kafka, status), freshet.v1. Thread-safety: not thread-safe; runs
on the node's event loop.
"""

from __future__ import annotations

from typing import Any

from freshet.server import status
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.server.kafka import codec
from freshet.v1 import common_pb2, group_pb2


class OffsetFetchHandler:
    """OffsetFetch v1-v7 (module docstring)."""

    api_key = 9
    name = "OffsetFetch"
    versions = (1, 7)

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self._coordinator = coordinator

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        topic_type = codec.nested(schema, "OffsetFetchResponseTopic")
        partition_type = codec.nested(schema, "OffsetFetchResponsePartition")
        wanted = [
            common_pb2.TopicPartition(topic=topic.name, partition=index)
            for topic in (body.topics or ())
            for index in topic.partition_indexes
        ]
        try:
            fetched = await self._coordinator.fetch_offsets(group_pb2.OffsetFetchRequest(group_id=body.group_id, partitions=wanted))
        except Exception as error:
            code = status.error_code_of(error)
            partitions_error = code if request.api_version < 2 else 0
            topics = tuple(
                codec.build(topic_type, name=topic.name, partitions=tuple(
                    codec.build(partition_type, partition_index=index, committed_offset=-1, committed_leader_epoch=-1,
                                metadata="", error_code=partitions_error)
                    for index in topic.partition_indexes
                ))
                for topic in (body.topics or ())
            )
            return codec.build(schema, throttle_time=0, topics=topics, error_code=code)
        by_topic: dict[str, list] = {}
        for result in fetched.results:
            by_topic.setdefault(result.topic, []).append(codec.build(
                partition_type, partition_index=result.partition, committed_offset=result.offset,
                committed_leader_epoch=result.leader_epoch, metadata=result.metadata or "", error_code=0,
            ))
        topics = tuple(codec.build(topic_type, name=name, partitions=tuple(items)) for name, items in by_topic.items())
        return codec.build(schema, throttle_time=0, topics=topics, error_code=0)
