"""Kafka's topic and partition admin APIs, translated into the controller's requests.

Owns CreateTopics (19), DeleteTopics (20), CreatePartitions (37), ElectLeaders (43),
AlterPartitionReassignments (45) and ListPartitionReassignments (46) over the Kafka protocol, and
`ControllerLink`, the one way the Kafka front-end changes metadata: every write becomes the
freshet.v1.Controller request the gRPC path sends (proto/freshet/v1/controller.proto) and is
forwarded to the active controller (`channels.forward`, KIP-590) with a fresh request id, so
forwarding retries apply it at most once. After a write the answer waits, within the request's
timeout, until this broker's image reached the write's metadata offset, so a Metadata right after
CreateTopics shows the topic. ListPartitionReassignments reads this broker's image, as the gRPC
service does.

What the controller checks (names, replication factor, placement, configs, reassignment
targets) it alone decides; this module only refuses what the controller request cannot express
(Kafka's own request rules: an assignment together with a partition count, duplicate names, an
empty replica list, a replication-factor change a v1 reassignment forbids). Errors become Kafka
error codes through `freshet.server.status` (`kafka_code`, `kafka_error_of`), with the
controller's message. No controller before the request's timeout: REQUEST_TIMED_OUT, as a KRaft
broker answers; a request never waits past its timeout_ms (the node's request timeout when the
client gives none).

Imports: time, uuid, kio, freshet.metadata (commands, controller logic, image),
freshet.server (cluster, errors, kafka, status), wire types. Never controller or http.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.image import MetadataImage
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server import status
from freshet.server.cluster.channels import ControllerChannels, forward
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.errors import ServerError
from freshet.server.kafka import codec
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2, controller_pb2
from kio.schema.errors import ErrorCode

ZERO_UUID = uuid.UUID(int=0)
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
NO_VALUE = -1                                    # Kafka's "broker default" partitions / RF


class _Refused(Exception):  # noqa: N818 - a refusal, not an error of the node
    """One item of a Kafka request refused before (or instead of) reaching the controller.

    Private to the Kafka admin modules (admin_api, config_api): raised and caught within one
    handler, it never leaves it, so it is no domain error and has no row in server/status.py."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def detail_error(detail: common_pb2.ErrorDetail) -> tuple[int, str | None]:
    """(Kafka error code, message; None on success) of a controller's per-item ErrorDetail."""
    if detail.code == common_pb2.NONE:
        return 0, None
    return status.kafka_code(detail.code), detail.message or None


