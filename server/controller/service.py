"""The gRPC Controller service of a node: routing each RPC to the local role that answers it.

Owns the servicer of `freshet.v1.Controller` (proto/freshet/v1/controller.proto):

- RPCs that change metadata (admin, AlterPartition, AllocateProducerIds) and DescribeQuorum run on
  the local ActiveController when this node is the active controller, and are otherwise forwarded
  to it (controller_client.forward, KIP-590) with the client's request ids. A request that was
  itself forwarded is never forwarded again (NOT_CONTROLLER with the hint instead), so forwarding
  cannot loop. When the local controller loses its role mid-request, or the outcome of a proposal
  is unknown, the request is retried (same request ids: at most once) until its deadline.
  After a forwarded write the answer waits (up to a second) for this node's image to reach the
  write's offset, so the client reads its own write from the node it talks to.
- BrokerHeartbeat runs on the active controller; elsewhere it ends at once with NOT_CONTROLLER and
  the controller hint.
- WatchMetadata is served by any node with the controller role from its local voter (snapshot,
  then deltas from the quorum's recent-command ring, keepalives when idle).
- DescribeCluster, DescribeConfigs and ListPartitionReassignments answer from this node's image.
- Users and ACLs (security_requests): changes need Alter on the cluster and are routed like the
  other admin RPCs; DescribeUserScramCredentials and DescribeAcls need Describe on the cluster and
  answer from this node's image. The node the client called (not the active controller, which sees
  a forwarding node) writes one audit line and counts a metric per accepted change
  (server.security.changes). With security off (PLAINTEXT) every check passes: users can be
  prepared before security is turned on, as Kafka allows.
- WatchMetadata with `redact_secrets` serves snapshots and deltas without SCRAM salts and keys.

Every failure leaves through `status.handler` as a gRPC status with a freshet.v1.ErrorDetail
(server/status.py); a forwarded request's error keeps the active controller's gRPC code.

Imports: asyncio, grpc, freshet.metadata, freshet.server, wire types.
Thread-safety: not thread-safe; grpc.aio runs every handler on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from freshet.metadata import commands, snapshot
from freshet.metadata import controller as logic
from freshet.metadata.errors import ControllerRequestError, OutcomeUnknownError
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.metadata.quorum import MetadataQuorum
from freshet.metadata.security import Operation, ResourceType, ScramMechanism
from freshet.server import limits, status
from freshet.server.cluster.channels import FORWARDED_METADATA_KEY, ControllerChannels, forward
from freshet.server.cluster.publisher import WATCH_KEEPALIVE_S, MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.controller.active import ActiveController
from freshet.server.errors import InvalidRequestError, NotControllerError, RequestTimedOutError
from freshet.server.security import rules
from freshet.server.security.authorizer import DENIAL_CODES, Authorizer
from freshet.server.security.changes import SecurityChanges
from freshet.server.security.management import (
    ALL_MECHANISMS,
    binding_of,
    describe_acls,
    describe_users,
    filter_of,
    redacted_command,
    redacted_image,
)
from freshet.v1 import common_pb2, controller_pb2, controller_pb2_grpc, metadata_pb2

logger = logging.getLogger(__name__)

#: How long DescribeCluster on a node that is not the active controller waits for its disk reports.
DISK_REPORT_WAIT_S = 1.0

E = common_pb2.ErrorCode
READ_YOUR_WRITE_WAIT_S = 1.0
LOCAL_RETRY_S = 0.05

_SOURCES = {
    logic.ConfigSource.DEFAULT: controller_pb2.CONFIG_SOURCE_DEFAULT,
    logic.ConfigSource.STATIC_BROKER: controller_pb2.CONFIG_SOURCE_STATIC_BROKER,
    logic.ConfigSource.DYNAMIC_CLUSTER: controller_pb2.CONFIG_SOURCE_DYNAMIC_CLUSTER,
    logic.ConfigSource.DYNAMIC_BROKER: controller_pb2.CONFIG_SOURCE_DYNAMIC_BROKER,
    logic.ConfigSource.DYNAMIC_TOPIC: controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC,
    logic.ConfigSource.DYNAMIC_GROUP: controller_pb2.CONFIG_SOURCE_DYNAMIC_GROUP,
}


class ControllerService(controller_pb2_grpc.ControllerServicer):
    """freshet.v1.Controller on one node (see the module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        config: NodeConfig,
        publisher: MetadataPublisher,
        channels: ControllerChannels,
        controller: ActiveController | None,
        quorum: MetadataQuorum | None,
        controller_hint: Callable[[], int | None],
        authorizer: Authorizer | None = None,
        security_changes: SecurityChanges | None = None,
    ) -> None:
        self.config = config
        self.authorizer = authorizer or rules.allow_all()
        self.security_changes = security_changes if security_changes is not None else SecurityChanges()
        self.node_id = config.node_id
        self._publisher = publisher
        self._channels = channels
        self._controller = controller
        self._quorum = quorum
        self.controller_hint = controller_hint          # the node's best guess of the active controller
        self.watchers = 0

    # -- routing ---------------------------------------------------------------------------------

    def not_controller_error(self) -> NotControllerError:
        if self._controller is not None:
            return self._controller.not_controller_error()
        hint = self.controller_hint()
        endpoint = self._channels.endpoint(hint) if hint is not None else None
        return NotControllerError(
            -1 if hint is None else hint,
            endpoint.host if endpoint else "",
            endpoint.port if endpoint else 0,
            f"node {self.config.node_id} is not a controller",
        )

    def _is_forwarded(self, context) -> bool:
        """Whether another node forwarded this request: it then goes no further (NOT_CONTROLLER
        instead), and the node the client called writes the audit line of a user or ACL change.
        Only a node may say so. From any other caller the header is ignored: otherwise a client
        could send it and make its change leave no audit line."""
        if not any(key == FORWARDED_METADATA_KEY for key, _ in (context.invocation_metadata() or ())):
            return False
        return self.authorizer.is_node()

    async def _route(self, method: str, request, context, local: Callable[[object], Awaitable] | None):
        remaining = context.time_remaining()
        timeout_s = self.config.request_timeout_ms / 1000 if remaining is None else remaining
        deadline = time.monotonic() + timeout_s
        is_forwarded = self._is_forwarded(context)
        while True:
            controller = self._controller
            if local is not None and controller is not None and controller.is_active:
                try:
                    return await asyncio.wait_for(local(request), max(0.001, deadline - time.monotonic()))
                except TimeoutError:
                    raise RequestTimedOutError(method, timeout_s) from None
                except NotControllerError:
                    pass                         # lost the role mid-request: the new controller answers
                except OutcomeUnknownError as error:
                    if time.monotonic() >= deadline:
                        raise
                    logger.info("%s: %s; retrying with the same request id", method, error)
                    await asyncio.sleep(LOCAL_RETRY_S)
                    continue
            if is_forwarded:
                raise self.not_controller_error()
            response = await forward(
                self._channels,
                method,
                request,
                deadline,
                self.controller_hint,
                skip_self=self._controller is not None,
            )
            offset = getattr(response, "metadata_offset", 0)
            if offset > 0:
                await self._publisher.wait_for_offset(offset, min(READ_YOUR_WRITE_WAIT_S, max(0.0, deadline - time.monotonic())))
            return response

    def _local(self, name: str) -> Callable[[object], Awaitable] | None:
        controller = self._controller
        return None if controller is None else getattr(controller, name)

    @staticmethod
    def _with_request_id(request):
        if not request.request_id:
            request.request_id = commands.new_request_id()
        return request

    # -- admin (forwarded) -----------------------------------------------------------------------

    @status.handler()
    async def CreateTopics(self, request, context):
        rules.refuse(rules.create_denials(self.authorizer, (t.name for t in request.topics)), ResourceType.TOPIC)
        return await self._route("CreateTopics", self._with_request_id(request), context, self._local("create_topics"))

    @status.handler()
    async def DeleteTopics(self, request, context):
        rules.refuse(rules.denials(self.authorizer, Operation.DELETE, ResourceType.TOPIC, request.names), ResourceType.TOPIC)
        return await self._route("DeleteTopics", self._with_request_id(request), context, self._local("delete_topics"))

    @status.handler()
    async def CreatePartitions(self, request, context):
        refused = rules.denials(self.authorizer, Operation.ALTER, ResourceType.TOPIC, (t.topic for t in request.topics))
        rules.refuse(refused, ResourceType.TOPIC)
        return await self._route(
            "CreatePartitions", self._with_request_id(request), context, self._local("create_partitions")
        )

    @status.handler()
    async def ElectLeaders(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        return await self._route("ElectLeaders", self._with_request_id(request), context, self._local("elect_leaders"))

    @status.handler()
    async def AlterPartitionReassignments(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        return await self._route(
            "AlterPartitionReassignments", self._with_request_id(request), context, self._local("alter_reassignments")
        )

    @status.handler()
    async def DecommissionBroker(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        return await self._route(
            "DecommissionBroker", self._with_request_id(request), context, self._local("decommission_broker")
        )

    @status.handler()
    async def IncrementalAlterConfigs(self, request, context):
        image = self._publisher.image
        for resource in request.resources:
            self.authorizer.check(Operation.ALTER_CONFIGS, *rules.config_resource(image, resource.resource))
        return await self._route(
            "IncrementalAlterConfigs", self._with_request_id(request), context, self._local("incremental_alter_configs")
        )

    @status.handler()
    async def AlterPartition(self, request, context):
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        return await self._route("AlterPartition", self._with_request_id(request), context, self._local("alter_partition"))

    @status.handler()
    async def AllocateProducerIds(self, request, context):
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        return await self._route(
            "AllocateProducerIds", self._with_request_id(request), context, self._local("allocate_producer_ids")
        )

    @status.handler()
    async def DescribeQuorum(self, request, context):
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        controller = self._controller
        local = None if controller is None else (lambda _request: controller.describe_quorum())
        return await self._route("DescribeQuorum", request, context, local)

    # -- users and ACLs ---------------------------------------------------------------------------

    @status.handler()
    async def UpsertUserScramCredentials(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        response = await self._route(
            "UpsertUserScramCredentials", self._with_request_id(request), context, self._local("upsert_user_scram_credentials")
        )
        if not self._is_forwarded(context):
            for result in response.results:
                if result.error.code == E.NONE:
                    self.security_changes.user_changed(result.user, "upsert", ScramMechanism(result.mechanism))
        return response

    @status.handler()
    async def DeleteUserScramCredentials(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        response = await self._route(
            "DeleteUserScramCredentials", self._with_request_id(request), context, self._local("delete_user_scram_credentials")
        )
        if not self._is_forwarded(context):
            for result in response.results:
                if result.error.code == E.NONE:
                    mechanism = None if result.mechanism == ALL_MECHANISMS else ScramMechanism(result.mechanism)
                    self.security_changes.user_changed(result.user, "delete", mechanism)
        return response

    @status.handler()
    async def DescribeUserScramCredentials(self, request, context):
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        return describe_users(self._publisher.image, request.names)

    @status.handler()
    async def CreateAcls(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        response = await self._route("CreateAcls", self._with_request_id(request), context, self._local("create_acls"))
        if not self._is_forwarded(context):
            self.security_changes.acls_created(
                binding_of(result.acl) for result in response.results if result.error.code == E.NONE
            )
        return response

    @status.handler()
    async def DescribeAcls(self, request, context):
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        return describe_acls(self._publisher.image, filter_of(request.filter))

    @status.handler()
    async def DeleteAcls(self, request, context):
        self.authorizer.check(Operation.ALTER, ResourceType.CLUSTER)
        response = await self._route("DeleteAcls", self._with_request_id(request), context, self._local("delete_acls"))
        if not self._is_forwarded(context):
            self.security_changes.acls_deleted(
                binding_of(record) for result in response.results if result.error.code == E.NONE for record in result.acls
            )
        return response

    # -- read-only, from this node's image -------------------------------------------------------

    @status.handler()
    async def DescribeCluster(self, request, context):
        """From this node's image; the brokers' disk reports are the active controller's (from
        heartbeats, memory only): asked of it with a short deadline when this node is not it, and
        left unknown (has_disk_report false) when it cannot be reached."""
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        response = describe_cluster(self._publisher.image, self.config)
        controller = self._controller
        if controller is not None and controller.is_active:
            add_disk_reports(response, controller.disk_reports())
        elif not self._is_forwarded(context):
            deadline = time.monotonic() + DISK_REPORT_WAIT_S
            try:
                answer = await forward(self._channels, "DescribeCluster", request, deadline, self.controller_hint,
                                       skip_self=controller is not None)
            except Exception as error:  # noqa: BLE001 - the reports are optional; the rest answers
                logger.debug("no disk reports from the active controller: %s", error)
            else:
                add_disk_reports(response, {
                    b.endpoint.node_id: (b.log_dir_free_bytes, b.log_dir_total_bytes, b.is_log_dir_full)
                    for b in answer.brokers if b.has_disk_report
                })
        return response

    @status.handler()
    async def DescribeConfigs(self, request, context):
        image = self._publisher.image
        response = controller_pb2.DescribeConfigsResponse(metadata_offset=image.offset)
        for resource in request.resources:
            result = response.results.add(resource=resource)
            resource_type, name = rules.config_resource(image, resource)
            refused = rules.denials(self.authorizer, Operation.DESCRIBE_CONFIGS, resource_type, (name,))
            if refused:
                result.error.CopyFrom(status.detail(DENIAL_CODES[resource_type], refused[name]))
                continue
            is_self = resource.type == metadata_pb2.CONFIG_RESOURCE_BROKER and resource.broker_id == self.config.node_id
            try:
                described = logic.describe_configs(
                    image, resource, list(request.keys), self.config.broker_configs if is_self else None
                )
            except ControllerRequestError as error:
                result.error.CopyFrom(status.detail_for(error))
                continue
            result.error.CopyFrom(status.ok_detail())
            for item in described:
                result.configs.add(key=item.key, value=item.value, source=_SOURCES[item.source], doc=item.doc)
        return response

    @status.handler()
    async def GenerateReassignment(self, request, context):
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        image = self._publisher.image
        threshold = image.broker_config(self.node_id).auto_balance_threshold_percentage
        proposal = logic.generate_reassignment(image, list(request.topics), list(request.broker_ids), threshold)
        response = controller_pb2.GenerateReassignmentResponse(metadata_offset=image.offset)
        for topic, partition, current, proposed in proposal:
            response.partitions.add(
                partition=common_pb2.TopicPartition(topic=topic, partition=partition),
                current_replicas=current,
                proposed_replicas=proposed,
            )
        return response

    @status.handler()
    async def ListPartitionReassignments(self, request, context):
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        image = self._publisher.image
        response = controller_pb2.ListPartitionReassignmentsResponse(metadata_offset=image.offset)
        if request.partitions:
            wanted = [logic.partition_of(image, tp.topic, tp.partition) for tp in request.partitions]
        else:
            wanted = list(logic.all_partitions(image))
        for topic, partition in wanted:
            if not partition.is_reassigning:
                continue
            response.reassignments.add(
                partition=common_pb2.TopicPartition(topic=topic.name, partition=partition.partition),
                replicas=partition.replicas,
                adding_replicas=partition.adding_replicas,
                removing_replicas=partition.removing_replicas,
                isr=partition.isr,
                leader=partition.leader,
                by_balancer=partition.is_balancer_move,
            )
        return response

    # -- broker sessions -------------------------------------------------------------------------

    @status.handler()
    async def BrokerHeartbeat(self, request_iterator, context):
        self.authorizer.check(Operation.CLUSTER_ACTION, ResourceType.CLUSTER)
        controller = self._controller
        if controller is None or not controller.is_active:
            raise self.not_controller_error()
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        await controller.serve_heartbeats(context, first)

    # -- metadata watch --------------------------------------------------------------------------

    @status.handler()
    async def WatchMetadata(self, request, context):
        # Brokers watch as nodes (super users); `freshet metadata dump` needs Describe on the cluster.
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        quorum = self._quorum
        if quorum is None:
            raise self.not_controller_error()
        if request.from_offset < -1:
            raise InvalidRequestError("from_offset must be -1 or an offset")
        loop = asyncio.get_running_loop()
        sent = request.from_offset
        self.watchers += 1
        logger.info("%s watches metadata from offset %d", request.watcher or context.peer(), sent)
        try:
            while True:
                changed = self._publisher.change_event()
                applied = None if sent < 0 else quorum.recent_commands(sent)
                if applied is None:
                    image = quorum.image
                    served = redacted_image(image) if request.redact_secrets else image
                    data = await loop.run_in_executor(None, snapshot.encode_snapshot, served)
                    await context.write(
                        controller_pb2.WatchMetadataResponse(
                            snapshot=controller_pb2.MetadataSnapshotData(offset=image.offset, snapshot=data)
                        )
                    )
                    sent = image.offset
                    continue
                if applied:
                    start = 0
                    while start < len(applied):
                        batch = controller_pb2.MetadataDeltas(previous_offset=sent)
                        size = 0
                        while start < len(applied) and len(batch.deltas) < limits.WATCH_DELTAS_PER_MESSAGE_MAX and size < limits.WATCH_DELTA_BYTES_PER_MESSAGE_MAX:
                            item = applied[start]
                            command = redacted_command(item.command) if request.redact_secrets else item.command
                            batch.deltas.add(offset=item.offset, command=command)
                            size += len(item.command)
                            sent = item.offset
                            start += 1
                        await context.write(controller_pb2.WatchMetadataResponse(deltas=batch))
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), WATCH_KEEPALIVE_S)
                except TimeoutError:
                    await context.write(
                        controller_pb2.WatchMetadataResponse(deltas=controller_pb2.MetadataDeltas(previous_offset=sent))
                    )
        finally:
            self.watchers -= 1
            logger.info("%s stopped watching metadata at offset %d", request.watcher or context.peer(), sent)


def add_disk_reports(response: controller_pb2.DescribeClusterResponse, reports: dict) -> None:
    """Fill each described broker's log-directory report from `reports` (node id -> (free bytes,
    total bytes, is full), or None: no report)."""
    for broker in response.brokers:
        report = reports.get(broker.endpoint.node_id)
        if report is not None:
            broker.has_disk_report = True
            broker.log_dir_free_bytes, broker.log_dir_total_bytes, broker.is_log_dir_full = report


def describe_cluster(image: MetadataImage, config: NodeConfig) -> controller_pb2.DescribeClusterResponse:
    """DescribeCluster from an image: brokers with their state, the controller, partition counts."""
    response = controller_pb2.DescribeClusterResponse(
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        controller_epoch=image.controller_epoch,
        metadata_offset=image.offset,
        topic_count=len(image.topics_by_id),
        answering_node_id=config.node_id,
    )
    endpoint = config.controller_listeners.get(image.controller_id)
    if endpoint is not None:
        response.controller.CopyFrom(
            common_pb2.BrokerEndpoint(node_id=image.controller_id, host=endpoint.host, port=endpoint.port)
        )
    replica_counts, leader_counts = logic.broker_loads(image)
    for node_id in sorted(image.brokers):
        broker = image.brokers[node_id]
        if broker.in_controlled_shutdown:
            state = controller_pb2.BROKER_CONTROLLED_SHUTDOWN
        elif broker.is_fenced:
            state = controller_pb2.BROKER_FENCED
        else:
            state = controller_pb2.BROKER_ACTIVE
        response.brokers.add(
            endpoint=common_pb2.BrokerEndpoint(node_id=node_id, host=broker.host, port=broker.port, rack=broker.rack),
            state=state,
            broker_epoch=broker.broker_epoch,
            incarnation_id=broker.incarnation_id,
            is_decommissioning=broker.is_decommissioning,
            replica_count=replica_counts[node_id],
            leader_count=leader_counts[node_id],
        )
    for node_id, address in sorted(config.controller_listeners.items()):
        response.controllers.add(node_id=node_id, host=address.host, port=address.port)
    partitions = under_replicated = offline = 0
    for topic in image.topics_by_id.values():
        for partition in topic.partitions:
            partitions += 1
            if len(partition.isr) < len(partition.replicas):
                under_replicated += 1
            if partition.leader == NO_LEADER:
                offline += 1
    response.partition_count = partitions
    response.under_replicated_partitions = under_replicated
    response.offline_partitions = offline
    return response
