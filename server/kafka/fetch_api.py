"""Fetch (key 1) and ListOffsets (key 2) over the Kafka protocol, through the broker's fetch path.

Owns the translation of Kafka's Fetch and ListOffsets into the data plane's `FetchPath.fetch`
and `FetchPath.list_offsets` (the very paths the gRPC Fetch and ListOffsets take) and back:

- Fetch: the long poll (max_wait_ms, min_bytes, max_bytes, partition_max_bytes) is the fetch
  path's, which reads committed data only (below the high watermark). Both isolation levels read
  up to the high watermark and `last_stable_offset` is the high watermark, because there are no
  transactions (so no aborted transactions either: an empty list under read_committed, null under
  read_uncommitted, as Kafka). Topics are named (v4-v12) or given by id (v13+; an unknown id is
  UNKNOWN_TOPIC_ID). Fetch sessions (KIP-227): the broker never creates one; every response is
  full with session_id 0, which KIP-227 allows (a broker out of session slots does the same), so
  clients keep sending full requests. An incremental request (a session id the broker never gave)
  is FETCH_SESSION_ID_NOT_FOUND, and a sessionless one with an epoch other than 0 or -1 is
  INVALID_FETCH_SESSION_EPOCH, both at the top level (v7+), as Kafka answers them.
  current_leader_epoch fences (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); OFFSET_OUT_OF_RANGE
  carries the log start offset; NOT_LEADER_OR_FOLLOWER and the fencing errors carry the current
  leader (v12+) and its Kafka endpoint (v16+, KIP-951). preferred_read_replica is always -1 (no
  follower fetching). Record batches are not read: the fetch path hands out FileRegions of the
  segment files (`FetchPath.fetch_regions`), kio encodes everything around them
  (`codec.encode_response_parts`) and the listener sends them with sendfile (zero-copy; a copy
  on TLS connections), as Kafka's FileRecords.writeTo.
- ListOffsets: earliest (-2), latest (-1, the high watermark), the record with the largest
  timestamp (-3, v7+), earliest local (-4, v8+: the log start offset, every segment is local), by
  timestamp; the leader epoch in every answer (v4+) and current_leader_epoch fencing.

Imports: freshet.metadata (image), freshet.server (broker, kafka, status), freshet.storage
(offset sentinels), wire types. Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.kafka import codec
from freshet.server.kafka.metadata_api import kafka_brokers, topic_key_and_name
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.storage.file_region import FileRegion, close_regions
from freshet.storage.log import EARLIEST_TIMESTAMP
from freshet.v1 import broker_pb2, common_pb2

E = common_pb2.ErrorCode
UNKNOWN_TOPIC_ID = 100
TOPIC_AUTHORIZATION_FAILED = 29
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
READ_COMMITTED = 1
#: ListOffsets v8 (KIP-405): the earliest offset in local storage; every segment is local here.
EARLIEST_LOCAL_TIMESTAMP = -4
#: Errors after which a client wants to know the current leader (KIP-951).
_LEADER_HINT_CODES = frozenset({E.NOT_LEADER, E.FENCED_LEADER_EPOCH, E.UNKNOWN_LEADER_EPOCH})


class FetchHandler:
    """Fetch v4-v18 (v4 is the first with record batch format v2)."""

    api_key = 1
    name = "Fetch"
    versions = (4, 18)
    has_file_regions = True                     # records go out with sendfile (codec.ResponseParts)

    def __init__(self, data_plane: DataPlane, image: Callable[[], MetadataImage], authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self._image = image
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        session_id = getattr(body, "session_id", 0)
        session_epoch = getattr(body, "session_epoch", -1)
        if session_id != 0 or session_epoch not in (0, -1):
            code = FETCH_SESSION_ID_NOT_FOUND if session_id != 0 else INVALID_FETCH_SESSION_EPOCH
            return codec.build(schema, throttle_time=0, error_code=code, session_id=session_id, responses=())
        image = self._image()
        slots: list[tuple[Any, int, int]] = []          # (topic key as asked, partition, Kafka code decided here)
        wire = broker_pb2.FetchRequest(
            max_wait_ms=codec.milliseconds(body.max_wait), min_bytes=max(body.min_bytes, 0),
            max_bytes=max(body.max_bytes, 0), client_id=request.client_id,
        )
        refused: dict[str, str] = {}
        if self.authorizer.enabled:
            names = (topic_key_and_name(topic, image, "topic")[1] for topic in body.topics)
            refused = rules.denials(self.authorizer, Operation.READ, ResourceType.TOPIC, (n for n in names if n is not None))
        for topic in body.topics:
            key, name = topic_key_and_name(topic, image, "topic")
            for wanted in topic.partitions:
                if name is None:
                    slots.append((key, wanted.partition, UNKNOWN_TOPIC_ID))
                    continue
                if name in refused:
                    slots.append((key, wanted.partition, TOPIC_AUTHORIZATION_FAILED))
                    continue
                slots.append((key, wanted.partition, 0))
                wire.partitions.add(
                    topic=name, partition=wanted.partition, fetch_offset=wanted.fetch_offset,
                    partition_max_bytes=max(wanted.partition_max_bytes, 0),
                    current_leader_epoch=getattr(wanted, "current_leader_epoch", -1),
                )
        is_read_committed = body.isolation_level == READ_COMMITTED
        return self._fetch(schema, wire, slots, is_read_committed)

    async def _fetch(self, schema: type, wire: broker_pb2.FetchRequest, slots: list, is_read_committed: bool) -> Any:
        if not wire.partitions:
            return self.response(schema, slots, broker_pb2.FetchResponse(), is_read_committed, self._image())
        answer, regions = await self._data_plane.fetch_regions(wire)
        try:
            return self.response(schema, slots, answer, is_read_committed, self._image(), regions)
        except BaseException:
            close_regions(regions)
            raise

    def response(
        self, schema: type, slots: list, answer: broker_pb2.FetchResponse, is_read_committed: bool, image: MetadataImage,
        regions: list[FileRegion | None] | None = None,
    ) -> Any:
        """The Kafka response: `answer`'s results in request order (the fetch path keeps it), the
        records of result i being `regions[i]` when given and not None (a FileRegion the
        response then carries to the listener), else the result's bytes."""
        topic_type = codec.nested(schema, "FetchableTopicResponse")
        partition_type = codec.nested(schema, "PartitionData")
        leader_type = codec.nested(schema, "LeaderIdAndEpoch") if codec.has_field(partition_type, "current_leader") else None
        results = iter(enumerate(answer.results))
        by_topic: dict[Any, list] = {}
        leaders: set[int] = set()
        for key, number, decided in slots:
            fields: dict[str, Any] = {
                "partition_index": number, "high_watermark": -1, "last_stable_offset": -1, "log_start_offset": -1,
                "aborted_transactions": () if is_read_committed else None, "preferred_read_replica": -1, "records": b"",
            }
            if decided:
                fields["error_code"] = decided
            else:
                position, result = next(results)
                assert result.partition == number
                code = status.kafka_code(result.error.code)
                fields["error_code"] = code
                region = regions[position] if regions else None
                if code == 0:
                    fields.update(high_watermark=result.high_watermark, last_stable_offset=result.high_watermark,
                                  log_start_offset=result.log_start_offset, records=region or result.records)
                elif result.error.code == E.OFFSET_OUT_OF_RANGE:
                    fields["log_start_offset"] = result.log_start_offset
                if result.error.code in _LEADER_HINT_CODES and leader_type is not None and result.error.leader_id >= 0:
                    fields["current_leader"] = codec.build(
                        leader_type, leader_id=result.error.leader_id, leader_epoch=result.error.leader_epoch
                    )
                    leaders.add(result.error.leader_id)
            by_topic.setdefault(key, []).append(codec.build(partition_type, **fields))
        topics = tuple(
            codec.build(topic_type, topic=key, topic_id=key, partitions=tuple(partitions)) for key, partitions in by_topic.items()
        )
        endpoints = ()
        if leaders and codec.has_field(schema, "node_endpoints"):
            endpoint_type = codec.nested(schema, "NodeEndpoint")
            endpoints = tuple(
                codec.build(endpoint_type, node_id=node_id, host=host, port=port, rack=rack or None)
                for node_id, host, port, rack in kafka_brokers(image) if node_id in leaders
            )
        return codec.build(schema, throttle_time=0, error_code=0, session_id=0, responses=topics, node_endpoints=endpoints)