class ControllerLink:
    """The Kafka front-end's path to the active controller and to this broker's image (module
    docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        node_id: int,
        channels: ControllerChannels,
        controller_hint: Callable[[], int | None],
        publisher: MetadataPublisher,
        request_timeout_ms: int,
        static_broker_configs=None,
    ) -> None:
        assert request_timeout_ms > 0
        self.node_id = node_id
        self._channels = channels
        self._hint = controller_hint
        self._publisher = publisher
        self._request_timeout_ms = request_timeout_ms
        self.static_broker_configs = dict(static_broker_configs or {})

    @property
    def image(self) -> MetadataImage:
        return self._publisher.image

    async def call(self, method: str, request, timeout_ms: int):
        """Forward `request` to the active controller's `method`; wait for this broker's image to
        reach the answer's metadata offset. Both within `timeout_ms` (<= 0: the node's request
        timeout; Kafka's clients always send one).

        Raises:
            ServerError: ForwardedError (the controller refused the whole request),
                NotControllerError (no controller answered in time), RequestTimedOutError.
        """
        timeout_s = (timeout_ms if timeout_ms > 0 else self._request_timeout_ms) / 1000
        deadline = time.monotonic() + timeout_s
        response = await forward(self._channels, method, request, deadline, self._hint, skip_self=False)
        offset = getattr(response, "metadata_offset", 0)
        if offset > 0:
            await self._publisher.wait_for_offset(offset, max(0.0, deadline - time.monotonic()))
        return response

    async def call_for(
        self, method: str, request, timeout_ms: int, asked: list[int], refused: dict[int, tuple[int, str]]
    ) -> dict[int, Any]:
        """`call` for the request items `asked` (indexes into the Kafka request, in the order of
        the controller request's items): their results by index; when the whole call fails, every
        asked index gets the failure in `refused` instead."""
        if not asked:
            return {}
        try:
            response = await self.call(method, request, timeout_ms)
        except ServerError as error:
            failure = self.error_of(error)
            refused.update({index: failure for index in asked})
            return {}
        return dict(zip(asked, response.results, strict=True))

    def error_of(self, error: Exception) -> tuple[int, str]:
        """(Kafka error code, message) of a whole-request failure."""
        return status.kafka_error_of(error, self.node_id)


def _duplicates(names: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for name in names:
        (twice if name in seen else seen).add(name)
    return twice


# -- CreateTopics ----------------------------------------------------------------------------------


def creatable_topic(topic) -> controller_pb2.CreatableTopic:
    """The controller's CreatableTopic of a Kafka CreatableTopic (-1: the cluster's default).

    Raises:
        _Refused: Kafka's request rules (assignments with a count, gaps in partition indexes,
            null config values).
    """
    result = controller_pb2.CreatableTopic(name=topic.name)
    if topic.assignments:
        if topic.num_partitions != NO_VALUE or topic.replication_factor != NO_VALUE:
            raise _Refused(
                ErrorCode.invalid_request,
                "both numPartitions or replicationFactor and replicasAssignments were set; give only the assignments",
            )
        ordered = sorted(topic.assignments, key=lambda a: a.partition_index)
        if [a.partition_index for a in ordered] != list(range(len(ordered))):
            raise _Refused(
                ErrorCode.invalid_replica_assignment,
                "partitions should be a consecutive 0-based integer sequence",
            )
        for assignment in ordered:
            result.assignments.add(replicas=list(assignment.broker_ids))
    else:
        if topic.num_partitions != NO_VALUE:
            result.num_partitions = topic.num_partitions
        if topic.replication_factor != NO_VALUE:
            result.replication_factor = topic.replication_factor
    for config in topic.configs:
        if config.value is None:
            raise _Refused(ErrorCode.invalid_config, f"null value not supported for topic config {config.name!r}")
        result.configs.add(key=config.name, value=config.value)
    return result


class CreateTopicsHandler:
    """CreateTopics v2-v7: per topic, the controller's result; v5+ with the partition count,
    replication factor and effective configs (also for validate_only), v7 with the topic id."""

    api_key = 19
    name = "CreateTopics"
    versions = (2, 7)

    def __init__(
        self,
        link: ControllerLink,
        topic_configs: Callable[[MetadataImage, dict[str, str]], list],
        authorizer: Authorizer | None = None,
    ) -> None:
        """`topic_configs(image, topic values)` gives a new topic's effective configs as
        (key, value, Kafka config source, read only) (config_api.topic_config_entries)."""
        self._link = link
        self._topic_configs = topic_configs
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        refused: dict[int, tuple[int, str | None]] = {}
        asked: list[int] = []
        outgoing = controller_pb2.CreateTopicsRequest(request_id=commands.new_request_id(), validate_only=body.validate_only)
        denied = rules.create_denials(self.authorizer, (topic.name for topic in body.topics))
        for index, topic in enumerate(body.topics):
            if topic.name in denied:
                refused[index] = (TOPIC_AUTHORIZATION_FAILED, denied[topic.name])
                continue
            try:
                outgoing.topics.append(creatable_topic(topic))
                asked.append(index)
            except _Refused as error:
                refused[index] = (error.code, error.message)
        answered: dict[int, controller_pb2.CreateTopicResult] = await self._link.call_for(
            "CreateTopics", outgoing, codec.milliseconds(body.timeout), asked, refused
        )
        return self.response(request.api_version, body, refused, answered)

    def response(self, api_version: int, body, refused: dict, answered: dict) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        result_type = codec.nested(schema, "CreatableTopicResult")
        config_type = codec.nested(schema, "CreatableTopicConfigs") if codec.has_field(result_type, "configs") else None
        image = self._link.image
        topics = []
        for index, topic in enumerate(body.topics):
            result = answered.get(index)
            if result is None:
                code, message = refused[index]
                topics.append(codec.build(
                    result_type, name=topic.name, topic_id=ZERO_UUID, error_code=code, error_message=message,
                    topic_config_error_code=0, num_partitions=NO_VALUE, replication_factor=NO_VALUE, configs=(),
                ))
                continue
            code, message = detail_error(result.error)
            configs: tuple = ()
            if code == 0 and config_type is not None:
                values = {config.name: config.value for config in topic.configs}
                configs = tuple(
                    codec.build(config_type, name=key, value=value, read_only=read_only, config_source=source, is_sensitive=False)
                    for key, value, source, read_only in self._topic_configs(image, values)
                )
            topics.append(codec.build(
                result_type,
                name=topic.name,
                topic_id=uuid.UUID(bytes=bytes(result.topic_id)) if result.topic_id else ZERO_UUID,
                error_code=code,
                error_message=message,
                topic_config_error_code=0,
                num_partitions=result.num_partitions if code == 0 else NO_VALUE,
                replication_factor=result.replication_factor if code == 0 else NO_VALUE,
                configs=configs,
            ))
        return codec.build(schema, throttle_time=0, topics=tuple(topics))


# -- DeleteTopics ----------------------------------------------------------------------------------


class DeleteTopicsHandler:
    """DeleteTopics v1-v6: by name, and (v6) by topic id, named from this broker's image."""

    api_key = 20
    name = "DeleteTopics"
    versions = (1, 6)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    def _targets(self, body, api_version: int) -> list[tuple[str | None, uuid.UUID]]:
        """(name, topic id) per requested topic (v6 lists either; older versions names only)."""
        if api_version < 6:
            return [(name, ZERO_UUID) for name in body.topic_names]
        return [(topic.name, topic.topic_id or ZERO_UUID) for topic in body.topics]

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._link.image
        targets = self._targets(body, request.api_version)
        names: list[str | None] = []
        refused: dict[int, tuple[int, str]] = {}
        for index, (name, topic_id) in enumerate(targets):
            if name is not None and topic_id != ZERO_UUID:
                refused[index] = (ErrorCode.invalid_request, "give a topic's name or its id, not both")
            elif name is None:
                found = image.topic_by_id(topic_id.bytes)
                if found is None:
                    refused[index] = (ErrorCode.unknown_topic_id, f"no topic has id {topic_id}")
                name = None if found is None else found.name
            names.append(name)
        for name in _duplicates(n for n in names if n is not None):
            for index, candidate in enumerate(names):
                if candidate == name:
                    refused[index] = (ErrorCode.invalid_request, f"topic {name!r} appears more than once in the request")
        denied = rules.denials(self.authorizer, Operation.DELETE, ResourceType.TOPIC, (n for n in names if n is not None))
        for index, name in enumerate(names):
            if name in denied and index not in refused:
                refused[index] = (TOPIC_AUTHORIZATION_FAILED, denied[name])
        asked = [index for index in range(len(targets)) if index not in refused]
        outgoing = controller_pb2.DeleteTopicsRequest(
            request_id=commands.new_request_id(), names=[names[index] for index in asked]
        )
        answered: dict[int, controller_pb2.DeleteTopicResult] = await self._link.call_for(
            "DeleteTopics", outgoing, codec.milliseconds(body.timeout), asked, refused
        )
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "DeletableTopicResult")
        results = []
        for index, (_, topic_id) in enumerate(targets):
            result = answered.get(index)
            if result is None:
                code, message = refused[index]
            else:
                code, message = detail_error(result.error)
                if result.topic_id:
                    topic_id = uuid.UUID(bytes=bytes(result.topic_id))
            results.append(codec.build(
                result_type, name=names[index], topic_id=topic_id, error_code=code, error_message=message,
            ))
        return codec.build(schema, throttle_time=0, responses=tuple(results))


