"""Produce (key 0) and InitProducerId (key 22) over the Kafka protocol, through the broker's
produce path.

Owns the translation of a Kafka Produce request into the data plane's `ProducePath.produce`
(the very path the gRPC Produce takes: NOT_LEADER with the leader hint, one batch per partition,
min.insync.replicas, CRC and size validation and the idempotent-producer rules in storage, the
acks=all purgatory and its timeout) and of its answer back: per partition the error code (the
status table's Kafka code), base offset, log append time, log start offset, the error message
(v8+) and, for NOT_LEADER_OR_FOLLOWER, the new leader and its Kafka endpoint (v10+, KIP-951).
acks=0 gets no response; if it failed for any partition the connection is closed (Kafka's rule,
so that the client, which never hears of the error, refreshes its metadata).

A request's records for one partition must hold exactly one record batch, as on the gRPC path
(INVALID_RECORD otherwise): the Java client, librdkafka, kafka-python and aiokafka all send one
batch per partition per request, so splitting would serve no client we know of.

Produce v13 names topics by id (KIP-516): an id the image does not know is UNKNOWN_TOPIC_ID.

InitProducerId hands out non-transactional producer ids (epoch 0) from the broker's
`ProducerIdManager`. Transactions do not exist yet: a request with a transactional id is answered
at once with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, the one InitProducerId error that the Java
client and librdkafka treat as fatal at once (others are retried until init_transactions times
out), with a message saying why.

Imports: asyncio, time, freshet.metadata (image), freshet.server (broker, kafka, status, errors), wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.errors import AuthorizationError
from freshet.server.kafka import codec
from freshet.server.kafka.apis import CLOSE_CONNECTION, NO_RESPONSE
from freshet.server.kafka.metadata_api import kafka_brokers, topic_key_and_name
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import broker_pb2, common_pb2

E = common_pb2.ErrorCode
UNKNOWN_TOPIC_ID = 100
TOPIC_AUTHORIZATION_FAILED = 29
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
TRANSACTIONS_UNSUPPORTED_MESSAGE = (
    "transactions are not supported by this cluster (Freshet); use an idempotent producer without a transactional.id"
)


class _Slot:
    """One partition of a Kafka produce request and where its answer goes."""

    __slots__ = ("topic_key", "name", "index", "error", "message")

    def __init__(self, topic_key: Any, name: str | None, index: int, error: int = 0, message: str | None = None) -> None:
        self.topic_key = topic_key              # the name (v3-v12) or topic id (v13) as asked
        self.name = name                        # None: an unknown topic id
        self.index = index
        self.error = error                      # a Kafka code decided before the produce path
        self.message = message                  # its message


class ProduceHandler:
    """Produce v3-v13 (record batch format v2 only: v3 is the first version carrying it)."""

    api_key = 0
    name = "Produce"
    versions = (3, 13)

    def __init__(self, data_plane: DataPlane, image: Callable[[], MetadataImage], authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self._image = image
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._image()
        refused: dict[str, str] = {}
        if self.authorizer.enabled:
            names = (topic_key_and_name(topic, image)[1] for topic in body.topic_data)
            refused = rules.denials(self.authorizer, Operation.WRITE, ResourceType.TOPIC, (n for n in names if n is not None))
        slots: list[_Slot] = []
        wire = broker_pb2.ProduceRequest(
            acks=body.acks, timeout_ms=codec.milliseconds(body.timeout), client_id=request.client_id,
            correlation_id=request.correlation_id,
        )
        for topic in body.topic_data:
            key, name = topic_key_and_name(topic, image)
            for data in topic.partition_data:
                if name is None:
                    slots.append(_Slot(key, None, data.index, UNKNOWN_TOPIC_ID, f"unknown topic id {key}"))
                    continue
                if name in refused:
                    # Kafka: TOPIC_AUTHORIZATION_FAILED per partition, nothing of it appended.
                    slots.append(_Slot(key, name, data.index, TOPIC_AUTHORIZATION_FAILED, refused[name]))
                    continue
                slots.append(_Slot(key, name, data.index))
                wire.partitions.add(topic=name, partition=data.index, records=bytes(data.records or b""))
        answered: asyncio.Future | None = None if body.acks == 0 else asyncio.get_running_loop().create_future()
        outcome: list[broker_pb2.ProduceResponse] = []

        def done(response: broker_pb2.ProduceResponse) -> None:
            outcome.append(response)
            if answered is not None and not answered.done():
                answered.set_result(response)

        try:
            self._data_plane.produce(wire, done)
        except Exception as error:  # noqa: BLE001 - a refused request (acks, timeout): every partition gets its code
            code, message = status.kafka_error_of(error, self._data_plane.node_id)
            if body.acks == 0:
                return CLOSE_CONNECTION
            return self.response(request.api_version, slots, None, image, (code, message))
        if body.acks == 0:
            # acks=0 is answered synchronously by the produce path (nothing waits for replicas).
            failed = any(slot.error for slot in slots) or any(r.error.code != E.NONE for r in outcome[0].results)
            return CLOSE_CONNECTION if failed else NO_RESPONSE
        assert answered is not None
        return self._respond(request.api_version, slots, answered, image)

    async def _respond(self, api_version: int, slots: list[_Slot], answered: asyncio.Future, image: MetadataImage) -> Any:
        return self.response(api_version, slots, await answered, image, None)

    def response(
        self,
        api_version: int,
        slots: list[_Slot],
        answer: broker_pb2.ProduceResponse | None,
        image: MetadataImage,
        whole: tuple[int, str] | None,
    ) -> Any:
        """The Kafka response: `answer`'s results in request order (the produce path keeps it),
        or `whole` (code, message) for every partition of a refused request."""
        schema = codec.response_schema(self.api_key, api_version)
        topic_type = codec.nested(schema, "TopicProduceResponse")
        partition_type = codec.nested(schema, "PartitionProduceResponse")
        leader_type = codec.nested(schema, "LeaderIdAndEpoch") if codec.has_field(partition_type, "current_leader") else None
        results = iter(answer.results) if answer is not None else iter(())
        by_topic: dict[Any, list] = {}
        leaders: set[int] = set()
        for slot in slots:
            fields: dict[str, Any] = {"index": slot.index, "base_offset": -1, "log_append_time": -1,
                                      "log_start_offset": -1, "record_errors": ()}
            if slot.error:
                fields.update(error_code=slot.error, error_message=slot.message)
            elif whole is not None:
                fields.update(error_code=whole[0], error_message=whole[1])
            else:
                result = next(results)
                assert (result.topic, result.partition) == (slot.name, slot.index)
                code = status.kafka_code(result.error.code)
                fields["error_code"] = code
                if code == 0:
                    fields.update(base_offset=result.base_offset, log_append_time=result.log_append_time_ms,
                                  log_start_offset=result.log_start_offset)
                else:
                    fields["error_message"] = result.error.message or None
                    if result.error.code == E.NOT_LEADER and result.error.leader_id >= 0 and leader_type is not None:
                        fields["current_leader"] = codec.build(
                            leader_type, leader_id=result.error.leader_id, leader_epoch=result.error.leader_epoch
                        )
                        leaders.add(result.error.leader_id)
            by_topic.setdefault(slot.topic_key, []).append(codec.build(partition_type, **fields))
        topics = tuple(
            codec.build(topic_type, name=key, topic_id=key, partition_responses=tuple(partitions))
            for key, partitions in by_topic.items()
        )
        endpoints = ()
        if leaders and codec.has_field(schema, "node_endpoints"):
            endpoint_type = codec.nested(schema, "NodeEndpoint")
            endpoints = tuple(
                codec.build(endpoint_type, node_id=node_id, host=host, port=port, rack=rack or None)
                for node_id, host, port, rack in kafka_brokers(image) if node_id in leaders
            )
        return codec.build(schema, responses=topics, throttle_time=0, node_endpoints=endpoints)


class InitProducerIdHandler:
    """InitProducerId v0-v5: non-transactional producer ids (module docstring)."""

    api_key = 22
    name = "InitProducerId"
    versions = (0, 5)

    def __init__(self, data_plane: DataPlane, request_timeout_ms: int, authorizer: Authorizer | None = None) -> None:
        self._data_plane = data_plane
        self._request_timeout_ms = request_timeout_ms
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        if request.body.transactional_id is not None:
            return codec.build(schema, throttle_time=0, error_code=TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                               producer_id=-1, producer_epoch=-1)
        try:
            rules.check_idempotent_write(self.authorizer)
        except AuthorizationError as error:
            return codec.build(schema, throttle_time=0, error_code=error.error_code, producer_id=-1, producer_epoch=-1)
        return self._new_id(schema)

    async def _new_id(self, schema: type) -> Any:
        deadline = time.monotonic() + self._request_timeout_ms / 1000
        try:
            producer_id = await self._data_plane.producer_ids.next_id(deadline)
        except Exception as error:  # noqa: BLE001 - the controller's or the deadline's error, as a code
            code, _ = status.kafka_error_of(error, self._data_plane.node_id)
            return codec.build(schema, throttle_time=0, error_code=code, producer_id=-1, producer_epoch=-1)
        return codec.build(schema, throttle_time=0, error_code=0, producer_id=producer_id, producer_epoch=0)
