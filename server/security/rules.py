"""Which right every RPC needs, and the helpers front-ends enforce it with.

Owns:
- `GRPC_RULES` (full gRPC method name -> rules) and `KAFKA_RULES` (Kafka API name -> rules): the
  one table of authorization decisions, Kafka's KafkaApis/AuthHelper rules applied to both
  listeners. A unit test checks that every method of every gRPC service (proto descriptors) and
  every API the Kafka front-end serves has a row, and drives each one with a denied principal to
  check that the handler refuses with the operation and resource type of its row; so a new RPC
  cannot silently skip authorization. (The Authentication service's Authenticate RPC and Kafka's
  SaslHandshake/SaslAuthenticate are authentication itself: served before a caller is known.)
- Helpers shared by the handlers: `denials` (per-item answers, Kafka's "filterByAuthorized" with
  a denial audit per refused item), `allows_any` (Kafka's authorizeByResourceType, for
  InitProducerId), `create_denials` (Create on the cluster, else per topic), `allow_all`.

With security off every helper returns at its first line (`authorizer.enabled` is a boolean):
the hot path (produce, fetch) pays one attribute read and a branch.

Imports: standard library, freshet.metadata (image, security), this package.
Thread-safety: module data is immutable; helpers read the current caller of their task.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import (
    CLUSTER_NAME,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from freshet.server.errors import AuthorizationError
from freshet.server.security.authorizer import (
    DENIAL_CODES,
    Authorizer,
    SecuritySettings,
    current_caller,
    denial_message,
)
from freshet.v1.metadata_pb2 import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_CLUSTER, CONFIG_RESOURCE_GROUP

Op = Operation
R = ResourceType


class Scope(enum.Enum):
    """How a rule's denial is answered."""

    REQUEST = "request"        # the whole request is refused (gRPC PERMISSION_DENIED, Kafka top-level code)
    ITEM = "item"              # each topic / partition / group answers its own code, the others proceed
    FILTER = "filter"          # listings leave out what the caller may not see (no audit)
    EITHER = "either"          # this right on the cluster, else the per-item rule that follows
    ANY = "any"                # this right on at least one resource of the type (Kafka's authorizeByResourceType)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    operation: Operation
    resource_type: ResourceType
    scope: Scope

    def describe(self) -> str:
        return f"{self.operation.kafka_name} {self.resource_type.name.lower()} ({self.scope.value})"


def _r(operation: Operation, resource_type: ResourceType, scope: Scope = Scope.ITEM) -> Rule:
    return Rule(operation, resource_type, scope)


S = Scope
_CLUSTER_ACTION = (_r(Op.CLUSTER_ACTION, R.CLUSTER, S.REQUEST),)
_CREATE_TOPICS = (_r(Op.CREATE, R.CLUSTER, S.EITHER), _r(Op.CREATE, R.TOPIC))
_METADATA = (_r(Op.DESCRIBE, R.TOPIC, S.FILTER), _r(Op.DESCRIBE, R.TOPIC), _r(Op.CREATE, R.CLUSTER, S.EITHER), _r(Op.CREATE, R.TOPIC))
_INIT_PRODUCER_ID = (_r(Op.IDEMPOTENT_WRITE, R.CLUSTER, S.EITHER), _r(Op.WRITE, R.TOPIC, S.ANY))
_LIST_GROUPS = (_r(Op.DESCRIBE, R.CLUSTER, S.EITHER), _r(Op.DESCRIBE, R.GROUP, S.FILTER))
_COMMIT = (_r(Op.READ, R.GROUP, S.REQUEST), _r(Op.READ, R.TOPIC))
_OFFSET_FETCH = (_r(Op.DESCRIBE, R.GROUP, S.REQUEST), _r(Op.DESCRIBE, R.TOPIC))