# -- CreatePartitions ------------------------------------------------------------------------------


class CreatePartitionsHandler:
    """CreatePartitions v0-v3: the new total count, optionally the new partitions' replicas."""

    api_key = 37
    name = "CreatePartitions"
    versions = (0, 3)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        twice = _duplicates(topic.name for topic in body.topics)
        refused: dict[int, tuple[int, str]] = {}
        asked: list[int] = []
        outgoing = controller_pb2.CreatePartitionsRequest(request_id=commands.new_request_id(), validate_only=body.validate_only)
        denied = rules.denials(self.authorizer, Operation.ALTER, ResourceType.TOPIC, (topic.name for topic in body.topics))
        for index, topic in enumerate(body.topics):
            if topic.name in twice:
                refused[index] = (ErrorCode.invalid_request, f"topic {topic.name!r} appears more than once in the request")
                continue
            if topic.name in denied:
                refused[index] = (TOPIC_AUTHORIZATION_FAILED, denied[topic.name])
                continue
            increase = outgoing.topics.add(topic=topic.name, count=topic.count)
            for assignment in topic.assignments or ():
                increase.assignments.add(replicas=list(assignment.broker_ids))
            asked.append(index)
        answered: dict[int, controller_pb2.CreatePartitionsResult] = await self._link.call_for(
            "CreatePartitions", outgoing, codec.milliseconds(body.timeout), asked, refused
        )
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "CreatePartitionsTopicResult")
        results = []
        for index, topic in enumerate(body.topics):
            result = answered.get(index)
            code, message = refused[index] if result is None else detail_error(result.error)
            results.append(codec.build(result_type, name=topic.name, error_code=code, error_message=message))
        return codec.build(schema, throttle_time=0, results=tuple(results))


