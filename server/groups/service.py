"""The `freshet.v1.Group` gRPC service of a broker: thin handlers over the GroupCoordinator.

Owns the wire side of consumer groups: FindCoordinator (any broker answers from its metadata,
creating __consumer_offsets through the `locate` seam on first use), and the coordinator RPCs, whose
domain errors leave through `status.handler` as gRPC statuses with an ErrorDetail (server/status.py). Multi-group
requests (DescribeGroups, DeleteGroups) answer per group.

Authorization (Kafka's rules, server/security/rules.py): FindCoordinator, DescribeGroups and
DeleteGroups answer GROUP_AUTHORIZATION_FAILED per group (Describe, Describe, Delete);
ConsumerGroupHeartbeat needs Read on the group and Describe on every subscribed topic;
OffsetCommit Read on the group and, per partition, Read on its topic; OffsetFetch Describe on the
group and, per partition, Describe on its topic (a fetch of every partition leaves out the topics
the caller may not see); ListGroups lists every group with Describe on the cluster, else the
groups the caller may Describe. Every check happens before the coordinator is asked.

Imports: grpc, freshet.v1, freshet.server. Thread-safety: handlers run on the node's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server import status
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import common_pb2, group_pb2, group_pb2_grpc

E = common_pb2.ErrorCode

logger = logging.getLogger(__name__)

#: locate(group_id) -> the Coordinator entry for that group (endpoint, partition, error).
Locate = Callable[[str], Awaitable[group_pb2.Coordinator]]


class GroupService(group_pb2_grpc.GroupServicer):
    """gRPC handlers of the Group service. Event-loop only."""

    def __init__(self, coordinator: GroupCoordinator, locate: Locate, node_id: int = -1, authorizer: Authorizer | None = None) -> None:
        self.coordinator = coordinator
        self._locate = locate
        self.node_id = node_id
        self.authorizer = authorizer or rules.allow_all()

    def register(self, server: grpc.aio.Server) -> None:
        group_pb2_grpc.add_GroupServicer_to_server(self, server)

    @status.handler()
    async def FindCoordinator(self, request, context):
        response = group_pb2.FindCoordinatorResponse()
        refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.GROUP, request.group_ids)
        for group_id in request.group_ids:
            if group_id in refused:
                response.coordinators.add(
                    group_id=group_id,
                    coordinator=common_pb2.BrokerEndpoint(node_id=-1),
                    offsets_partition=-1,
                    error=status.detail(E.GROUP_AUTHORIZATION_FAILED, refused[group_id]),
                )
                continue
            response.coordinators.append(await self._locate(group_id))
        return response

    @status.handler()
    async def ConsumerGroupHeartbeat(self, request, context):
        authorizer = self.authorizer
        authorizer.check(Operation.READ, ResourceType.GROUP, request.group_id)
        refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.TOPIC, request.subscribed_topic_names)
        rules.refuse(refused, ResourceType.TOPIC)
        return await self.coordinator.heartbeat(request)

    @status.handler()
    async def OffsetCommit(self, request, context):
        authorizer = self.authorizer
        authorizer.check(Operation.READ, ResourceType.GROUP, request.group_id)
        refused = rules.denials(authorizer, Operation.READ, ResourceType.TOPIC, (p.topic for p in request.partitions))
        if not refused:
            return await self.coordinator.commit(request)
        allowed = group_pb2.OffsetCommitRequest()
        allowed.CopyFrom(request)
        del allowed.partitions[:]
        allowed.partitions.extend(p for p in request.partitions if p.topic not in refused)
        answered = await self.coordinator.commit(allowed) if allowed.partitions else group_pb2.OffsetCommitResponse()
        for wanted in request.partitions:
            if wanted.topic in refused:
                answered.results.add(
                    topic=wanted.topic, partition=wanted.partition,
                    error=status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[wanted.topic]),
                )
        return answered

    @status.handler()
    async def OffsetFetch(self, request, context):
        authorizer = self.authorizer
        authorizer.check(Operation.DESCRIBE, ResourceType.GROUP, request.group_id)
        if not authorizer.enabled:
            return await self.coordinator.fetch_offsets(request)
        if not request.partitions:
            # Every committed partition: leave out the topics the caller may not see (Kafka).
            response = await self.coordinator.fetch_offsets(request)
            visible = set(authorizer.filter(Operation.DESCRIBE, ResourceType.TOPIC, {r.topic for r in response.results}))
            kept = [result for result in response.results if result.topic in visible]
            del response.results[:]
            response.results.extend(kept)
            return response
        refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.TOPIC, (p.topic for p in request.partitions))
        if not refused:
            return await self.coordinator.fetch_offsets(request)
        allowed = group_pb2.OffsetFetchRequest(
            group_id=request.group_id, partitions=[p for p in request.partitions if p.topic not in refused]
        )
        response = await self.coordinator.fetch_offsets(allowed) if allowed.partitions else group_pb2.OffsetFetchResponse()
        for wanted in request.partitions:
            if wanted.topic in refused:
                response.results.add(
                    topic=wanted.topic, partition=wanted.partition, offset=-1, leader_epoch=-1,
                    error=status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[wanted.topic]),
                )
        return response

    @status.handler()
    async def ListGroups(self, request, context):
        response = self.coordinator.list_groups()
        authorizer = self.authorizer
        if not authorizer.enabled or authorizer.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return response
        visible = set(authorizer.filter(Operation.DESCRIBE, ResourceType.GROUP, [g.group_id for g in response.groups]))
        kept = [group for group in response.groups if group.group_id in visible]
        del response.groups[:]
        response.groups.extend(kept)
        return response

    @status.handler()
    async def DescribeGroups(self, request, context):
        return await describe_groups(self.coordinator, request, self.node_id, self.authorizer)

    @status.handler()
    async def DeleteGroups(self, request, context):
        return await delete_groups(self.coordinator, request, self.node_id, self.authorizer)

async def describe_groups(
    coordinator: GroupCoordinator,
    request: group_pb2.DescribeGroupsRequest,
    node_id: int = -1,
    authorizer: Authorizer | None = None,
) -> group_pb2.DescribeGroupsResponse:
    """Per group: its description, or an ErrorDetail (GROUP_AUTHORIZATION_FAILED without
    Describe on it, GROUP_ID_NOT_FOUND, NOT_COORDINATOR, ...)."""
    response = group_pb2.DescribeGroupsResponse()
    refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.GROUP, request.group_ids) if authorizer else {}
    for group_id in request.group_ids:
        if group_id in refused:
            response.groups.add(group_id=group_id, error=status.detail(E.GROUP_AUTHORIZATION_FAILED, refused[group_id]))
            continue
        try:
            response.groups.append(coordinator.describe_group(group_id))
        except Exception as error:
            response.groups.add(group_id=group_id, error=status.detail_for(error, node_id))
    return response


async def delete_groups(
    coordinator: GroupCoordinator,
    request: group_pb2.DeleteGroupsRequest,
    node_id: int = -1,
    authorizer: Authorizer | None = None,
) -> group_pb2.DeleteGroupsResponse:
    """Per group: NONE, or GROUP_AUTHORIZATION_FAILED (no Delete on it) / NON_EMPTY_GROUP /
    GROUP_ID_NOT_FOUND / NOT_COORDINATOR."""
    response = group_pb2.DeleteGroupsResponse()
    refused = rules.denials(authorizer, Operation.DELETE, ResourceType.GROUP, request.group_ids) if authorizer else {}
    for group_id in request.group_ids:
        if group_id in refused:
            response.results.add(group_id=group_id, error=status.detail(E.GROUP_AUTHORIZATION_FAILED, refused[group_id]))
            continue
        try:
            await coordinator.delete_group(group_id)
            response.results.add(group_id=group_id, error=status.ok_detail())
        except Exception as error:
            response.results.add(group_id=group_id, error=status.detail_for(error, node_id))
    return response
