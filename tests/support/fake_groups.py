"""The Group service for the fake cluster: the real GroupCoordinator on every fake broker.

Not a test module; imported by the client tests. `FakeGroups(cluster)` gives each fake broker a
`freshet.server.groups.coordinator.GroupCoordinator` (the production coordinator: state machine,
assignors, record codec, loading) over the fake cluster's real partition logs of
`__consumer_offsets`:

- the coordinator of a group is the leader of its __consumer_offsets partition (Kafka's hash);
  FindCoordinator creates the topic on first use (as the controller does on a node);
- appends go through `PartitionLog.append_as_leader` on the leader (acks=all is immediate, as
  every fake replica shares the log); an append on a broker that no longer leads fails NOT_LEADER;
- moving a partition's leader (`cluster.move_leader`) makes the old coordinator drop its groups
  and the new one load them from the log, exactly as on leadership change in a node;
- `kill(node)` of a coordinator's broker: `failover(node)` moves its offsets partitions elsewhere.

All coordinators run on one asyncio loop thread; the sync gRPC handlers submit to it.

Thread-safety: thread-safe (the loop serialises coordinator work).
"""

from __future__ import annotations

import asyncio
import threading
import time

from freshet.server import status
from freshet.server.errors import NotCoordinatorError
from freshet.server.groups import records as group_records
from freshet.server.groups.coordinator import CoordinatorConfig, GroupCoordinator
from freshet.server.groups.service import delete_groups, describe_groups
from freshet.v1 import group_pb2, group_pb2_grpc

OFFSETS = group_records.OFFSETS_TOPIC