# -- ElectLeaders ----------------------------------------------------------------------------------

PREFERRED = 0
UNCLEAN = 1
_ELECTION_TYPES = {PREFERRED: controller_pb2.ELECTION_PREFERRED, UNCLEAN: controller_pb2.ELECTION_UNCLEAN}


class ElectLeadersHandler:
    """ElectLeaders v0-v2: preferred (v0: always) or unclean, of the given partitions or, with
    null topic_partitions, of every partition (then only the partitions that got a new leader
    are reported, as Kafka)."""

    api_key = 43
    name = "ElectLeaders"
    versions = (0, 2)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        kind = getattr(body, "election_type", PREFERRED)
        asked = [] if body.topic_partitions is None else [
            (topic.topic, number) for topic in body.topic_partitions for number in topic.partitions
        ]
        denied = rules.denials(self.authorizer, Operation.ALTER, ResourceType.CLUSTER, (CLUSTER_NAME,))
        if denied:
            message = denied[CLUSTER_NAME]
            return self.response(
                request.api_version, CLUSTER_AUTHORIZATION_FAILED, [(tp, CLUSTER_AUTHORIZATION_FAILED, message) for tp in asked]
            )
        if kind not in _ELECTION_TYPES:
            message = f"election type {kind} is neither preferred (0) nor unclean (1)"
            return self.response(request.api_version, ErrorCode.invalid_request, [(tp, ErrorCode.invalid_request, message) for tp in asked])
        if body.topic_partitions is not None and not asked:
            return self.response(request.api_version, 0, [])
        outgoing = controller_pb2.ElectLeadersRequest(
            request_id=commands.new_request_id(),
            type=_ELECTION_TYPES[kind],
            partitions=[common_pb2.TopicPartition(topic=topic, partition=number) for topic, number in asked],
        )
        try:
            response = await self._link.call("ElectLeaders", outgoing, codec.milliseconds(body.timeout))
        except ServerError as error:
            code, message = self._link.error_of(error)
            return self.response(request.api_version, code, [(tp, code, message) for tp in asked])
        results = []
        for result in response.results:
            code, message = detail_error(result.error)
            results.append(((result.partition.topic, result.partition.partition), code, message))
        return self.response(request.api_version, 0, results)

    def response(self, api_version: int, error_code: int, results: list) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        topic_type = codec.nested(schema, "ReplicaElectionResult")
        partition_type = codec.nested(schema, "PartitionResult")
        by_topic: dict[str, list] = {}
        for (topic, number), code, message in results:
            by_topic.setdefault(topic, []).append(
                codec.build(partition_type, partition_id=number, error_code=code, error_message=message)
            )
        topics = tuple(
            codec.build(topic_type, topic=topic, partition_result=tuple(partitions)) for topic, partitions in by_topic.items()
        )
        return codec.build(schema, throttle_time=0, error_code=error_code, replica_election_results=topics)


# -- Reassignments ---------------------------------------------------------------------------------


