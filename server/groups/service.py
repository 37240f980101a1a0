"""The `freshet.v1.Group` gRPC service of a broker: thin handlers over the GroupCoordinator.

Owns the wire side of consumer groups: FindCoordinator (any broker answers from its metadata,
creating __consumer_offsets through the `locate` seam on first use), and the coordinator RPCs, whose
domain errors leave through `status.handler` as gRPC statuses with an ErrorDetail (server/status.py). Multi-group
requests (DescribeGroups, DeleteGroups) answer per group.

Imports: grpc, freshet.v1, freshet.server. Thread-safety: handlers run on the node's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from freshet.server import status
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.v1 import group_pb2, group_pb2_grpc

logger = logging.getLogger(__name__)

#: locate(group_id) -> the Coordinator entry for that group (endpoint, partition, error).
Locate = Callable[[str], Awaitable[group_pb2.Coordinator]]


class GroupService(group_pb2_grpc.GroupServicer):
    """gRPC handlers of the Group service. Event-loop only."""

    def __init__(self, coordinator: GroupCoordinator, locate: Locate, node_id: int = -1) -> None:
        self.coordinator = coordinator
        self._locate = locate
        self.node_id = node_id

    def register(self, server: grpc.aio.Server) -> None:
        group_pb2_grpc.add_GroupServicer_to_server(self, server)

    @status.handler()
    async def FindCoordinator(self, request, context):
        response = group_pb2.FindCoordinatorResponse()
        for group_id in request.group_ids:
            response.coordinators.append(await self._locate(group_id))
        return response

    @status.handler()
    async def ConsumerGroupHeartbeat(self, request, context):
        return await self.coordinator.heartbeat(request)

    @status.handler()
    async def OffsetCommit(self, request, context):
        return await self.coordinator.commit(request)

    @status.handler()
    async def OffsetFetch(self, request, context):
        return await self.coordinator.fetch_offsets(request)

    @status.handler()
    async def ListGroups(self, request, context):
        return self.coordinator.list_groups()

    @status.handler()
    async def DescribeGroups(self, request, context):
        return await describe_groups(self.coordinator, request, self.node_id)

    @status.handler()
    async def DeleteGroups(self, request, context):
        return await delete_groups(self.coordinator, request, self.node_id)

async def describe_groups(
    coordinator: GroupCoordinator, request: group_pb2.DescribeGroupsRequest, node_id: int = -1
) -> group_pb2.DescribeGroupsResponse:
    """Per group: its description, or an ErrorDetail (GROUP_ID_NOT_FOUND, NOT_COORDINATOR, ...)."""
    response = group_pb2.DescribeGroupsResponse()
    for group_id in request.group_ids:
        try:
            response.groups.append(coordinator.describe_group(group_id))
        except Exception as error:
            response.groups.add(group_id=group_id, error=status.detail_for(error, node_id))
    return response


async def delete_groups(
    coordinator: GroupCoordinator, request: group_pb2.DeleteGroupsRequest, node_id: int = -1
) -> group_pb2.DeleteGroupsResponse:
    """Per group: NONE, or NON_EMPTY_GROUP / GROUP_ID_NOT_FOUND / NOT_COORDINATOR."""
    response = group_pb2.DeleteGroupsResponse()
    for group_id in request.group_ids:
        try:
            await coordinator.delete_group(group_id)
            response.results.add(group_id=group_id, error=status.ok_detail())
        except Exception as error:
            response.results.add(group_id=group_id, error=status.detail_for(error, node_id))
    return response
