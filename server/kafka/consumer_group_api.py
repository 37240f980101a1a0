"""ConsumerGroupHeartbeat (key 68, KIP-848) over the Kafka protocol, on Freshet's group coordinator.

Owns the translation of a Kafka KIP-848 heartbeat into the coordinator's one heartbeat path
(`GroupCoordinator.heartbeat`, the path the gRPC Group service and the Freshet SDK use: the same
`ConsumerGroup` objects, assignors, reconciliation and persistence) and of its answer back.

Mapping:
- member id: v1+ the client generates it (empty is INVALID_REQUEST); v0 the coordinator gives
  one to a member joining with an empty id;
- "null: unchanged since the last heartbeat" fields (instance id, rack, rebalance timeout -1,
  subscribed topic names and regex, owned partitions) become the coordinator's "not sent";
- server assignor: Kafka's "range" and "uniform" are the coordinator's assignors of the same
  names; any other is UNSUPPORTED_ASSIGNOR;
- owned partitions and the assignment name topics by id (KIP-516): ids are mapped to names and
  back through the broker's metadata image. An owned partition of a topic id the image does not
  know (a deleted topic) is dropped: no one can be assigned it any more;
- the session timeout is the broker's (group.consumer.session.timeout.ms): Kafka's request has
  none.
Request validation follows Kafka's GroupMetadataManager (INVALID_REQUEST with the same reasons);
coordinator errors (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, GROUP_MAX_SIZE_REACHED, ...) leave with their Kafka codes through
`status.kafka_error_of`.

Kafka members and Freshet SDK members may share one group: both are KIP-848 server-side members
of the same `ConsumerGroup` and differ only in how topics are named on the wire.

Imports: logging, freshet.server (groups, kafka, status), freshet.v1, freshet.metadata (image).
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.errors import InvalidRequestError, UnsupportedAssignorError
from freshet.server.groups import assignors as group_assignors
from freshet.server.groups import state as group_state
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.server.kafka import codec
from freshet.server.kafka.metadata_api import topic_uuid
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2, group_pb2

logger = logging.getLogger(__name__)

#: The first version whose member ids the client generates (KIP-1082).
CLIENT_MEMBER_ID_VERSION = 1


def _validate(body: Any, api_version: int) -> None:
    """Kafka's checks of a heartbeat (GroupMetadataManager.throwIfConsumerGroupHeartbeatRequestIsInvalid).

    Raises:
        InvalidRequestError, UnsupportedAssignorError.
    """
    regex = getattr(body, "subscribed_topic_regex", None)
    if api_version >= CLIENT_MEMBER_ID_VERSION and not body.member_id:
        raise InvalidRequestError("MemberId can't be empty.")
    if not body.group_id:
        raise InvalidRequestError("GroupId can't be empty.")
    if body.rack_id is not None and not body.rack_id:
        raise InvalidRequestError("RackId can't be empty.")
    if body.instance_id is not None and not body.instance_id:
        raise InvalidRequestError("InstanceId can't be empty.")
    epoch = body.member_epoch
    if epoch > 0 or epoch == group_state.LEAVE_EPOCH:
        if not body.member_id:
            raise InvalidRequestError("MemberId can't be empty.")
    elif epoch == group_state.JOIN_EPOCH:
        if codec.milliseconds(body.rebalance_timeout) == -1:
            raise InvalidRequestError("RebalanceTimeoutMs must be provided in first request.")
        if body.topic_partitions is None or body.topic_partitions:
            raise InvalidRequestError("TopicPartitions must be empty when (re-)joining.")
        if not body.subscribed_topic_names and not regex:
            raise InvalidRequestError("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
    elif epoch == group_state.STATIC_LEAVE_EPOCH:
        if body.instance_id is None:
            raise InvalidRequestError("InstanceId can't be null.")
    else:
        raise InvalidRequestError("MemberEpoch is invalid.")
    if body.server_assignor is not None and body.server_assignor not in group_assignors.ASSIGNORS:
        raise UnsupportedAssignorError(
            f"ServerAssignor {body.server_assignor} is not supported. Supported assignors: "
            f"{', '.join(group_assignors.ASSIGNORS)}."
        )


def to_coordinator_request(body: Any, image: MetadataImage) -> group_pb2.ConsumerGroupHeartbeatRequest:
    """The coordinator's heartbeat request for a (validated) Kafka one."""
    regex = getattr(body, "subscribed_topic_regex", None)
    rebalance_timeout_ms = codec.milliseconds(body.rebalance_timeout)
    request = group_pb2.ConsumerGroupHeartbeatRequest(
        group_id=body.group_id,
        member_id=body.member_id,
        member_epoch=body.member_epoch,
        instance_id=body.instance_id or "",
        rack_id=body.rack_id or "",
        rebalance_timeout_ms=max(rebalance_timeout_ms, 0),
        server_assignor=body.server_assignor or "",
    )
    if body.subscribed_topic_names is not None or regex is not None:
        request.has_subscription = True
        request.subscribed_topic_names.extend(body.subscribed_topic_names or ())
        request.subscribed_topic_regex = regex or ""
    if body.topic_partitions is not None:
        request.has_owned_partitions = True
        for topic in body.topic_partitions:
            found = image.topics_by_id.get(topic.topic_id.bytes) if topic.topic_id is not None else None
            if found is None:
                continue
            request.owned_partitions.extend(
                common_pb2.TopicPartition(topic=found.name, partition=p) for p in topic.partitions
            )
    return request


