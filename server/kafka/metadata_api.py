"""Metadata (key 3) and DescribeCluster (key 60) over the Kafka protocol, from the broker's image.

Owns the Kafka view of the cluster: brokers are the unfenced ones that registered a Kafka
listener, at its advertised address (a client connects to what it is given here); every broker
answers admin requests (it forwards them to the active controller, KIP-590), so the "controller"
a Kafka client sees is this broker, as KRaft brokers answer; topics with their ids, partitions
with leader, leader epoch, replicas, ISR and offline replicas; LEADER_NOT_AVAILABLE for a
partition without a leader (or whose leader has no Kafka listener), UNKNOWN_TOPIC_OR_PARTITION
for a requested topic that does not exist — unless the request allows auto-creation and the
broker's `auto.create.topics.enable` is on, in which case it is created through the controller
first, as the gRPC Metadata does (server/broker/service.py `auto_create_topics`).

Imports: uuid, freshet.metadata (image, topic rules), freshet.server (broker, config, kafka).
Thread-safety: not thread-safe (loop).
"""

from __future__ import annotations

import uuid
from typing import Any

from freshet.metadata import controller as logic
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server.config import KAFKA_LISTENER
from freshet.server.kafka import codec
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer

UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
#: Kafka's "authorized operations not requested" sentinel.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


def kafka_brokers(image: MetadataImage) -> list[tuple[int, str, int, str]]:
    """(node id, Kafka host, Kafka port, rack) of every unfenced broker with a Kafka listener."""
    brokers = []
    for node_id in image.active_broker_ids():
        broker = image.brokers[node_id]
        endpoint = broker.listener(KAFKA_LISTENER)
        if endpoint is not None:
            brokers.append((node_id, endpoint[0], endpoint[1], broker.rack))
    return brokers


def topic_uuid(topic_id: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(topic_id))


def topic_key_and_name(topic: Any, image: MetadataImage, name_field: str = "name") -> tuple[Any, str | None]:
    """How a request entry names its topic (its id on versions that use topic ids, else its name),
    and the topic's name (None for an unknown id)."""
    if codec.has_field(type(topic), "topic_id"):
        found = image.topics_by_id.get(topic.topic_id.bytes)
        return topic.topic_id, (found.name if found is not None else None)
    name = getattr(topic, name_field)
    return name, name


def requested_names(body, api_version: int, image: MetadataImage) -> list[str] | None:
    """The topic names a Metadata request asks for; None for every topic (null topics, or an
    empty list at v0). A topic asked by id only (v10+) is named from the image ("" when unknown)."""
    if body.topics is None or (api_version == 0 and not body.topics):
        return None
    names = []
    for topic in body.topics:
        if topic.name is not None:
            names.append(topic.name)
            continue
        found = image.topics_by_id.get(getattr(topic, "topic_id", uuid.UUID(int=0)).bytes)
        names.append(found.name if found is not None else "")
    return names


