"""Admin requests on the active controller: topics, partitions, elections, reassignments, configs.

Owns the Controller RPCs a client or broker sends to change metadata (KRaft's
ReplicationControlManager and ConfigurationControlManager seen from the RPC side): CreateTopics,
DeleteTopics, CreatePartitions, ElectLeaders, AlterPartitionReassignments, DecommissionBroker,
IncrementalAlterConfigs, AlterPartition, AllocateProducerIds, and DescribeQuorum.

- Each item of a request is one command with request id "<request id>/<item>", validated and
  built from the newest image under the controller's write lock; a request id the quorum
  remembers returns its first result without new validation. AlterPartition is the exception:
  its valid changes go in atomic batches ("<request id>/isr-<n>"), see `alter_partition`.
- An item refused by validation gets its error in the response; the other items go on.
- Losing leadership mid-request raises NotControllerError so that the caller forwards the
  request (same request ids) to the new controller.

Imports: asyncio, freshet.metadata (controller logic, commands, errors), freshet.server.status
(error details), wire types; the ActiveController only for type hints.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.errors import CommandFailedError, ControllerRequestError, StaleBrokerEpochError
from freshet.metadata.quorum import MetadataQuorum
from freshet.server import status
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

if TYPE_CHECKING:
    from freshet.server.controller.active import ActiveController

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
# ChangePartition commands per atomic batch of one AlterPartition (about 45 bytes each: 2,000 are
# ~90 KiB, well under the quorum's command size limit, and a few ms to apply).
ALTER_PARTITION_BATCH_MAX = 2_000
# Answers of an "every partition" election that are not worth reporting.
_NOTHING_TO_ELECT = frozenset({E.ELECTION_NOT_NEEDED, E.PREFERRED_LEADER_NOT_AVAILABLE, E.ELIGIBLE_LEADERS_NOT_AVAILABLE})


class AdminRequests:
    """The admin requests of one controller (see the module docstring). Not thread-safe (loop)."""

    def __init__(self, controller: ActiveController, quorum: MetadataQuorum, loop: asyncio.AbstractEventLoop) -> None:
        self._controller = controller
        self._quorum = quorum
        self._loop = loop

    def _remembered(self, request_id: str) -> metadata_pb2.MetadataResult | None:
        return self._quorum.image.request_result(request_id)

    async def _item(
        self,
        request_id: str,
        error: common_pb2.ErrorDetail,
        response,
        build: Callable[[], metadata_pb2.MetadataCommand],
        validate_only: bool = False,
    ) -> metadata_pb2.MetadataResult | None:
        """One item of an admin request (called with the lock held): the result remembered for
        `request_id`, or the command build() validates and returns, proposed now (build raises
        ControllerRequestError to refuse the item). Fills `error` and the response's
        metadata_offset; None when nothing was proposed (refused, or validate_only)."""
        remembered = None if validate_only else self._remembered(request_id)
        if remembered is None:
            try:
                command = build()
            except ControllerRequestError as refused:
                error.CopyFrom(status.detail_for(refused))
                return None
            if validate_only:
                error.CopyFrom(status.ok_detail())
                return None
            remembered = await self._controller.propose_for_request(command)
        self._fill_outcome(error, remembered, response)
        return remembered

    async def create_topics(self, request: controller_pb2.CreateTopicsRequest) -> controller_pb2.CreateTopicsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.CreateTopicsResponse()
        names = [topic.name for topic in request.topics]
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, topic in enumerate(request.topics):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(name=topic.name)
                if names.count(topic.name) > 1:
                    result.error.CopyFrom(status.detail(E.INVALID_REQUEST, f"topic {topic.name!r} appears more than once in the request"))
                    continue

                def build(topic=topic, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    image = self._quorum.image
                    plan = logic.plan_topic(
                        image,
                        topic.name,
                        topic.num_partitions if topic.HasField("num_partitions") else None,
                        topic.replication_factor if topic.HasField("replication_factor") else None,
                        [list(a.replicas) for a in topic.assignments],
                        _config_map(topic.configs),
                        core.broker_config(image, self._controller.node_id),
                    )
                    _fill_assignments(result.assignments, [replicas for replicas, _, _ in plan.assignments])
                    result.num_partitions = len(plan.assignments)
                    result.replication_factor = plan.replication_factor
                    return plan.command(rid, core.controller_epoch, commands.new_topic_id())

                outcome = await self._item(rid, result.error, response, build, request.validate_only)
                if outcome is not None and outcome.error_code == E.NONE:
                    result.topic_id = outcome.topic_id
                    created = self._quorum.image.topic_by_id(outcome.topic_id)
                    if created is not None and not result.assignments:      # a remembered creation
                        _fill_assignments(result.assignments, [p.replicas for p in created.partitions])
                        result.num_partitions = len(created.partitions)
                        result.replication_factor = created.replication_factor
        return response

    async def delete_topics(self, request: controller_pb2.DeleteTopicsRequest) -> controller_pb2.DeleteTopicsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.DeleteTopicsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, name in enumerate(request.names):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(name=name)

                def build(name=name, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    topic = logic.topic_by_name(self._quorum.image, name)
                    result.topic_id = topic.topic_id
                    return commands.delete_topic(rid, core.controller_epoch, topic.topic_id)

                await self._item(rid, result.error, response, build)
        return response

    async def create_partitions(self, request: controller_pb2.CreatePartitionsRequest) -> controller_pb2.CreatePartitionsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.CreatePartitionsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, increase in enumerate(request.topics):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(topic=increase.topic)

                def build(increase=increase, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    topic, states = logic.plan_partitions(
                        self._quorum.image, increase.topic, increase.count, [list(a.replicas) for a in increase.assignments]
                    )
                    _fill_assignments(result.assignments, [replicas for replicas, _, _ in states])
                    return commands.create_partitions(rid, core.controller_epoch, topic.topic_id, increase.count, states)

                await self._item(rid, result.error, response, build, request.validate_only)
        return response

    async def elect_leaders(self, request: controller_pb2.ElectLeadersRequest) -> controller_pb2.ElectLeadersResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.ElectLeadersResponse()
        is_unclean = request.type == controller_pb2.ELECTION_UNCLEAN
        async with self._controller.lock:
            core = self._controller.require_active()
            if request.partitions:
                targets = [(tp.topic, tp.partition) for tp in request.partitions]
                quiet = False
            else:
                targets = [(topic.name, partition.partition) for topic, partition in logic.all_partitions(self._quorum.image)]
                quiet = True                     # "all": report only the partitions that changed
            for item, (topic_name, number) in enumerate(targets):
                rid = logic.item_request_id(request.request_id, item)
                outcome = controller_pb2.ElectLeaderResult(
                    partition=common_pb2.TopicPartition(topic=topic_name, partition=number), leader=-1
                )
                elections: list[logic.PartitionChange] = []

                def build(topic_name=topic_name, number=number, outcome=outcome, elections=elections, rid=rid):
                    image = self._quorum.image
                    topic, partition = logic.partition_of(image, topic_name, number)
                    outcome.leader = partition.leader
                    if is_unclean:
                        change = logic.unclean_election(image, topic, partition)
                    else:
                        change = logic.preferred_election(image, topic, partition)
                    elections.append(change)
                    return change.command(rid, core.controller_epoch)

                applied = await self._item(rid, outcome.error, response, build)
                if applied is None and quiet and outcome.error.code in _NOTHING_TO_ELECT:
                    continue
                if applied is not None and applied.error_code == E.NONE:
                    outcome.leader = applied.partition.leader
                    if elections and elections[0].is_unclean:
                        self._controller.metrics.unclean_elections += 1
                    elif elections:
                        self._controller.metrics.clean_elections += 1
                response.results.append(outcome)
        return response

    async def alter_reassignments(
        self, request: controller_pb2.AlterPartitionReassignmentsRequest
    ) -> controller_pb2.AlterPartitionReassignmentsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.AlterPartitionReassignmentsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, reassignment in enumerate(request.reassignments):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(partition=reassignment.partition)

                def build(reassignment=reassignment, rid=rid) -> metadata_pb2.MetadataCommand:
                    image = self._quorum.image
                    topic, partition = logic.partition_of(image, reassignment.partition.topic, reassignment.partition.partition)
                    targets = list(reassignment.target_replicas)
                    logic.check_reassignment_targets(image, topic, partition, targets)
                    return commands.reassign_partition(rid, core.controller_epoch, topic.topic_id, partition.partition, targets)

                await self._item(rid, result.error, response, build)
        self._controller.wake_work()
        return response

    async def decommission_broker(
        self, request: controller_pb2.DecommissionBrokerRequest
    ) -> controller_pb2.DecommissionBrokerResponse:
        """Mark (or, with `cancel`, unmark) a broker decommissioning; the balancer then empties it.
        The state machine refuses an unknown broker and a decommission that would leave too few
        brokers for some topic's replication factor."""
        logic.check_request_id(request.request_id)
        response = controller_pb2.DecommissionBrokerResponse()
        rid = logic.item_request_id(request.request_id, 0)
        async with self._controller.lock:
            core = self._controller.require_active()
            build_command = commands.cancel_decommission_broker if request.cancel else commands.decommission_broker
            await self._item(rid, response.error, response, lambda: build_command(rid, core.controller_epoch, request.node_id))
        self._controller.wake_work()
        return response

    async def incremental_alter_configs(
        self, request: controller_pb2.IncrementalAlterConfigsRequest
    ) -> controller_pb2.IncrementalAlterConfigsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.IncrementalAlterConfigsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, resource in enumerate(request.resources):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(resource=resource.resource)

                def build(resource=resource, rid=rid) -> metadata_pb2.MetadataCommand:
                    to_set: dict[str, str] = {}
                    to_delete: list[str] = []
                    for entry in resource.configs:
                        if entry.key in to_set or entry.key in to_delete:
                            raise ControllerRequestError(E.INVALID_REQUEST, f"configuration {entry.key!r} appears twice")
                        if entry.operation == controller_pb2.CONFIG_DELETE:
                            to_delete.append(entry.key)
                        else:
                            to_set[entry.key] = entry.value
                    if resource.replace_all:
                        own = logic.own_config_values(self._quorum.image, resource.resource)
                        to_delete += sorted(set(own) - set(to_set) - set(to_delete))
                    logic.check_config_changes(
                        self._quorum.image, resource.resource, to_set, to_delete, self._controller.settings.static_broker_configs
                    )
                    return commands.alter_configs(rid, core.controller_epoch, resource.resource, to_set, to_delete)

                await self._item(rid, result.error, response, build, request.validate_only)
        return response

    async def alter_partition(self, request: controller_pb2.AlterPartitionRequest) -> controller_pb2.AlterPartitionResponse:
        """The valid changes of the request in few commands (atomic batches of up to
        ALTER_PARTITION_BATCH_MAX ChangePartition, request ids "<request id>/isr-<n>"), as Kafka's
        controller commits an AlterPartition's partitions as one batch of records. One Raft commit
        per change took a restarted broker's 5,000 ISR expansions 50 s (requests timed out after
        10 s, partly applied, and were sent again). Each change is validated as before (broker
        epoch, leader and partition epochs, eligible replicas); a refused one gets its error and
        stays out of the batch. A single change, a batch the state machine rejects after all, and
        the changes of a retried request not yet applied go one command per change as before."""
        request_id = request.request_id or commands.new_request_id()
        logic.check_request_id(request_id)
        response = controller_pb2.AlterPartitionResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            retried = self._remembered(f"{request_id}/isr-0") is not None
            valid: list[tuple[int, controller_pb2.AlterPartitionResult, logic.PartitionChange]] = []
            for item, change in enumerate(request.changes):
                result = response.results.add(topic_id=change.topic_id, partition=change.partition)
                if retried and self._isr_change_applied(change):
                    self._fill_isr_state(change, result)          # a batch of the first attempt did it
                    continue
                try:
                    valid.append((item, result, self._planned_isr_change(request, change)))
                except ControllerRequestError as refused:
                    result.error.CopyFrom(status.detail_for(refused))
            if len(valid) > 1 and not retried:
                valid = await self._alter_partition_batches(request_id, core.controller_epoch, request, valid, response)
            for item, result, _ in valid:
                rid = logic.item_request_id(request_id, item)
                change = request.changes[item]
                applied = await self._item(
                    rid, result.error, response,
                    lambda change=change, rid=rid: self._planned_isr_change(request, change).command(rid, core.controller_epoch),
                )
                if applied is not None and applied.error_code == E.NONE:
                    result.partition_state.CopyFrom(applied.partition)
        self._controller.wake_work()                         # a reassignment may be able to complete now
        return response

    async def _alter_partition_batches(self, request_id: str, controller_epoch: int, request, valid: list, response) -> list:
        """Propose `valid` (item, result, planned change) as atomic batches and answer the
        changes of each applied one; the changes of a rejected batch are returned (to go one by one)."""
        left = []
        for number, start in enumerate(range(0, len(valid), ALTER_PARTITION_BATCH_MAX)):
            chunk = valid[start:start + ALTER_PARTITION_BATCH_MAX]
            inner = [planned.command(*commands.INNER) for _, _, planned in chunk]
            applied = await self._controller.propose_for_request(
                commands.atomic_batch(f"{request_id}/isr-{number}", controller_epoch, inner)
            )
            if applied.error_code != E.NONE:
                logger.info("an AlterPartition batch of %d changes was rejected (%s); proposing them one by one",
                            len(chunk), applied.error_message)
                left.extend(chunk)
                continue
            response.metadata_offset = max(response.metadata_offset, applied.offset)
            for item, result, _ in chunk:
                self._fill_isr_state(request.changes[item], result)
        return left

    def _planned_isr_change(self, request: controller_pb2.AlterPartitionRequest, change) -> logic.PartitionChange:
        """One change of an AlterPartition validated against the newest image (raises
        ControllerRequestError to refuse it)."""
        return logic.alter_partition_change(
            self._quorum.image, request.broker_id, request.broker_epoch, bytes(change.topic_id), change.partition,
            change.leader_epoch, change.partition_epoch, list(change.new_isr),
        )

    def _isr_change_applied(self, change) -> bool:
        """Whether the image shows `change`'s partition past the partition epoch it was asked at,
        under the same leader epoch (what a retried batch that was applied leaves)."""
        partition = self._image_partition(change)
        return partition is not None and partition.leader_epoch == change.leader_epoch and partition.partition_epoch > change.partition_epoch

    def _fill_isr_state(self, change, result) -> None:
        """Answer an applied change: OK, with the partition's state when the newest image holds
        exactly what this change made (its leader epoch, the next partition epoch, its ISR). When
        another command moved the partition on meanwhile, no state: the leader adopts nothing
        from the answer and takes the newer state, replicas included, from metadata."""
        result.error.CopyFrom(status.ok_detail())
        partition = self._image_partition(change)
        if partition is not None and (partition.leader_epoch, partition.partition_epoch, list(partition.isr)) == (
            change.leader_epoch, change.partition_epoch + 1, list(change.new_isr)
        ):
            result.partition_state.CopyFrom(metadata_pb2.PartitionChangeResult(
                leader=partition.leader, leader_epoch=partition.leader_epoch, partition_epoch=partition.partition_epoch,
                isr=partition.isr, replicas=partition.replicas,
            ))

    def _image_partition(self, change):
        topic = self._quorum.image.topic_by_id(bytes(change.topic_id))
        if topic is None or not 0 <= change.partition < len(topic.partitions):
            return None
        return topic.partitions[change.partition]

    async def allocate_producer_ids(
        self, request: controller_pb2.AllocateProducerIdsRequest
    ) -> controller_pb2.AllocateProducerIdsResponse:
        request_id = request.request_id or commands.new_request_id()
        logic.check_request_id(request_id)
        rid = logic.item_request_id(request_id, 0)
        async with self._controller.lock:
            core = self._controller.require_active()
            remembered = self._remembered(rid)
            if remembered is None:
                broker = self._quorum.image.brokers.get(request.broker_id)
                if broker is None or broker.broker_epoch != request.broker_epoch:
                    raise StaleBrokerEpochError(request.broker_id, request.broker_epoch, -1 if broker is None else broker.broker_epoch)
                remembered = await self._controller.propose_for_request(
                    commands.allocate_producer_ids(rid, core.controller_epoch, request.broker_id, request.broker_epoch)
                )
        if remembered.error_code != E.NONE:
            raise CommandFailedError(remembered.error_code, remembered.error_message, rid, remembered.offset)
        block = remembered.producer_ids
        return controller_pb2.AllocateProducerIdsResponse(
            first_producer_id=block.first_producer_id, size=block.size, metadata_offset=remembered.offset
        )

    async def describe_quorum(self) -> controller_pb2.DescribeQuorumResponse:
        self._controller.require_active()
        quorum_status = await self._loop.run_in_executor(None, self._quorum.status)
        response = controller_pb2.DescribeQuorumResponse(
            leader_id=-1 if quorum_status.leader_id is None else quorum_status.leader_id,
            term=quorum_status.term,
            commit_raft_index=quorum_status.commit_raft_index,
            last_raft_index=quorum_status.last_raft_index,
            applied_offset=quorum_status.applied_offset,
            has_quorum=quorum_status.has_quorum,
            snapshot_raft_index=quorum_status.snapshot_raft_index,
        )
        for voter in quorum_status.voters:
            response.voters.add(
                node_id=voter.node_id,
                raft_address=voter.address,
                is_connected=voter.is_connected,
                match_raft_index=-1 if voter.match_raft_index is None else voter.match_raft_index,
                lag=-1 if voter.lag is None else voter.lag,
            )
        return response

    @staticmethod
    def _fill_outcome(error: common_pb2.ErrorDetail, result: metadata_pb2.MetadataResult, response) -> None:
        if result.error_code == E.NONE:
            error.CopyFrom(status.ok_detail())
            response.metadata_offset = max(response.metadata_offset, result.offset)
        else:
            error.CopyFrom(status.detail(result.error_code, result.error_message))


def _config_map(entries) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in entries:
        if entry.key in values:
            raise ControllerRequestError(E.INVALID_CONFIG, f"configuration {entry.key!r} is given more than once")
        values[entry.key] = entry.value
    return values


def _fill_assignments(target, assignments) -> None:
    del target[:]
    for replicas in assignments:
        target.add(replicas=list(replicas))
