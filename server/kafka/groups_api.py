"""Consumer-group APIs over the Kafka protocol: thin handlers over the broker's GroupCoordinator.

Owns the Kafka wire side of groups: FindCoordinator (10), OffsetCommit (8), OffsetFetch (9),
OffsetDelete (47), ListGroups (16), DescribeGroups (15) and DeleteGroups (42). Every operation is
the one the gRPC Group service calls (server/groups/service.py): `GroupRuntime.locate` and the
`GroupCoordinator` methods, so a group committed from a Kafka client and one committed through the
SDK are the same group, in the same `__consumer_offsets` records. Domain errors become Kafka error
codes through `status.kafka_error_of` (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ... make a
Kafka client find the coordinator again).

Mapping decisions:
- FindCoordinator key_type 0 (group) answers the leader of the group's `__consumer_offsets`
  partition at its Kafka address (`metadata_api.kafka_brokers`); COORDINATOR_NOT_AVAILABLE while
  it has none (or it has no Kafka listener). The first lookup creates `__consumer_offsets`, as the
  gRPC FindCoordinator does (same `locate`). key_type 1 (transaction) answers
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) at once: Freshet has no transaction coordinator, and
  53 is fatal in librdkafka and the Java client (InitProducerId answers it too, produce_api.py),
  so `init_transactions` fails at once instead of retrying until its timeout. Other key types
  (share groups): INVALID_REQUEST.
- OffsetCommit with an empty member id (generation -1: a "simple consumer" with manually assigned
  partitions, or an admin tool) is the coordinator's admin commit: accepted while the group has no
  members, NON_EMPTY_GROUP otherwise; with a member id, the coordinator checks it and its epoch
  (`generation_id_or_member_epoch`) as for an SDK member. A refusal of the whole commit is the
  error of every partition.
- OffsetFetch: committed offset, leader epoch and metadata, -1 for a partition with nothing
  committed; null topics (v2+) is every committed partition. `require_stable` needs nothing:
  without transactions no commit is ever pending. v9's member id and epoch are not checked.
- ListGroups answers the groups this broker coordinates (a client asks every broker), protocol
  type "consumer", Kafka's capitalised state names ("Empty", "Stable", "Assigning",
  "Reconciling"), group type "consumer"; the states filter matches case-insensitively.
- DescribeGroups: state, protocol type "consumer", protocol name the group's server assignor, and
  per member its id, instance id, client id and host; as member metadata a ConsumerProtocol
  Subscription (v0: the subscribed topic names) and as member assignment a ConsumerProtocol
  Assignment (v0: the partitions it owns), so Kafka tools show KIP-848 members' assignments.
- OffsetDelete keeps (GROUP_SUBSCRIBED_TO_TOPIC, 86) partitions of topics a member subscribes to.
- Authorization (Kafka's KafkaApis rules, server/security/rules.py): FindCoordinator Describe on
  each group; OffsetCommit Read on the group (else every partition GROUP_AUTHORIZATION_FAILED) and
  Read on each topic (TOPIC_AUTHORIZATION_FAILED per partition); OffsetFetch Describe on the group
  (GROUP_AUTHORIZATION_FAILED) and Describe per topic (asked partitions answer
  TOPIC_AUTHORIZATION_FAILED, a fetch of all leaves hidden topics out); OffsetDelete Delete on the
  group and Read per topic; ListGroups everything with Describe on the cluster, else the groups
  the caller may Describe; DescribeGroups Describe and DeleteGroups Delete per group.

Imports: struct, freshet.server (errors, status, groups, kafka). Thread-safety: not thread-safe;
runs on the node's event loop, as the coordinator does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server import status
from freshet.server.errors import AuthorizationError
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.server.kafka import codec
from freshet.server.kafka.metadata_api import AUTHORIZED_OPERATIONS_OMITTED, kafka_brokers
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2, group_pb2

E = common_pb2.ErrorCode
NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
INVALID_REQUEST = 42
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
GROUP_SUBSCRIBED_TO_TOPIC = 86
KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
PROTOCOL_TYPE = "consumer"

#: Freshet's group states as Kafka names them (KIP-848 consumer groups).
KAFKA_STATES = {"empty": "Empty", "assigning": "Assigning", "reconciling": "Reconciling", "stable": "Stable", "dead": "Dead"}

Locate = Callable[[str], Any]                       # group_id -> awaitable of group_pb2.Coordinator


def kafka_state(state: str) -> str:
    return KAFKA_STATES.get(state, state.capitalize())


def _error(error: Exception, node_id: int) -> tuple[int, str]:
    return status.kafka_error_of(error, node_id)


# -- ConsumerProtocol (the bytes of classic members' metadata and assignment) ------------------------

def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def consumer_subscription(topics: Iterable[str]) -> bytes:
    """ConsumerProtocolSubscription v0: version, topic names, null user data."""
    names = sorted(topics)
    return struct.pack(">hi", 0, len(names)) + b"".join(_string(name) for name in names) + struct.pack(">i", -1)


def consumer_assignment(partitions: Iterable[tuple[str, int]]) -> bytes:
    """ConsumerProtocolAssignment v0: version, partitions by topic, null user data."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    out = struct.pack(">hi", 0, len(by_topic))
    for topic in sorted(by_topic):
        indexes = sorted(by_topic[topic])
        out += _string(topic) + struct.pack(f">i{len(indexes)}i", len(indexes), *indexes)
    return out + struct.pack(">i", -1)