class MetadataHandler:
    """Metadata v0-v12."""

    api_key = 3
    name = "Metadata"
    versions = (0, 12)

    def __init__(self, node_id: int, image, auto_create, authorizer: Authorizer | None = None, may_auto_create=None) -> None:
        """`image()` is the broker's current MetadataImage; `auto_create(names)` an awaitable that
        creates topics when the broker allows it (returns whether it tried); `may_auto_create()`
        whether it does (auto.create.topics.enable), for the Create check."""
        self._node_id = node_id
        self._image = image
        self._auto_create = auto_create
        self._may_auto_create = may_auto_create or (lambda: True)
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._image()
        names = requested_names(body, request.api_version, image)
        authorizer = self.authorizer
        # Kafka: asked topics without Describe answer TOPIC_AUTHORIZATION_FAILED (before their
        # existence is looked at); auto-creating one needs Create (cluster, else the topic).
        refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.TOPIC, names or ())
        if names and getattr(body, "allow_auto_topic_creation", True):
            missing = [name for name in names if name not in refused and image.topic(name) is None]
            if missing and authorizer.enabled and self._may_auto_create():
                not_creatable = rules.create_denials(authorizer, missing)
                refused.update(not_creatable)
                missing = [name for name in missing if name not in not_creatable]
            if missing and await self._auto_create(missing):
                image = self._image()
        if names is None and authorizer.enabled:
            names = authorizer.filter(Operation.DESCRIBE, ResourceType.TOPIC, image.topic_names())
        return self.response(request.api_version, image, names, refused)

    def response(self, api_version: int, image: MetadataImage, names: list[str] | None, refused: dict[str, str] | None = None) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        broker_type = codec.nested(schema, "MetadataResponseBroker")
        brokers = tuple(
            codec.build(broker_type, node_id=node_id, host=host, port=port, rack=rack or None)
            for node_id, host, port, rack in kafka_brokers(image)
        )
        if names is None:
            names = [name for name in image.topic_names()]
        live = {node_id for node_id, _, _, _ in kafka_brokers(image)}
        topic_type = codec.nested(schema, "MetadataResponseTopic")
        topics = tuple(
            codec.build(
                topic_type, error_code=TOPIC_AUTHORIZATION_FAILED, name=name, topic_id=uuid.UUID(int=0),
                is_internal=False, partitions=(), topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
            ) if refused and name in refused else self._topic(schema, image, name, live)
            for name in names
        )
        return codec.build(
            schema,
            throttle_time=0,
            brokers=brokers,
            cluster_id=image.cluster_id or None,
            controller_id=self._node_id,
            topics=topics,
            cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )

    def _topic(self, schema: type, image: MetadataImage, name: str, live: set[int]) -> Any:
        topic_type = codec.nested(schema, "MetadataResponseTopic")
        partition_type = codec.nested(schema, "MetadataResponsePartition")
        topic = image.topic(name)
        if topic is None:
            return codec.build(
                topic_type, error_code=UNKNOWN_TOPIC_OR_PARTITION, name=name, topic_id=uuid.UUID(int=0),
                is_internal=False, partitions=(), topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
            )
        partitions = []
        for partition in topic.partitions:
            offline = tuple(r for r in partition.replicas if r not in live)
            has_leader = partition.leader != NO_LEADER and partition.leader in live
            partitions.append(
                codec.build(
                    partition_type,
                    error_code=0 if has_leader else LEADER_NOT_AVAILABLE,
                    partition_index=partition.partition,
                    leader_id=partition.leader if has_leader else -1,
                    leader_epoch=partition.leader_epoch,
                    replica_nodes=tuple(partition.replicas),
                    isr_nodes=tuple(partition.isr),
                    offline_replicas=offline,
                )
            )
        return codec.build(
            topic_type,
            error_code=0,
            name=name,
            topic_id=topic_uuid(topic.topic_id),
            is_internal=logic.is_internal_topic(name),
            partitions=tuple(partitions),
            topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )


#: DescribeCluster endpoint types (KIP-919): what a broker answers about.
ENDPOINT_BROKERS = 1
UNSUPPORTED_ENDPOINT_TYPE = 115


class DescribeClusterHandler:
    """DescribeCluster v0-v2, from the broker's image, consistent with Metadata: the brokers with
    a Kafka listener at their Kafka address (v2 with include_fenced_brokers: the fenced ones too,
    marked), the cluster id, and this broker as the controller (it forwards admin requests).
    Controller endpoints (v1+ endpoint_type 2) are UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker
    answers: controllers serve no Kafka listener."""

    api_key = 60
    name = "DescribeCluster"
    versions = (0, 2)

    def __init__(self, node_id: int, image, authorizer: Authorizer | None = None) -> None:
        self._node_id = node_id
        self._image = image
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._image()
        schema = codec.response_schema(self.api_key, request.api_version)
        denied = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.CLUSTER, (CLUSTER_NAME,))
        if denied:
            return codec.build(
                schema, throttle_time=0, error_code=CLUSTER_AUTHORIZATION_FAILED, error_message=denied[CLUSTER_NAME],
                endpoint_type=getattr(body, "endpoint_type", ENDPOINT_BROKERS), cluster_id=image.cluster_id,
                controller_id=-1, brokers=(), cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
            )
        endpoint_type = getattr(body, "endpoint_type", ENDPOINT_BROKERS)
        if endpoint_type != ENDPOINT_BROKERS:
            return codec.build(
                schema, throttle_time=0, error_code=UNSUPPORTED_ENDPOINT_TYPE,
                error_message=f"endpoint type {endpoint_type}: a broker describes brokers (1) only",
                endpoint_type=endpoint_type, cluster_id=image.cluster_id, controller_id=-1, brokers=(),
                cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
            )
        broker_type = codec.nested(schema, "DescribeClusterBroker")
        brokers = [
            codec.build(broker_type, broker_id=node_id, host=host, port=port, rack=rack or None, is_fenced=False)
            for node_id, host, port, rack in kafka_brokers(image)
        ]
        if getattr(body, "include_fenced_brokers", False):
            active = set(image.active_broker_ids())
            for node_id in sorted(image.brokers):
                broker = image.brokers[node_id]
                endpoint = broker.listener(KAFKA_LISTENER)
                if node_id not in active and endpoint is not None:
                    brokers.append(codec.build(
                        broker_type, broker_id=node_id, host=endpoint[0], port=endpoint[1], rack=broker.rack or None,
                        is_fenced=True,
                    ))
        return codec.build(
            schema,
            throttle_time=0,
            error_code=0,
            error_message=None,
            endpoint_type=ENDPOINT_BROKERS,
            cluster_id=image.cluster_id,
            controller_id=self._node_id,
            brokers=tuple(sorted(brokers, key=lambda broker: broker.broker_id)),
            cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )
