"""The console's admin actions, as the viewer: USE THESE for every change the console makes.

Each function takes the `ConsoleBackend` (NodeView.console_data()) and the viewer's `Caller`
(principal + client host; `Caller()` anonymous with security off), runs the CLI's path and returns
what changed, or raises `ActionRefused` with the code and message the CLI would print (a refused
principal gets the same refusal as `freshet topic delete ...` with that principal):

- topics, partitions, configs, elections, reassignments: the node's Controller handler runs
  in-process with the viewer bound as the current caller (backend.ConsoleBackend.run_handler):
  authorization on the viewer, then forwarding to the active controller, as for a gRPC client;
- groups (reset offsets, delete): the viewer's rights are checked with the Group handlers' own
  rules (Read group + Read topic for an offset commit; Delete group), audited like theirs, then
  the SDK's GroupAdmin (the CLI's code) runs with the node's identity against the group's
  coordinator, which may be another node.

Every function blocks the calling (HTTP) thread, at most about 2 x backend.request_timeout_s.
Thread-safety: thread-safe (no state of its own).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from freshet.client.admin_groups import GroupAdmin
from freshet.metadata.security import Operation, ResourceType
from freshet.server.errors import AuthorizationError
from freshet.server.http.console_data.backend import (
    ActionRefused,
    ConsoleBackend,
    raise_for_detail,
    refused_by_error,
    sdk_call,
    viewer_bound,
)
from freshet.server.security import rules
from freshet.server.security.authorizer import Caller
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

#: Config resource kinds the console alters, by the name the UI passes.
CONFIG_RESOURCES = {
    "cluster": metadata_pb2.CONFIG_RESOURCE_CLUSTER,
    "broker": metadata_pb2.CONFIG_RESOURCE_BROKER,
    "topic": metadata_pb2.CONFIG_RESOURCE_TOPIC,
    "group": metadata_pb2.CONFIG_RESOURCE_GROUP,
}


@dataclasses.dataclass(frozen=True)
class CreatedTopic:
    """A topic created: its name, partition count and replication factor as placed."""

    name: str
    partitions: int
    replication_factor: int


@dataclasses.dataclass(frozen=True)
class ElectionResult:
    """One partition's preferred election: the leader afterwards, and the refusal code name when
    it did not move ("ELECTION_NOT_NEEDED", "PREFERRED_LEADER_NOT_AVAILABLE", ...; None: moved)."""

    topic: str
    partition: int
    leader: int
    error: str | None


@dataclasses.dataclass(frozen=True)
class OffsetResetPlan:
    """One partition of a group offset reset: current committed offset (None: none) and the new one."""

    topic: str
    partition: int
    current_offset: int | None
    new_offset: int


def create_topic(
    backend: ConsoleBackend,
    caller: Caller,
    name: str,
    partitions: int | None = None,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
) -> CreatedTopic:
    """Create topic `name` (None partitions/replication factor: the cluster's defaults).

    Raises:
        ActionRefused: e.g. TOPIC_AUTHORIZATION_FAILED, TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR.
    """
    topic = controller_pb2.CreatableTopic(
        name=name, configs=[metadata_pb2.ConfigEntry(key=k, value=v) for k, v in sorted((configs or {}).items())]
    )
    if partitions is not None:
        topic.num_partitions = partitions
    if replication_factor is not None:
        topic.replication_factor = replication_factor
    response = backend.run_handler(caller, "CreateTopics", controller_pb2.CreateTopicsRequest(topics=[topic]))
    result = response.results[0]
    raise_for_detail(result.error)
    return CreatedTopic(result.name, result.num_partitions, result.replication_factor)


def delete_topic(backend: ConsoleBackend, caller: Caller, name: str) -> None:
    """Delete topic `name` and its data.

    Raises:
        ActionRefused: e.g. TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC.
    """
    response = backend.run_handler(caller, "DeleteTopics", controller_pb2.DeleteTopicsRequest(names=[name]))
    raise_for_detail(response.results[0].error)


def add_partitions(backend: ConsoleBackend, caller: Caller, topic: str, total: int) -> int:
    """Grow `topic` to `total` partitions; returns how many were added.

    Raises:
        ActionRefused: e.g. TOPIC_AUTHORIZATION_FAILED, INVALID_PARTITIONS (total not larger).
    """
    increase = controller_pb2.PartitionsIncrease(topic=topic, count=total)
    response = backend.run_handler(caller, "CreatePartitions", controller_pb2.CreatePartitionsRequest(topics=[increase]))
    result = response.results[0]
    raise_for_detail(result.error)
    return len(result.assignments)


def alter_configs(
    backend: ConsoleBackend,
    caller: Caller,
    resource: str,
    name: str,
    set_configs: Mapping[str, str] | None = None,
    delete_configs: Sequence[str] = (),
) -> None:
    """Set and delete dynamic configs of one resource in one step (IncrementalAlterConfigs).

    Args:
        resource: "cluster", "broker", "topic" or "group".
        name: the topic or group name, the broker id as text, "" for the cluster.

    Raises:
        ValueError: an unknown resource kind or a broker name that is not a number.
        ActionRefused: e.g. CLUSTER_AUTHORIZATION_FAILED, INVALID_CONFIG.
    """
    if resource not in CONFIG_RESOURCES:
        raise ValueError(f"config resource must be one of {', '.join(CONFIG_RESOURCES)}, not {resource!r}")
    target = metadata_pb2.ConfigResource(type=CONFIG_RESOURCES[resource])
    if resource == "broker":
        if not name.isdigit():
            raise ValueError(f"a broker is named by its node id, not {name!r}")
        target.broker_id = int(name)
    elif resource == "topic":
        target.topic_name = name
    elif resource == "group":
        target.group_id = name
    configs = [controller_pb2.AlterableConfig(key=k, value=v) for k, v in sorted((set_configs or {}).items())]
    configs += [controller_pb2.AlterableConfig(key=k, operation=controller_pb2.CONFIG_DELETE) for k in delete_configs]
    request = controller_pb2.IncrementalAlterConfigsRequest(
        resources=[controller_pb2.AlterConfigsResource(resource=target, configs=configs)]
    )
    response = backend.run_handler(caller, "IncrementalAlterConfigs", request)
    raise_for_detail(response.results[0].error)


def elect_preferred(
    backend: ConsoleBackend, caller: Caller, topic: str, partitions: Sequence[int] | None = None
) -> list[ElectionResult]:
    """Move leadership of `topic`'s partitions (all when None) to their preferred replica.

    Returns one ElectionResult per partition (ELECTION_NOT_NEEDED is an answer, not a refusal).

    Raises:
        ActionRefused: CLUSTER_AUTHORIZATION_FAILED (Alter on the cluster), UNKNOWN_TOPIC.
    """
    if partitions is None:
        found = backend.image().topic(topic)
        if found is None:
            raise ActionRefused(common_pb2.UNKNOWN_TOPIC, f"topic {topic!r} does not exist")
        partitions = [p.partition for p in found.partitions]
    request = controller_pb2.ElectLeadersRequest(
        type=controller_pb2.ELECTION_PREFERRED,
        partitions=[common_pb2.TopicPartition(topic=topic, partition=p) for p in partitions],
    )
    response = backend.run_handler(caller, "ElectLeaders", request)
    return [
        ElectionResult(
            r.partition.topic, r.partition.partition, r.leader,
            None if r.error.code == common_pb2.NONE else common_pb2.ErrorCode.Name(r.error.code),
        )
        for r in response.results
    ]


def reassign(backend: ConsoleBackend, caller: Caller, topic: str, partition: int, replicas: Sequence[int]) -> None:
    """Start moving `topic`-`partition` to `replicas` (empty: cancel the reassignment in progress).

    Raises:
        ActionRefused: CLUSTER_AUTHORIZATION_FAILED, INVALID_REPLICA_ASSIGNMENT, ...
    """
    request = controller_pb2.AlterPartitionReassignmentsRequest(reassignments=[
        controller_pb2.PartitionReassignment(
            partition=common_pb2.TopicPartition(topic=topic, partition=partition), target_replicas=list(replicas)
        )
    ])
    response = backend.run_handler(caller, "AlterPartitionReassignments", request)
    raise_for_detail(response.results[0].error)


def _check_as_viewer(backend: ConsoleBackend, caller: Caller, checks: Sequence[tuple[Operation, ResourceType, str]]) -> None:
    """The Group handlers' checks, on the viewer, audited as theirs. Raises ActionRefused."""
    with viewer_bound(caller):
        try:
            for operation, resource_type, name in checks:
                rules.refuse(rules.denials(backend.authorizer, operation, resource_type, [name]), resource_type)
        except AuthorizationError as error:
            raise refused_by_error(error, backend.node_id) from error


def reset_group_offsets(
    backend: ConsoleBackend,
    caller: Caller,
    group: str,
    topic: str,
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_offset: int | None = None,
    to_datetime: datetime.datetime | str | None = None,
    partitions: Sequence[int] | None = None,
    execute: bool = False,
) -> list[OffsetResetPlan]:
    """Plan (execute=False) or commit (execute=True) new offsets of `topic` for a group without
    active members: `freshet group reset-offsets`. Exactly one to_* option.

    Raises:
        ValueError: not exactly one target, a negative offset, an unparseable datetime.
        ActionRefused: GROUP_AUTHORIZATION_FAILED (Read on the group), TOPIC_AUTHORIZATION_FAILED
            (Read on the topic), NON_EMPTY_GROUP (active members), UNKNOWN_TOPIC.
    """
    _check_as_viewer(backend, caller, [(Operation.READ, ResourceType.GROUP, group), (Operation.READ, ResourceType.TOPIC, topic)])
    admin = GroupAdmin(transport=backend.transport, request_timeout_ms=int(backend.request_timeout_s * 1000))
    plan = sdk_call(
        lambda: admin.reset_offsets(
            group, topic, to_earliest=to_earliest, to_latest=to_latest, to_offset=to_offset,
            to_datetime=to_datetime, partitions=partitions, execute=execute,
        ),
        backend.request_timeout_s,
    )
    return [OffsetResetPlan(r.topic, r.partition, r.current_offset, r.new_offset) for r in plan]


def delete_group(backend: ConsoleBackend, caller: Caller, group: str) -> None:
    """Delete a group without members and its committed offsets: `freshet group delete`.

    Raises:
        ActionRefused: GROUP_AUTHORIZATION_FAILED (Delete on the group), NON_EMPTY_GROUP,
            GROUP_ID_NOT_FOUND.
    """
    _check_as_viewer(backend, caller, [(Operation.DELETE, ResourceType.GROUP, group)])
    admin = GroupAdmin(transport=backend.transport, request_timeout_ms=int(backend.request_timeout_s * 1000))
    sdk_call(lambda: admin.delete_group(group), backend.request_timeout_s)