#: Full gRPC method name -> the rules its handler enforces.
GRPC_RULES: dict[str, tuple[Rule, ...]] = {
    # Broker
    "/freshet.v1.Broker/Metadata": _METADATA,
    "/freshet.v1.Broker/Produce": (_r(Op.WRITE, R.TOPIC),),
    "/freshet.v1.Broker/ProduceStream": (_r(Op.WRITE, R.TOPIC),),
    "/freshet.v1.Broker/Fetch": (_r(Op.READ, R.TOPIC),),
    "/freshet.v1.Broker/FetchStream": (_r(Op.READ, R.TOPIC),),
    "/freshet.v1.Broker/ListOffsets": (_r(Op.DESCRIBE, R.TOPIC),),
    "/freshet.v1.Broker/DescribeLogDirs": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Broker/InitProducerId": _INIT_PRODUCER_ID,
    # Controller: client-facing admin (checked on the node the client called, which forwards as itself)
    "/freshet.v1.Controller/CreateTopics": (_r(Op.CREATE, R.CLUSTER, S.EITHER), _r(Op.CREATE, R.TOPIC, S.REQUEST)),
    "/freshet.v1.Controller/DeleteTopics": (_r(Op.DELETE, R.TOPIC, S.REQUEST),),
    "/freshet.v1.Controller/CreatePartitions": (_r(Op.ALTER, R.TOPIC, S.REQUEST),),
    "/freshet.v1.Controller/ElectLeaders": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/AlterPartitionReassignments": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/ListPartitionReassignments": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/IncrementalAlterConfigs": (
        _r(Op.ALTER_CONFIGS, R.TOPIC, S.REQUEST), _r(Op.ALTER_CONFIGS, R.CLUSTER, S.REQUEST), _r(Op.ALTER_CONFIGS, R.GROUP, S.REQUEST)),
    "/freshet.v1.Controller/DescribeConfigs": (
        _r(Op.DESCRIBE_CONFIGS, R.TOPIC), _r(Op.DESCRIBE_CONFIGS, R.CLUSTER), _r(Op.DESCRIBE_CONFIGS, R.GROUP)),
    "/freshet.v1.Controller/DescribeCluster": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DescribeQuorum": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DecommissionBroker": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/GenerateReassignment": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/WatchMetadata": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    # Controller: users and ACLs (Kafka: Alter on the cluster to change, Describe to list)
    "/freshet.v1.Controller/UpsertUserScramCredentials": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DeleteUserScramCredentials": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DescribeUserScramCredentials": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/CreateAcls": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DeleteAcls": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "/freshet.v1.Controller/DescribeAcls": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    # Controller: inter-node
    "/freshet.v1.Controller/BrokerHeartbeat": _CLUSTER_ACTION,
    "/freshet.v1.Controller/AlterPartition": _CLUSTER_ACTION,
    "/freshet.v1.Controller/AllocateProducerIds": _CLUSTER_ACTION,
    # Replication
    "/freshet.v1.Replication/ReplicaFetch": _CLUSTER_ACTION,
    "/freshet.v1.Replication/RecordTimestamps": _CLUSTER_ACTION,
    "/freshet.v1.Replication/ConsoleSeries": _CLUSTER_ACTION,
    # Group
    "/freshet.v1.Group/FindCoordinator": (_r(Op.DESCRIBE, R.GROUP),),
    "/freshet.v1.Group/ConsumerGroupHeartbeat": (_r(Op.READ, R.GROUP, S.REQUEST), _r(Op.DESCRIBE, R.TOPIC, S.REQUEST)),
    "/freshet.v1.Group/OffsetCommit": _COMMIT,
    "/freshet.v1.Group/OffsetFetch": _OFFSET_FETCH,
    "/freshet.v1.Group/ListGroups": _LIST_GROUPS,
    "/freshet.v1.Group/DescribeGroups": (_r(Op.DESCRIBE, R.GROUP),),
    "/freshet.v1.Group/DeleteGroups": (_r(Op.DELETE, R.GROUP),),
}

#: Kafka API name (as KafkaApis serves it) -> the rules its handler enforces.
KAFKA_RULES: dict[str, tuple[Rule, ...]] = {
    "ApiVersions": (),                                   # before authentication too, as Kafka
    "SaslHandshake": (),                                 # authentication itself
    "SaslAuthenticate": (),
    "CreateAcls": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "DeleteAcls": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "DescribeAcls": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "AlterUserScramCredentials": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "DescribeUserScramCredentials": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "Produce": (_r(Op.WRITE, R.TOPIC),),
    "Fetch": (_r(Op.READ, R.TOPIC),),
    "ListOffsets": (_r(Op.DESCRIBE, R.TOPIC),),
    "Metadata": _METADATA,
    "OffsetCommit": _COMMIT,
    "OffsetFetch": _OFFSET_FETCH,
    "FindCoordinator": (_r(Op.DESCRIBE, R.GROUP),),
    "JoinGroup": (_r(Op.READ, R.GROUP, S.REQUEST),),
    "Heartbeat": (_r(Op.READ, R.GROUP, S.REQUEST),),
    "LeaveGroup": (_r(Op.READ, R.GROUP, S.REQUEST),),
    "SyncGroup": (_r(Op.READ, R.GROUP, S.REQUEST),),
    "DescribeGroups": (_r(Op.DESCRIBE, R.GROUP),),
    "ListGroups": _LIST_GROUPS,
    "CreateTopics": _CREATE_TOPICS,
    "DeleteTopics": (_r(Op.DELETE, R.TOPIC),),
    "DeleteRecords": (_r(Op.DELETE, R.TOPIC),),
    "InitProducerId": _INIT_PRODUCER_ID,
    "DescribeConfigs": (_r(Op.DESCRIBE_CONFIGS, R.TOPIC), _r(Op.DESCRIBE_CONFIGS, R.CLUSTER), _r(Op.DESCRIBE_CONFIGS, R.GROUP)),
    "AlterConfigs": (_r(Op.ALTER_CONFIGS, R.TOPIC), _r(Op.ALTER_CONFIGS, R.CLUSTER), _r(Op.ALTER_CONFIGS, R.GROUP)),
    "DescribeLogDirs": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "CreatePartitions": (_r(Op.ALTER, R.TOPIC),),
    "DeleteGroups": (_r(Op.DELETE, R.GROUP),),
    "ElectLeaders": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "IncrementalAlterConfigs": (_r(Op.ALTER_CONFIGS, R.TOPIC), _r(Op.ALTER_CONFIGS, R.CLUSTER), _r(Op.ALTER_CONFIGS, R.GROUP)),
    "AlterPartitionReassignments": (_r(Op.ALTER, R.CLUSTER, S.REQUEST),),
    "ListPartitionReassignments": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "OffsetDelete": (_r(Op.DELETE, R.GROUP, S.REQUEST), _r(Op.READ, R.TOPIC)),
    "DescribeCluster": (_r(Op.DESCRIBE, R.CLUSTER, S.REQUEST),),
    "DescribeProducers": (_r(Op.READ, R.TOPIC),),
    "ConsumerGroupHeartbeat": (_r(Op.READ, R.GROUP, S.REQUEST), _r(Op.DESCRIBE, R.TOPIC, S.REQUEST)),
}


def allow_all() -> Authorizer:
    """An Authorizer with security off (every check passes): the default of handlers built
    without the node's one (tests, tools)."""
    return Authorizer(SecuritySettings(), lambda: EMPTY_IMAGE)


def denials(authorizer: Authorizer, operation: Operation, resource_type: ResourceType, names: Iterable[str]) -> dict[str, str]:
    """Name -> one-line reason for every distinct name the current caller may not `operation`
    (each denial audited and counted once); empty when security is off or all are allowed."""
    if not authorizer.enabled:
        return {}
    caller = current_caller()
    refused: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if not authorizer.allows(operation, resource_type, name, caller):
            authorizer.denied(caller, operation, resource_type, name)
            refused[name] = denial_message(caller, operation, resource_type, name)
    return refused


