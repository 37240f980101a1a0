"""Admin: partition leadership and replica reassignment.

Owns `PartitionAdmin`, the Admin methods that move partitions: `elect_leaders` (preferred or
unclean), `reassign_partitions`, `list_partition_reassignments`, `verify_reassignment` and
`decommission_broker`. Each
goes to the controller (`freshet.v1.Controller`, any node forwards); changes carry a request id.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: thread-safe (see AdminCalls).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from freshet.client._admin_calls import AdminCalls
from freshet.client._transport import (
    error_from_detail,
)
from freshet.client.admin_results import (
    ElectionResult,
    OngoingReassignment,
    ProposedReassignment,
    ReassignmentResult,
    ReassignmentStatus,
    ReplicaProgress,
)
from freshet.client.structs import TopicPartition
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

_ELECTION_TYPES = {"preferred": controller_pb2.ELECTION_PREFERRED, "unclean": controller_pb2.ELECTION_UNCLEAN}


class PartitionAdmin(AdminCalls):
    """Leaders and reassignments (see the module docstring). Thread-safe."""

    # ---------------------------------------------------------------------------------------------
    # Leaders and reassignments.

    def elect_leaders(
        self, partitions: Iterable[TopicPartition] | None = None, *, election_type: str = "preferred"
    ) -> list[ElectionResult]:
        """Elect leaders: "preferred" moves leadership to each partition's first replica when it is
        in the ISR; "unclean" gives leaderless partitions a leader, outside the ISR if need be.

        Args:
            partitions: None for every partition.

        Returns:
            One result per partition the controller looked at, sorted; its `error` says why a
            partition kept its leader (ElectionNotNeededError when the wanted leader already leads).
        """
        if election_type not in _ELECTION_TYPES:
            raise ValueError(f"election_type must be 'preferred' or 'unclean', not {election_type!r}")
        request = controller_pb2.ElectLeadersRequest(
            request_id=self._request_id(),
            type=_ELECTION_TYPES[election_type],
            partitions=[common_pb2.TopicPartition(topic=tp[0], partition=tp[1]) for tp in partitions or ()],
        )
        response = self._call("controller", "ElectLeaders", request)
        results = [
            ElectionResult(
                r.partition.topic,
                r.partition.partition,
                r.leader if r.leader >= 0 else None,
                error_from_detail(r.error, f"{r.partition.topic}-{r.partition.partition}"),
            )
            for r in response.results
        ]
        return sorted(results, key=lambda r: (r.topic, r.partition))

    def reassign_partitions(self, plan: Mapping[TopicPartition, Sequence[int]]) -> list[ReassignmentResult]:
        """Start moving partitions to new replica sets ({partition: target replicas}); an empty
        target cancels the reassignment in progress. Returns one result per partition."""
        request = controller_pb2.AlterPartitionReassignmentsRequest(
            request_id=self._request_id(),
            reassignments=[
                controller_pb2.PartitionReassignment(
                    partition=common_pb2.TopicPartition(topic=tp[0], partition=tp[1]),
                    target_replicas=list(replicas),
                )
                for tp, replicas in plan.items()
            ],
        )
        response = self._call("controller", "AlterPartitionReassignments", request)
        return sorted(
            (
                ReassignmentResult(
                    r.partition.topic,
                    r.partition.partition,
                    error_from_detail(r.error, f"{r.partition.topic}-{r.partition.partition}"),
                )
                for r in response.results
            ),
            key=lambda r: (r.topic, r.partition),
        )

    def decommission_broker(self, node_id: int, *, cancel: bool = False) -> None:
        """Mark broker `node_id` decommissioning: it gets no new replicas and the controller's
        balancer moves every replica off it (then it may be stopped). `cancel=True` clears the
        mark; replicas already moved stay where they are.

        Raises:
            BrokerIdNotRegisteredError: no broker `node_id` is registered.
            InvalidReplicationFactorError: the brokers left could not hold some topic's replicas.
        """
        request = controller_pb2.DecommissionBrokerRequest(request_id=self._request_id(), node_id=node_id, cancel=cancel)
        response = self._call("controller", "DecommissionBroker", request)
        error = error_from_detail(response.error, f"broker {node_id}")
        if error is not None:
            raise error

    def list_partition_reassignments(
        self, partitions: Iterable[TopicPartition] | None = None, *, with_progress: bool = False
    ) -> list[OngoingReassignment]:
        """Reassignments in progress (of `partitions`, or all); who started each (`by_balancer`).

        Args:
            with_progress: also ask the leaders and the adding replicas' brokers (DescribeLogDirs)
                how far each adding replica is behind (`progress`).
        """
        request = controller_pb2.ListPartitionReassignmentsRequest(
            partitions=[common_pb2.TopicPartition(topic=tp[0], partition=tp[1]) for tp in partitions or ()]
        )
        response = self._call("controller", "ListPartitionReassignments", request)
        ongoing = sorted(
            (
                OngoingReassignment(
                    r.partition.topic,
                    r.partition.partition,
                    list(r.replicas),
                    list(r.adding_replicas),
                    list(r.removing_replicas),
                    list(r.isr),
                    r.leader if r.leader >= 0 else None,
                    r.by_balancer,
                )
                for r in response.reassignments
            ),
            key=lambda r: (r.topic, r.partition),
        )
        return self._with_progress(ongoing) if with_progress and ongoing else ongoing

    def _with_progress(self, ongoing: list[OngoingReassignment]) -> list[OngoingReassignment]:
        """`ongoing` with each adding replica's distance to its leader (one DescribeLogDirs per
        broker involved)."""
        addresses = {b.node.node_id: b.node.address for b in self.describe_cluster().brokers}
        wanted: dict[int, list[TopicPartition]] = {}
        for r in ongoing:
            tp = TopicPartition(r.topic, r.partition)
            for broker_id in ([r.leader] if r.leader is not None else []) + r.adding_replicas:
                wanted.setdefault(broker_id, []).append(tp)
        infos = {
            broker_id: (
                self._describe_replicas(broker_id, addresses[broker_id], tps)
                if broker_id in addresses
                else dict.fromkeys(tps, f"broker {broker_id} is not registered")
            )
            for broker_id, tps in sorted(wanted.items())
        }
        result = []
        for r in ongoing:
            tp = TopicPartition(r.topic, r.partition)
            leader = infos[r.leader][tp] if r.leader is not None else "no leader"
            progress = adding_replica_progress(leader, {b: infos[b][tp] for b in r.adding_replicas})
            result.append(dataclasses.replace(r, progress=progress))
        return result

    def broker_log_bytes(self, addresses: Mapping[int, str]) -> dict[int, int | None]:
        """{broker id: bytes of the replicas' segment files it hosts} (DescribeLogDirs to each);
        None for a broker that did not answer."""
        sizes: dict[int, int | None] = {}
        for broker_id, address in sorted(addresses.items()):
            response = self._log_dirs(address, ())
            sizes[broker_id] = None if isinstance(response, str) else sum(
                r.size_bytes for r in response.replicas if r.error.code == common_pb2.NONE
            )
        return sizes

    def generate_reassignment(self, topics: Iterable[str], broker_ids: Iterable[int]) -> list[ProposedReassignment]:
        """Propose moving `topics` onto `broker_ids` (kafka-reassign-partitions --generate), from
        the controller balancer's planner: balanced, rack-aware, as few moves as possible. Changes
        nothing; pass the proposed replicas to `reassign_partitions` to carry it out.

        Raises:
            UnknownTopicError, BrokerIdNotRegisteredError, InvalidReplicationFactorError,
            InvalidRequestError.
        """
        request = controller_pb2.GenerateReassignmentRequest(topics=list(topics), broker_ids=list(broker_ids))
        response = self._call("controller", "GenerateReassignment", request)
        return [
            ProposedReassignment(p.partition.topic, p.partition.partition, list(p.current_replicas), list(p.proposed_replicas))
            for p in response.partitions
        ]

    def verify_reassignment(self, plan: Mapping[TopicPartition, Sequence[int]]) -> list[ReassignmentStatus]:
        """Where each partition of a plan stands: complete, in progress, or failed (kafka-reassign-
        partitions --verify)."""
        ongoing = {TopicPartition(r.topic, r.partition) for r in self.list_partition_reassignments()}
        topics = sorted({tp[0] for tp in plan})
        current: dict[TopicPartition, list[int]] = {}
        response = self._metadata(topics, True)
        for topic in response.topics:
            if topic.error.code == common_pb2.NONE:
                for p in topic.partitions:
                    current[TopicPartition(topic.name, p.partition)] = list(p.replicas)
        statuses = []
        for tp, target in plan.items():
            tp = TopicPartition(*tp)
            replicas = current.get(tp, [])
            if tp in ongoing:
                state = "in_progress"
            elif tp in current and replicas == list(target):
                state = "complete"
            else:
                state = "failed"
            statuses.append(ReassignmentStatus(tp.topic, tp.partition, list(target), replicas, state))
        return sorted(statuses, key=lambda s: (s.topic, s.partition))


def adding_replica_progress(
    leader: broker_pb2.ReplicaLogInfo | str, replicas: Mapping[int, broker_pb2.ReplicaLogInfo | str]
) -> list[ReplicaProgress]:
    """How far each adding replica (broker id -> its DescribeLogDirs info) is behind the leader's
    log: offsets and segment bytes left; the error text instead when either did not answer. Also
    used by the node's console (server/http/console_data/logs.py)."""
    progress = []
    for broker_id, replica in replicas.items():
        problem = next((x for x in (leader, replica) if isinstance(x, str)), None)
        if problem is not None:
            progress.append(ReplicaProgress(broker_id, None, None, None, problem))
            continue
        progress.append(ReplicaProgress(
            broker_id,
            replica.log_end_offset,
            max(0, leader.log_end_offset - replica.log_end_offset),
            max(0, leader.size_bytes - replica.size_bytes),
        ))
    return progress