# -- FindCoordinator --------------------------------------------------------------------------------

class FindCoordinatorHandler:
    """FindCoordinator v0-v6 (v4+: batched coordinator_keys)."""

    api_key = 10
    name = "FindCoordinator"
    versions = (0, 6)

    def __init__(self, locate: Locate, image: Callable[[], MetadataImage], authorizer: Authorizer | None = None) -> None:
        self._locate = locate
        self._image = image
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        key_type = getattr(body, "key_type", KEY_TYPE_GROUP)
        if codec.has_field(schema, "coordinators"):
            entry = codec.nested(schema, "Coordinator")
            found = [await self.find(key_type, key) for key in body.coordinator_keys]
            coordinators = tuple(
                codec.build(entry, key=key, node_id=node_id, host=host, port=port, error_code=code, error_message=message)
                for key, (node_id, host, port, code, message) in zip(body.coordinator_keys, found, strict=True)
            )
            return codec.build(schema, throttle_time=0, coordinators=coordinators)
        node_id, host, port, code, message = await self.find(key_type, body.key)
        return codec.build(
            schema, throttle_time=0, error_code=code, error_message=message, node_id=node_id, host=host, port=port
        )

    async def find(self, key_type: int, key: str) -> tuple[int, str, int, int, str | None]:
        """(node id, Kafka host, Kafka port, error code, error message) of one key."""
        if key_type == KEY_TYPE_TRANSACTION:
            return -1, "", -1, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "Freshet has no transactions (no transaction coordinator)"
        if key_type != KEY_TYPE_GROUP:
            return -1, "", -1, INVALID_REQUEST, f"key type {key_type} is not supported (group: 0)"
        refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.GROUP, (key,))
        if refused:
            return -1, "", -1, GROUP_AUTHORIZATION_FAILED, refused[key]
        found: group_pb2.Coordinator = await self._locate(key)
        if found.error.code != E.NONE:
            return -1, "", -1, status.kafka_code(found.error.code), found.error.message or None
        for node_id, host, port, _rack in kafka_brokers(self._image()):
            if node_id == found.coordinator.node_id:
                return node_id, host, port, NONE, None
        return -1, "", -1, COORDINATOR_NOT_AVAILABLE, f"the coordinator, broker {found.coordinator.node_id}, has no Kafka listener"


# -- Offsets ----------------------------------------------------------------------------------------