def create_denials(authorizer: Authorizer, names: Iterable[str]) -> dict[str, str]:
    """Kafka's CreateTopics rule: Create on the cluster allows every topic (not audited when
    missing), else Create on each topic."""
    if not authorizer.enabled or authorizer.allows(Op.CREATE, R.CLUSTER, CLUSTER_NAME):
        return {}
    return denials(authorizer, Op.CREATE, R.TOPIC, names)


def allows_any(authorizer: Authorizer, operation: Operation, resource_type: ResourceType) -> bool:
    """Whether the current caller may `operation` at least one resource of `resource_type`
    (Kafka's authorizeByResourceType): an ALLOW binding for it (or User:*) from its host (or *)
    with the operation (or ALL) that no DENY binding covers: a DENY on the wildcard, on the same
    literal name, or on a prefix of the allowed name."""
    if not authorizer.enabled:
        return True
    settings = authorizer.settings
    caller = current_caller()
    if caller.principal in settings.super_users:
        return True
    acls = [binding for binding in authorizer.image().acls if binding.resource_type is resource_type]
    if not acls:
        return settings.allow_if_no_acl
    mine = [
        binding for binding in acls
        if binding.principal in (caller.principal, WILDCARD_PRINCIPAL)
        and binding.host in (caller.host, WILDCARD_HOST)
        and binding.operation in (operation, Op.ALL)
    ]
    denied = [binding for binding in mine if binding.permission is Permission.DENY]
    for allow in mine:
        if allow.permission is not Permission.ALLOW:
            continue
        if not any(_dominates(deny, allow) for deny in denied):
            return True
    return False


def _dominates(deny, allow) -> bool:
    """Whether a DENY binding covers every resource an ALLOW binding names."""
    if deny.resource_name == WILDCARD_RESOURCE and deny.pattern_type is PatternType.LITERAL:
        return True
    if deny.pattern_type is PatternType.PREFIXED:
        return allow.resource_name.startswith(deny.resource_name) and allow.resource_name != WILDCARD_RESOURCE
    return allow.pattern_type is PatternType.LITERAL and allow.resource_name == deny.resource_name


def refuse(refused: dict[str, str], resource_type: ResourceType) -> None:
    """Raise AuthorizationError for the first of `refused` (from `denials`, already audited), if any."""
    for message in refused.values():
        raise AuthorizationError(DENIAL_CODES[resource_type], message)


def check_idempotent_write(authorizer: Authorizer) -> None:
    """Kafka's InitProducerId rule without a transactional id: IdempotentWrite on the cluster, or
    Write on at least one topic; else CLUSTER_AUTHORIZATION_FAILED (audited)."""
    if not authorizer.enabled or authorizer.allows(Op.IDEMPOTENT_WRITE, R.CLUSTER, CLUSTER_NAME):
        return
    if allows_any(authorizer, Op.WRITE, R.TOPIC):
        return
    authorizer.check(Op.IDEMPOTENT_WRITE, R.CLUSTER)


def config_resource(image, resource) -> tuple[ResourceType, str]:
    """The ACL resource of a freshet.v1.ConfigResource: the cluster for cluster and broker
    configs, the group for group configs (Kafka 4: AlterConfigs / DescribeConfigs on the group),
    else the topic (by name, or named from the image by id; an unknown id keeps its hex, which no
    ACL names)."""
    if resource.type in (CONFIG_RESOURCE_CLUSTER, CONFIG_RESOURCE_BROKER):
        return R.CLUSTER, CLUSTER_NAME
    if resource.type == CONFIG_RESOURCE_GROUP:
        return R.GROUP, resource.group_id
    if resource.topic_name:
        return R.TOPIC, resource.topic_name
    topic = image.topic_by_id(bytes(resource.topic_id)) if resource.topic_id else None
    return R.TOPIC, topic.name if topic is not None else bytes(resource.topic_id).hex()