class FakeOffsetsLog:
    """OffsetsLog over the fake cluster's __consumer_offsets logs, as broker `node_id` sees them."""

    def __init__(self, cluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id

    async def append(self, partition: int, leader_epoch: int, batch: bytes) -> None:
        with self.cluster.lock:
            part = self.cluster.partition(OFFSETS, partition)
            if part.leader_id != self.node_id or part.leader_epoch != leader_epoch:
                raise NotCoordinatorError("?", partition)
            part.log.append_as_leader(bytearray(batch), part.leader_epoch)
            self.cluster.after_append(part)

    def read_committed(self, partition: int):
        with self.cluster.lock:
            part = self.cluster.partition(OFFSETS, partition)
            offset = part.log.log_start_offset
            chunks = []
            while offset < part.high_watermark:
                result = part.log.read(offset, 1 << 20, max_offset=part.high_watermark)
                if not result.records:
                    break
                chunks.append(result.records)
                offset = result.next_offset
            return chunks


class FakeGroups:
    """Coordinators for every fake broker (see the module docstring)."""

    def __init__(self, cluster, *, partitions: int = 3, config: CoordinatorConfig | None = None) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-groups", daemon=True)
        self._thread.start()
        self.config = config or CoordinatorConfig(heartbeat_interval_ms=100, min_session_timeout_ms=1000)
        self.coordinators: dict[int, GroupCoordinator] = {}
        for node_id in cluster.brokers:
            self.coordinators[node_id] = self._make(node_id)
        cluster.server_hooks.append(self._add_service)
        cluster.leader_listeners.append(self._on_leader_moved)
        for broker in cluster.brokers.values():  # restart so the hook adds the Group service
            broker.stop()
            broker.start()

    def _make(self, node_id: int) -> GroupCoordinator:
        def counts():
            with self.cluster.lock:
                return {name: len(topic.partitions) for name, topic in self.cluster.topics.items()}

        coordinator = GroupCoordinator(
            FakeOffsetsLog(self.cluster, node_id),
            num_partitions=lambda: self.partitions,
            partition_counts=counts,
            clock_ms=lambda: int(time.monotonic() * 1000),
            config=self.config,
        )
        self.run(coordinator.start())
        return coordinator

    def run(self, coroutine, timeout_s: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def call(self, function, *args):
        async def call():
            return function(*args)

        return self.run(call())

    def close(self) -> None:
        for coordinator in self.coordinators.values():
            self.run(coordinator.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # ---- leadership ------------------------------------------------------------------------------

    def ensure_offsets_topic(self) -> None:
        with self.cluster.lock:
            if OFFSETS in self.cluster.topics:
                return
            topic = self.cluster.create_topic(OFFSETS, self.partitions)
            leaders = [(p.partition, p.leader_id, p.leader_epoch) for p in topic.partitions]
        for partition, leader, epoch in leaders:
            self.call(self.coordinators[leader].on_become_leader, partition, epoch)

    def _on_leader_moved(self, topic, partition, old_leader, new_leader, epoch) -> None:
        if topic != OFFSETS:
            return
        if old_leader in self.coordinators:
            self.call(self.coordinators[old_leader].on_resign, partition)
        self.call(self.coordinators[new_leader].on_become_leader, partition, epoch)

    def coordinator_of(self, group_id: str) -> int:
        with self.cluster.lock:
            return self.cluster.partition(OFFSETS, group_records.coordinator_partition(group_id, self.partitions)).leader_id

    def failover(self, dead: int) -> None:
        """Move every offsets partition `dead` leads to another live broker (what the controller does)."""
        with self.cluster.lock:
            moves = []
            for part in self.cluster.topics[OFFSETS].partitions:
                if part.leader_id == dead:
                    target = next(n for n in sorted(self.cluster.brokers) if n != dead and self.cluster.brokers[n].is_alive)
                    moves.append((part.partition, target))
        for partition, target in moves:
            self.cluster.move_leader(OFFSETS, partition, target)

    # ---- the service -------------------------------------------------------------------------------

    def _add_service(self, broker, server) -> None:
        group_pb2_grpc.add_GroupServicer_to_server(_SyncGroupServicer(self, broker.node_id), server)


class _SyncGroupServicer(group_pb2_grpc.GroupServicer):
    def __init__(self, groups: FakeGroups, node_id: int) -> None:
        self.groups = groups
        self.node_id = node_id
        self.coordinator = groups.coordinators[node_id]

    def _run(self, context, coroutine_function):
        self.groups.cluster.count_request("Group")
        try:
            return self.groups.run(coroutine_function())
        except Exception as error:
            detail = status.detail_for(error, self.node_id)
            context.abort_with_status(status.to_rpc_status(status.grpc_code(detail.code), detail))

    def FindCoordinator(self, request, context):  # noqa: N802 - gRPC method name
        self.groups.ensure_offsets_topic()
        cluster = self.groups.cluster
        response = group_pb2.FindCoordinatorResponse()
        with cluster.lock:
            for group_id in request.group_ids:
                partition = group_records.coordinator_partition(group_id, self.groups.partitions)
                leader = cluster.partition(OFFSETS, partition).leader_id
                response.coordinators.add(
                    group_id=group_id,
                    coordinator=cluster.endpoint(leader),
                    offsets_partition=partition,
                    error=status.ok_detail(),
                )
        return response

    def ConsumerGroupHeartbeat(self, request, context):  # noqa: N802
        return self._run(context, lambda: self.coordinator.heartbeat(request))

    def OffsetCommit(self, request, context):  # noqa: N802
        return self._run(context, lambda: self.coordinator.commit(request))

    def OffsetFetch(self, request, context):  # noqa: N802
        return self._run(context, lambda: self.coordinator.fetch_offsets(request))

    def ListGroups(self, request, context):  # noqa: N802
        async def call():
            return self.coordinator.list_groups()

        return self._run(context, call)

    def DescribeGroups(self, request, context):  # noqa: N802
        return self._run(context, lambda: describe_groups(self.coordinator, request, self.node_id))

    def DeleteGroups(self, request, context):  # noqa: N802
        return self._run(context, lambda: delete_groups(self.coordinator, request, self.node_id))