class OffsetCommitHandler:
    """OffsetCommit v2-v9 (v10 names topics by id: not served)."""

    api_key = 8
    name = "OffsetCommit"
    versions = (2, 9)

    def __init__(self, coordinator: GroupCoordinator, node_id: int, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        group_refused = rules.denials(self.authorizer, Operation.READ, ResourceType.GROUP, (body.group_id,))
        refused = {} if group_refused else rules.denials(
            self.authorizer, Operation.READ, ResourceType.TOPIC, (topic.name for topic in body.topics)
        )
        epoch = getattr(body, "generation_id_or_member_epoch", None)
        if epoch is None:
            epoch = getattr(body, "generation_id", -1)
        commit = group_pb2.OffsetCommitRequest(group_id=body.group_id, member_id=body.member_id or "", member_epoch=epoch)
        codes: dict[tuple[str, int], int] = {}
        for topic in body.topics:
            for item in topic.partitions:
                if topic.name in refused:
                    codes[(topic.name, item.partition_index)] = TOPIC_AUTHORIZATION_FAILED
                    continue
                commit.partitions.add(
                    topic=topic.name, partition=item.partition_index, offset=item.committed_offset,
                    leader_epoch=getattr(item, "committed_leader_epoch", -1), metadata=item.committed_metadata or "",
                )
        default = NONE
        if group_refused:
            default = GROUP_AUTHORIZATION_FAILED
        elif commit.partitions or not refused:
            try:
                answer = await self._coordinator.commit(commit)
                for result in answer.results:
                    codes[(result.topic, result.partition)] = status.kafka_code(result.error.code)
            except Exception as error:
                default = _error(error, self._node_id)[0]
        topic_type = codec.nested(schema, "OffsetCommitResponseTopic")
        partition_type = codec.nested(schema, "OffsetCommitResponsePartition")
        topics = tuple(
            codec.build(topic_type, name=topic.name, partitions=tuple(
                codec.build(partition_type, partition_index=item.partition_index,
                            error_code=codes.get((topic.name, item.partition_index), default))
                for item in topic.partitions
            ))
            for topic in body.topics
        )
        return codec.build(schema, throttle_time=0, topics=topics)


class OffsetFetchHandler:
    """OffsetFetch v1-v9 (v8+: batched groups; v10 names topics by id: not served)."""

    api_key = 9
    name = "OffsetFetch"
    versions = (1, 9)

    def __init__(self, coordinator: GroupCoordinator, node_id: int, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        if codec.has_field(schema, "groups"):
            group_type = codec.nested(schema, "OffsetFetchResponseGroup")
            groups = []
            for group in body.groups:
                code, topics = await self._fetch(schema, group.group_id, group.topics, "OffsetFetchResponseTopics",
                                                 "OffsetFetchResponsePartitions")
                groups.append(codec.build(group_type, group_id=group.group_id, topics=topics, error_code=code))
            return codec.build(schema, throttle_time=0, groups=tuple(groups))
        code, topics = await self._fetch(schema, body.group_id, body.topics, "OffsetFetchResponseTopic",
                                         "OffsetFetchResponsePartition")
        if not codec.has_field(schema, "error_code") and code != NONE:
            # v1: no top-level error; every asked partition carries it.
            topics = self._with_error(schema, body.topics or (), code)
        return codec.build(schema, throttle_time=0, error_code=code, topics=topics)

    def _with_error(self, schema: type, asked: Iterable[Any], code: int) -> tuple:
        topic_type = codec.nested(schema, "OffsetFetchResponseTopic")
        partition_type = codec.nested(schema, "OffsetFetchResponsePartition")
        return tuple(
            codec.build(topic_type, name=topic.name, partitions=tuple(
                codec.build(partition_type, partition_index=index, committed_offset=-1, committed_leader_epoch=-1,
                            metadata="", error_code=code)
                for index in topic.partition_indexes
            ))
            for topic in asked
        )

    async def _fetch(self, schema: type, group_id: str, asked, topic_name: str, partition_name: str) -> tuple[int, tuple]:
        authorizer = self.authorizer
        if rules.denials(authorizer, Operation.DESCRIBE, ResourceType.GROUP, (group_id,)):
            return GROUP_AUTHORIZATION_FAILED, ()
        refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.TOPIC, (topic.name for topic in asked or ()))
        fetch = group_pb2.OffsetFetchRequest(group_id=group_id)
        for topic in asked or ():
            if topic.name in refused:
                continue
            for index in topic.partition_indexes:
                fetch.partitions.add(topic=topic.name, partition=index)
        topic_type = codec.nested(schema, topic_name)
        partition_type = codec.nested(schema, partition_name)
        by_topic: dict[str, list] = {}
        for topic in asked or ():
            if topic.name in refused:
                by_topic[topic.name] = [codec.build(
                    partition_type, partition_index=index, committed_offset=-1, committed_leader_epoch=-1, metadata="",
                    error_code=TOPIC_AUTHORIZATION_FAILED,
                ) for index in topic.partition_indexes]
        if asked is not None and not fetch.partitions:
            # an empty list asks for nothing
            return NONE, tuple(codec.build(topic_type, name=name, partitions=tuple(items)) for name, items in by_topic.items())
        try:
            answer = await self._coordinator.fetch_offsets(fetch)
        except Exception as error:
            return _error(error, self._node_id)[0], ()
        results = list(answer.results)
        if asked is None and authorizer.enabled:
            # Every committed partition: leave out the topics the caller may not see (Kafka).
            visible = set(authorizer.filter(Operation.DESCRIBE, ResourceType.TOPIC, {r.topic for r in results}))
            results = [result for result in results if result.topic in visible]
        for result in results:
            by_topic.setdefault(result.topic, []).append(codec.build(
                partition_type, partition_index=result.partition, committed_offset=result.offset,
                committed_leader_epoch=result.leader_epoch, metadata=result.metadata,
                error_code=status.kafka_code(result.error.code),
            ))
        return NONE, tuple(codec.build(topic_type, name=name, partitions=tuple(items)) for name, items in by_topic.items())


class OffsetDeleteHandler:
    """OffsetDelete v0."""

    api_key = 47
    name = "OffsetDelete"
    versions = (0, 0)

    def __init__(self, coordinator: GroupCoordinator, node_id: int, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        if rules.denials(self.authorizer, Operation.DELETE, ResourceType.GROUP, (body.group_id,)):
            return codec.build(schema, throttle_time=0, error_code=GROUP_AUTHORIZATION_FAILED, topics=())
        denied = rules.denials(self.authorizer, Operation.READ, ResourceType.TOPIC, (topic.name for topic in body.topics))
        wanted = [
            (topic.name, item.partition_index) for topic in body.topics if topic.name not in denied for item in topic.partitions
        ]
        try:
            refused = await self._coordinator.delete_offsets(body.group_id, wanted) if wanted or not denied else set()
        except Exception as error:
            return codec.build(schema, throttle_time=0, error_code=_error(error, self._node_id)[0], topics=())
        topic_type = codec.nested(schema, "OffsetDeleteResponseTopic")
        partition_type = codec.nested(schema, "OffsetDeleteResponsePartition")

        def code_of(topic: str, partition: int) -> int:
            if topic in denied:
                return TOPIC_AUTHORIZATION_FAILED
            return GROUP_SUBSCRIBED_TO_TOPIC if (topic, partition) in refused else NONE

        topics = tuple(
            codec.build(topic_type, name=topic.name, partitions=tuple(
                codec.build(partition_type, partition_index=item.partition_index,
                            error_code=code_of(topic.name, item.partition_index))
                for item in topic.partitions
            ))
            for topic in body.topics
        )
        return codec.build(schema, throttle_time=0, error_code=NONE, topics=topics)


# -- Administration ---------------------------------------------------------------------------------

class ListGroupsHandler:
    """ListGroups v0-v5 (v4+: states filter, v5: types filter)."""

    api_key = 16
    name = "ListGroups"
    versions = (0, 5)

    def __init__(self, coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self.authorizer = authorizer or rules.allow_all()

    def _visible(self, group_ids: list[str]) -> set[str]:
        authorizer = self.authorizer
        if not authorizer.enabled or authorizer.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return set(group_ids)
        return set(authorizer.filter(Operation.DESCRIBE, ResourceType.GROUP, group_ids))

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        states = {state.lower() for state in getattr(body, "states_filter", ())}
        types = {kind.lower() for kind in getattr(body, "types_filter", ())}
        entry = codec.nested(schema, "ListedGroup")
        groups = []
        if not types or "consumer" in types:
            listed = self._coordinator.list_groups().groups
            visible = self._visible([group.group_id for group in listed])
            for group in listed:
                if group.group_id not in visible:
                    continue
                if states and group.state.lower() not in states:
                    continue
                groups.append(codec.build(entry, group_id=group.group_id, protocol_type=PROTOCOL_TYPE,
                                          group_state=kafka_state(group.state), group_type="consumer"))
        return codec.build(schema, throttle_time=0, error_code=NONE, groups=tuple(groups))


class DescribeGroupsHandler:
    """DescribeGroups v0-v6."""

    api_key = 15
    name = "DescribeGroups"
    versions = (0, 6)

    def __init__(self, coordinator: GroupCoordinator, node_id: int, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        group_type = codec.nested(schema, "DescribedGroup")
        member_type = codec.nested(schema, "DescribedGroupMember")
        groups = []
        refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.GROUP, request.body.groups)
        for group_id in request.body.groups:
            try:
                if group_id in refused:
                    raise AuthorizationError(E.GROUP_AUTHORIZATION_FAILED, refused[group_id])
                described = self._coordinator.describe_group(group_id)
            except Exception as error:
                code, message = _error(error, self._node_id)
                groups.append(codec.build(
                    group_type, error_code=code, error_message=message, group_id=group_id,
                    group_state="Dead", protocol_type="", protocol_data="", members=(),
                    authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
                ))
                continue
            members = tuple(
                codec.build(
                    member_type, member_id=member.member_id, group_instance_id=member.instance_id or None,
                    client_id=member.client_id, client_host=member.client_host,
                    member_metadata=consumer_subscription(member.subscribed_topic_names),
                    member_assignment=consumer_assignment((tp.topic, tp.partition) for tp in member.assignment),
                )
                for member in described.members
            )
            groups.append(codec.build(
                group_type, error_code=NONE, error_message=None, group_id=group_id, group_state=kafka_state(described.state),
                protocol_type=PROTOCOL_TYPE, protocol_data=described.assignor if described.members else "",
                members=members, authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
            ))
        return codec.build(schema, throttle_time=0, groups=tuple(groups))


class DeleteGroupsHandler:
    """DeleteGroups v0-v2: NON_EMPTY_GROUP while a group has members, GROUP_ID_NOT_FOUND."""

    api_key = 42
    name = "DeleteGroups"
    versions = (0, 2)

    def __init__(self, coordinator: GroupCoordinator, node_id: int, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self._node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        entry = codec.nested(schema, "DeletableGroupResult")
        results = []
        refused = rules.denials(self.authorizer, Operation.DELETE, ResourceType.GROUP, request.body.groups_names)
        for group_id in request.body.groups_names:
            if group_id in refused:
                results.append(codec.build(entry, group_id=group_id, error_code=GROUP_AUTHORIZATION_FAILED))
                continue
            try:
                await self._coordinator.delete_group(group_id)
                code = NONE
            except Exception as error:
                code = _error(error, self._node_id)[0]
            results.append(codec.build(entry, group_id=group_id, error_code=code))
        return codec.build(schema, throttle_time=0, results=tuple(results))


def group_handlers(
    locate: Locate,
    coordinator: GroupCoordinator,
    image: Callable[[], MetadataImage],
    node_id: int,
    authorizer: Authorizer | None = None,
) -> list:
    """Every consumer-group handler of this module, over one coordinator."""
    authorizer = authorizer or rules.allow_all()
    return [
        FindCoordinatorHandler(locate, image, authorizer),
        OffsetCommitHandler(coordinator, node_id, authorizer),
        OffsetFetchHandler(coordinator, node_id, authorizer),
        OffsetDeleteHandler(coordinator, node_id, authorizer),
        ListGroupsHandler(coordinator, authorizer),
        DescribeGroupsHandler(coordinator, node_id, authorizer),
        DeleteGroupsHandler(coordinator, node_id, authorizer),
    ]