class AlterPartitionReassignmentsHandler:
    """AlterPartitionReassignments v0-v1: start moving partitions to new replicas, or cancel
    (null replicas); v1's allow_replication_factor_change=false refuses a different count of
    replicas (KIP-860)."""

    api_key = 45
    name = "AlterPartitionReassignments"
    versions = (0, 1)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    def _check(self, image: MetadataImage, topic: str, partition, allow_rf_change: bool) -> None:
        """Kafka's request rules the controller request cannot express.

        Raises:
            _Refused: an empty replica list, or a replication-factor change that is not allowed.
        """
        if partition.replicas is None:
            return
        if not partition.replicas:
            raise _Refused(ErrorCode.invalid_replica_assignment, "the replica list is empty; give null to cancel")
        current = image.partition(topic, partition.partition_index)
        if allow_rf_change or current is None:
            return                                   # an unknown partition: the controller says so
        original = len(current.original_replicas)
        if len(partition.replicas) != original:
            raise _Refused(
                ErrorCode.invalid_replication_factor,
                f"the replication factor is changed from {original} to {len(partition.replicas)} "
                "but allow_replication_factor_change is false",
            )

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        allow_rf_change = getattr(body, "allow_replication_factor_change", True)
        image = self._link.image
        items = [(topic.name, partition) for topic in body.topics for partition in topic.partitions]
        refused: dict[int, tuple[int, str]] = {}
        asked: list[int] = []
        outgoing = controller_pb2.AlterPartitionReassignmentsRequest(request_id=commands.new_request_id())
        top_code, top_message = 0, None
        denied = rules.denials(self.authorizer, Operation.ALTER, ResourceType.CLUSTER, (CLUSTER_NAME,))
        if denied:
            # Kafka: the whole request, top-level and every partition.
            top_code, top_message = CLUSTER_AUTHORIZATION_FAILED, denied[CLUSTER_NAME]
            refused = {index: (top_code, top_message) for index in range(len(items))}
        for index, (topic, partition) in enumerate(items):
            if denied:
                break
            try:
                self._check(image, topic, partition, allow_rf_change)
            except _Refused as error:
                refused[index] = (error.code, error.message)
                continue
            outgoing.reassignments.add(
                partition=common_pb2.TopicPartition(topic=topic, partition=partition.partition_index),
                target_replicas=list(partition.replicas or ()),
            )
            asked.append(index)
        answered: dict[int, controller_pb2.ReassignmentResult] = {}
        if asked:
            try:
                response = await self._link.call("AlterPartitionReassignments", outgoing, codec.milliseconds(body.timeout))
            except ServerError as error:
                top_code, top_message = self._link.error_of(error)
                refused.update({index: (top_code, top_message) for index in asked})
            else:
                answered = dict(zip(asked, response.results, strict=True))
        schema = codec.response_schema(self.api_key, request.api_version)
        topic_type = codec.nested(schema, "ReassignableTopicResponse")
        partition_type = codec.nested(schema, "ReassignablePartitionResponse")
        by_topic: dict[str, list] = {}
        for index, (topic, partition) in enumerate(items):
            result = answered.get(index)
            code, message = refused[index] if result is None else detail_error(result.error)
            by_topic.setdefault(topic, []).append(
                codec.build(partition_type, partition_index=partition.partition_index, error_code=code, error_message=message)
            )
        return codec.build(
            schema,
            throttle_time=0,
            allow_replication_factor_change=allow_rf_change,
            error_code=top_code,
            error_message=top_message,
            responses=tuple(codec.build(topic_type, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()),
        )


class ListPartitionReassignmentsHandler:
    """ListPartitionReassignments v0, from this broker's image (as the gRPC service): the
    reassignments in progress of the given partitions (unknown ones are left out, as Kafka) or,
    with null topics, of every partition."""

    api_key = 46
    name = "ListPartitionReassignments"
    versions = (0, 0)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._link.image
        denied = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.CLUSTER, (CLUSTER_NAME,))
        if denied:
            schema = codec.response_schema(self.api_key, request.api_version)
            return codec.build(
                schema, throttle_time=0, error_code=CLUSTER_AUTHORIZATION_FAILED, error_message=denied[CLUSTER_NAME], topics=()
            )
        if body.topics is None:
            wanted = list(logic.all_partitions(image))
        else:
            wanted = []
            for topic in body.topics:
                for number in topic.partition_indexes:
                    try:
                        wanted.append(logic.partition_of(image, topic.name, number))
                    except ControllerRequestError:
                        continue
        schema = codec.response_schema(self.api_key, request.api_version)
        topic_type = codec.nested(schema, "OngoingTopicReassignment")
        partition_type = codec.nested(schema, "OngoingPartitionReassignment")
        by_topic: dict[str, list] = {}
        for topic, partition in wanted:
            if not partition.is_reassigning:
                continue
            by_topic.setdefault(topic.name, []).append(codec.build(
                partition_type,
                partition_index=partition.partition,
                replicas=tuple(partition.replicas),
                adding_replicas=tuple(partition.adding_replicas),
                removing_replicas=tuple(partition.removing_replicas),
            ))
        topics = tuple(codec.build(topic_type, name=name, partitions=tuple(parts)) for name, parts in sorted(by_topic.items()))
        return codec.build(schema, throttle_time=0, error_code=0, error_message=None, topics=topics)