class ListOffsetsHandler:
    """ListOffsets v1-v10 (v0, the pre-0.10.1 offsets-before-time form, has no kio schema; v11's
    -6 "earliest pending upload" belongs to tiered storage, which Freshet does not have)."""

    api_key = 2
    name = "ListOffsets"
    versions = (1, 10)

    def __init__(self, data_plane: DataPlane, authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.TOPIC, (topic.name for topic in body.topics))
        schema = codec.response_schema(self.api_key, request.api_version)
        topic_type = codec.nested(schema, "ListOffsetsTopicResponse")
        partition_type = codec.nested(schema, "ListOffsetsPartitionResponse")
        wire = broker_pb2.ListOffsetsRequest()
        for topic in body.topics:
            if topic.name in refused:
                continue
            for query in topic.partitions:
                timestamp = query.timestamp
                if timestamp == EARLIEST_LOCAL_TIMESTAMP and request.api_version >= 8:
                    timestamp = EARLIEST_TIMESTAMP
                item = wire.partitions.add(topic=topic.name, partition=query.partition_index, timestamp=timestamp)
                epoch = getattr(query, "current_leader_epoch", -1)
                if epoch >= 0:
                    item.current_leader_epoch = epoch
        answer = self._data_plane.list_offsets(wire) if wire.partitions else broker_pb2.ListOffsetsResponse()
        results = iter(answer.results)
        topics = []
        for topic in body.topics:
            partitions = []
            for query in topic.partitions:
                if topic.name in refused:
                    partitions.append(codec.build(
                        partition_type, partition_index=query.partition_index, error_code=TOPIC_AUTHORIZATION_FAILED,
                        timestamp=-1, offset=-1, leader_epoch=-1,
                    ))
                    continue
                result = next(results)
                code = status.kafka_code(result.error.code)
                ok = code == 0
                partitions.append(codec.build(
                    partition_type,
                    partition_index=query.partition_index,
                    error_code=code,
                    timestamp=result.timestamp if ok else -1,
                    offset=result.offset if ok else -1,
                    leader_epoch=result.leader_epoch if ok else -1,
                ))
            topics.append(codec.build(topic_type, name=topic.name, partitions=tuple(partitions)))
        return codec.build(schema, throttle_time=0, topics=tuple(topics))