class ConsumerGroupHeartbeatHandler:
    """ConsumerGroupHeartbeat v0-v1 (module docstring)."""

    api_key = 68
    name = "ConsumerGroupHeartbeat"
    versions = (0, 1)

    def __init__(
        self,
        coordinator: GroupCoordinator,
        image: Callable[[], MetadataImage],
        node_id: int = -1,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._image = image
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        return self._respond(request.api_version, request.body)

    async def _respond(self, api_version: int, body: Any) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        try:
            _validate(body, api_version)
            # Kafka: Read on the group, Describe on every subscribed topic, before anything changes.
            self.authorizer.check(Operation.READ, ResourceType.GROUP, body.group_id)
            wanted = to_coordinator_request(body, self._image())
            refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.TOPIC, wanted.subscribed_topic_names)
            rules.refuse(refused, ResourceType.TOPIC)
            answer = await self._coordinator.heartbeat(wanted)
        except Exception as error:  # a Kafka broker answers every failure with its code
            code, message = status.kafka_error_of(error, self._node_id)
            if code == status.kafka_code(common_pb2.UNKNOWN_SERVER_ERROR):
                logger.exception("ConsumerGroupHeartbeat of group %s failed", body.group_id)
            return self._error(schema, code, message)
        assignment = None
        if answer.has_assignment:
            assignment = codec.build(
                codec.nested(schema, "Assignment"),
                topic_partitions=self._topic_partitions(schema, answer.assignment),
            )
        return codec.build(
            schema,
            throttle_time=0,
            error_code=0,
            error_message=None,
            member_id=answer.member_id,
            member_epoch=answer.member_epoch,
            heartbeat_interval=answer.heartbeat_interval_ms,
            assignment=assignment,
        )

    def _topic_partitions(self, schema: type, assignment) -> tuple:
        """The assignment by topic id; a topic the image no longer has is left out."""
        by_name: dict[str, list[int]] = {}
        for tp in assignment:
            by_name.setdefault(tp.topic, []).append(tp.partition)
        image = self._image()
        entry = codec.nested(schema, "TopicPartitions")
        result = []
        for name in sorted(by_name):
            topic = image.topic(name)
            if topic is None:
                continue
            result.append(codec.build(entry, topic_id=topic_uuid(topic.topic_id), partitions=tuple(sorted(by_name[name]))))
        return tuple(result)

    @staticmethod
    def _error(schema: type, code: int, message: str) -> Any:
        return codec.build(
            schema, throttle_time=0, error_code=code, error_message=message, member_id=None,
            member_epoch=-1, heartbeat_interval=0, assignment=None,
        )
