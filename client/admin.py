"""The Admin client: topics, partitions, configs, leaders, reassignments, cluster and quorum.

Owns `Admin` (Kafka's AdminClient for Freshet) and its typed results. Every method is one
blocking call (or a few) with a deadline (`request_timeout_ms`):

- admin RPCs (`freshet.v1.Controller`) go to any node; a node that is not the active controller
  forwards them (Kafka's KIP-590), so the client only walks its bootstrap list when a node cannot
  be reached. Every request that changes metadata carries one client-chosen `request_id`, reused
  when the same request is retried on another node, so a retry after a timeout or a failover
  gets the first result instead of a second application (README "Controller");
- reads of topics and partitions use `Broker.Metadata` (any broker), and the offsets of
  `describe_topics` use `Broker.ListOffsets` on each partition's leader;
- consumer groups (`list_groups`, `describe_group`, `delete_group`, `reset_offsets`) come from
  `freshet.client.admin_groups.GroupAdmin`, which `Admin` inherits: they go to each group's
  coordinator (`freshet.v1.Group`);
- `metadata_image()` reads the metadata snapshot a controller node streams on `WatchMetadata`
  (the first message, from offset -1), decoded into a plain dict.

Errors are `freshet.client.errors` classes only: a node that cannot be reached becomes
BrokerUnavailableError naming every address tried; a refused request becomes the class of its
error code (InvalidReplicationFactorError, UnknownTopicError, InvalidConfigError, ...) carrying
the server's message. No raw `grpc.RpcError` leaves this module.

Imports: grpc (through the transport), protobuf's json_format, `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage (import-linter contracts).

Thread-safety: `Admin` is thread-safe (the transport is; the methods keep no shared state beyond
it). Results are frozen dataclasses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from freshet.client._config import AdminConfig
from freshet.client._retry import Deadline, Retry, retry_until_deadline
from freshet.client._transport import (
    Transport,
    error_from_detail,
    node_from_endpoint,
    raise_for_detail,
    translate_rpc_error,
)
from freshet.client.admin_groups import GroupAdmin
from freshet.client.errors import (
    BrokerUnavailableError,
    FreshetError,
    InvalidRequestError,
    NotControllerError,
    RequestTimedOutError,
    UnknownServerError,
    UnknownTopicError,
)
from freshet.client.structs import Node, TopicPartition
from freshet.v1 import broker_pb2, common_pb2, controller_pb2, controller_pb2_grpc, metadata_pb2
from google.protobuf import json_format

_BROKER_STATES = {
    controller_pb2.BROKER_ACTIVE: "active",
    controller_pb2.BROKER_FENCED: "fenced",
    controller_pb2.BROKER_CONTROLLED_SHUTDOWN: "controlled_shutdown",
}
_CONFIG_SOURCES = {
    controller_pb2.CONFIG_SOURCE_DEFAULT: "default",
    controller_pb2.CONFIG_SOURCE_STATIC_BROKER: "static_broker",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_CLUSTER: "dynamic_cluster",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_BROKER: "dynamic_broker",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC: "dynamic_topic",
}
#: Rounds over the node list before `_call` gives up (time permitting), 0.2 s x round apart.
_CALL_ROUNDS = 3
_ELECTION_TYPES = {"preferred": controller_pb2.ELECTION_PREFERRED, "unclean": controller_pb2.ELECTION_UNCLEAN}


# =================================================================================================
# Results.


@dataclass(frozen=True)
class TopicCreated:
    """What `create_topic` created (or, with validate_only, would create)."""

    name: str
    topic_id: str
    """Hex of the 16-byte topic id; empty with validate_only."""
    partitions: int
    replication_factor: int
    assignments: list[list[int]]
    """Replicas of each partition, preferred leader first."""


@dataclass(frozen=True)
class BrokerDescription:
    """A registered broker: where it serves clients and whether it may lead and replicate."""

    node: Node
    state: str
    """"active", "fenced" or "controlled_shutdown"."""
    broker_epoch: int


@dataclass(frozen=True)
class ControllerDescription:
    """A voter of the metadata quorum, by its gRPC endpoint."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class ClusterDescription:
    """The cluster as the answering node's metadata image knows it (`describe_cluster`)."""

    cluster_id: str
    controller_id: int | None
    """The active controller; None while none has claimed."""
    controller_epoch: int
    brokers: list[BrokerDescription]
    controllers: list[ControllerDescription]
    metadata_offset: int
    topic_count: int
    partition_count: int
    under_replicated_partitions: int
    offline_partitions: int
    answering_node_id: int


@dataclass(frozen=True)
class TopicListing:
    """One topic of `list_topics`."""

    name: str
    topic_id: str
    partitions: int
    replication_factor: int
    is_internal: bool


@dataclass(frozen=True)
class PartitionDescription:
    """One partition: placement and, when its leader answered ListOffsets, its offsets.

    The offsets are None when the partition has no leader or the leader could not answer; the
    error of that lookup is in `offsets_error`.
    """

    partition: int
    leader: int | None
    """None when the partition is offline (no leader)."""
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline_replicas: list[int]
    log_start_offset: int | None = None
    high_watermark: int | None = None
    log_end_offset: int | None = None
    """The leader's log end offset (records appended, committed or not)."""
    size_bytes: int | None = None
    """Bytes of the leader's segment files for this partition."""
    offsets_error: str | None = None


@dataclass(frozen=True)
class TopicDescription:
    """One topic of `describe_topics`: its partitions and its topic-level config overrides."""

    name: str
    topic_id: str
    is_internal: bool
    partitions: list[PartitionDescription]
    configs: dict[str, str] = field(default_factory=dict)
    """Configs set on this topic (source dynamic_topic), as kafka-topics --describe shows them."""


@dataclass(frozen=True)
class ConfigEntry:
    """One config of a resource with where its value comes from."""

    key: str
    value: str
    source: str
    """"default", "static_broker", "dynamic_cluster", "dynamic_broker" or "dynamic_topic"."""
    doc: str = ""


@dataclass(frozen=True)
class ConfigResource:
    """What a config applies to: the cluster, one broker, or one topic. Use the constructors."""

    type: str
    """"cluster", "broker" or "topic"."""
    name: str = ""
    """The broker id (as text) or the topic name; empty for the cluster."""

    @staticmethod
    def cluster() -> ConfigResource:
        return ConfigResource("cluster")

    @staticmethod
    def broker(broker_id: int) -> ConfigResource:
        return ConfigResource("broker", str(int(broker_id)))

    @staticmethod
    def topic(name: str) -> ConfigResource:
        return ConfigResource("topic", name)

    def to_proto(self) -> metadata_pb2.ConfigResource:
        if self.type == "cluster":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_CLUSTER)
        if self.type == "broker":
            return metadata_pb2.ConfigResource(
                type=metadata_pb2.CONFIG_RESOURCE_BROKER, broker_id=int(self.name)
            )
        if self.type == "topic":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name=self.name)
        raise ValueError(f"config resource type must be cluster, broker or topic, not {self.type!r}")

    def __str__(self) -> str:
        return self.type if self.type == "cluster" else f"{self.type} {self.name}"


@dataclass(frozen=True)
class ElectionResult:
    """The outcome of `elect_leaders` for one partition."""

    topic: str
    partition: int
    leader: int | None
    error: FreshetError | None
    """None: elected; ElectionNotNeededError: the wanted leader already leads; else why not."""


@dataclass(frozen=True)
class ReassignmentResult:
    """The outcome of `reassign_partitions` for one partition: None when accepted."""

    topic: str
    partition: int
    error: FreshetError | None


@dataclass(frozen=True)
class OngoingReassignment:
    """A reassignment the controller is still carrying out."""

    topic: str
    partition: int
    replicas: list[int]
    adding_replicas: list[int]
    removing_replicas: list[int]
    isr: list[int]
    leader: int | None


@dataclass(frozen=True)
class ReassignmentStatus:
    """`verify_reassignment` for one partition of a plan."""

    topic: str
    partition: int
    target_replicas: list[int]
    current_replicas: list[int]
    state: str
    """"complete" (replicas equal the target), "in_progress", or "failed" (not in progress and
    not equal to the target: cancelled, or the partition no longer exists)."""


@dataclass(frozen=True)
class VoterDescription:
    """A voter of the metadata quorum as the Raft leader sees it."""

    node_id: int
    raft_address: str
    is_connected: bool
    match_raft_index: int | None
    lag: int | None
    """Entries behind the leader's log end; None when unknown."""


@dataclass(frozen=True)
class QuorumDescription:
    """The metadata quorum (`describe_quorum`), from the Raft leader."""

    leader_id: int | None
    term: int
    commit_raft_index: int
    last_raft_index: int
    applied_offset: int
    snapshot_raft_index: int
    has_quorum: bool
    voters: list[VoterDescription]


# =================================================================================================
# The client.


class Admin(GroupAdmin):
    """Administration of a Freshet cluster (group methods: see GroupAdmin). Thread-safe.

    Example::

        admin = Admin("localhost:9092")
        admin.create_topic("orders", partitions=3, replication_factor=3, configs={"retention.ms": "86400000"})
        for topic in admin.describe_topics(["orders"]):
            print(topic.partitions[0].leader, topic.partitions[0].isr)
        admin.close()
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "freshet-admin",
        request_timeout_ms: int = 30000,
        transport: Transport | None = None,
    ) -> None:
        """Create an admin client; it connects lazily.

        Args:
            bootstrap_servers: "host:port,host:port" (any live node will do); None reads
                `FRESHET_BOOTSTRAP`, else "localhost:9092".
            client_id: names this client in node logs.
            request_timeout_ms: bound on each method (across retries on other nodes).
            transport: the connections to use instead of opening gRPC channels to
                bootstrap_servers (tests pass one over an in-memory channel); its bootstrap list is
                used, and closing it is left to the caller.

        Raises:
            ValueError: a malformed bootstrap list, a non-positive timeout, or both
                bootstrap_servers and transport.
        """
        AdminConfig(client_id=client_id, request_timeout_ms=request_timeout_ms)  # raises ValueError
        super().__init__(
            bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms, transport=transport
        )
        self._controller_stubs: dict[str, controller_pb2_grpc.ControllerStub] = {}

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap addresses in use."""
        return list(self._transport.bootstrap_addresses)

    # ---------------------------------------------------------------------------------------------
    # Calling nodes.

    def _controller(self, address: str) -> controller_pb2_grpc.ControllerStub:
        stub = self._controller_stubs.get(address)
        if stub is None:
            # One channel per node: the transport creates, caches and closes it.
            stub = controller_pb2_grpc.ControllerStub(self._transport.channel(address))
            self._controller_stubs[address] = stub
        return stub

    def _call(self, service: str, method: str, request, *, addresses: Sequence[str] | None = None):
        """Call `service.method` on the first node that answers, within the request timeout.

        A node that cannot be reached (UNAVAILABLE), or answers NOT_CONTROLLER (no controller
        answered its forward in time), is skipped for the next; a refusal is raised as the
        FreshetError of its code.

        Raises:
            BrokerUnavailableError: no node in `addresses` (default: the bootstrap list) could be reached.
            RequestTimedOutError: the deadline passed.
            FreshetError: the node refused the request.
        """
        targets = list(addresses) if addresses else list(self._transport.bootstrap_addresses)
        failures: list[str] = []

        def round_over_targets(deadline: Deadline):
            """Try each node once; Retry when every one was unreachable or had no controller."""
            last_error: FreshetError | None = None
            for address in targets:
                remaining = deadline.remaining()
                if remaining <= 0:
                    break
                stub = self._controller(address) if service == "controller" else self._transport.stub(address)
                try:
                    return getattr(stub, method)(request, timeout=remaining)
                except ValueError as closed:  # the channel was closed: close() ran
                    raise BrokerUnavailableError(f"the admin client is closed ({method})") from closed
                except grpc.RpcError as rpc_error:
                    error = translate_rpc_error(rpc_error, address, method)
                    code = rpc_error.code() if hasattr(rpc_error, "code") else None
                    if code == grpc.StatusCode.UNAVAILABLE or isinstance(error, NotControllerError):
                        failures.append(f"{address}: {_short(rpc_error, error)}")
                        last_error = error
                        continue
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise RequestTimedOutError(
                            f"{method} got no answer from {address} within {self._timeout_s:g} s"
                        ) from None
                    raise error from None
            raise Retry(last_error)

        def give_up(last_error: FreshetError | None) -> FreshetError:
            if isinstance(last_error, NotControllerError):
                return NotControllerError(
                    f"{method}: no active controller answered in time ({'; '.join(failures[-len(targets) :])}); "
                    "the metadata quorum may have lost its majority",
                    controller_id=last_error.controller_id,
                )
            return BrokerUnavailableError(
                f"cannot reach any broker at {','.join(targets)} ({method}: {failures[-1] if failures else 'timed out'})"
            )

        return retry_until_deadline(
            round_over_targets,
            Deadline(self._timeout_s),
            backoff_s=lambda rounds: 0.2 * rounds,
            give_up=give_up,
            max_attempts=_CALL_ROUNDS,
            is_cause_kept=False,
        )

    @staticmethod
    def _request_id() -> str:
        return uuid.uuid4().hex

    # ---------------------------------------------------------------------------------------------
    # Cluster and quorum.

    def describe_cluster(self) -> ClusterDescription:
        """Cluster id, active controller, voters, brokers with their state, and partition counts."""
        response = self._call("controller", "DescribeCluster", controller_pb2.DescribeClusterRequest())
        return ClusterDescription(
            cluster_id=response.cluster_id,
            controller_id=response.controller_id if response.controller_id >= 0 else None,
            controller_epoch=response.controller_epoch,
            brokers=[
                BrokerDescription(
                    node_from_endpoint(b.endpoint), _BROKER_STATES.get(b.state, str(b.state)), b.broker_epoch
                )
                for b in sorted(response.brokers, key=lambda b: b.endpoint.node_id)
            ],
            controllers=[
                ControllerDescription(c.node_id, c.host, c.port)
                for c in sorted(response.controllers, key=lambda c: c.node_id)
            ],
            metadata_offset=response.metadata_offset,
            topic_count=response.topic_count,
            partition_count=response.partition_count,
            under_replicated_partitions=response.under_replicated_partitions,
            offline_partitions=response.offline_partitions,
            answering_node_id=response.answering_node_id,
        )

    def describe_quorum(self) -> QuorumDescription:
        """Raft leader, term, indexes and every voter's lag, as the Raft leader reports them."""
        response = self._call("controller", "DescribeQuorum", controller_pb2.DescribeQuorumRequest())
        return QuorumDescription(
            leader_id=response.leader_id if response.leader_id >= 0 else None,
            term=response.term,
            commit_raft_index=response.commit_raft_index,
            last_raft_index=response.last_raft_index,
            applied_offset=response.applied_offset,
            snapshot_raft_index=response.snapshot_raft_index,
            has_quorum=response.has_quorum,
            voters=[
                VoterDescription(
                    node_id=v.node_id,
                    raft_address=v.raft_address,
                    is_connected=v.is_connected,
                    match_raft_index=v.match_raft_index if v.match_raft_index >= 0 else None,
                    lag=v.lag if v.lag >= 0 else None,
                )
                for v in sorted(response.voters, key=lambda v: v.node_id)
            ],
        )

    def metadata_image(self) -> dict[str, Any]:
        """The current metadata image of a controller node as a dict (the snapshot's fields).

        Reads the first message of `WatchMetadata` from offset -1 (a snapshot) on the first
        controller node of the bootstrap list that answers (broker-only nodes answer
        NOT_CONTROLLER and are skipped), then cancels the stream.
        """
        deadline = Deadline(self._timeout_s)
        failures: list[str] = []
        addresses = list(self._transport.bootstrap_addresses)
        try:
            cluster = self.describe_cluster()
            addresses += [
                f"{c.host}:{c.port}" for c in cluster.controllers if f"{c.host}:{c.port}" not in addresses
            ]
        except BrokerUnavailableError:
            raise
        except FreshetError:
            pass
        for address in addresses:
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            stream = self._controller(address).WatchMetadata(
                controller_pb2.WatchMetadataRequest(from_offset=-1, watcher="freshet metadata dump"),
                timeout=remaining,
            )
            try:
                for message in stream:
                    if message.WhichOneof("body") == "snapshot":
                        snapshot = metadata_pb2.MetadataSnapshot.FromString(message.snapshot.snapshot)
                        image = json_format.MessageToDict(
                            snapshot,
                            preserving_proto_field_name=True,
                            always_print_fields_with_no_presence=True,
                        )
                        image["offset"] = message.snapshot.offset
                        return image
                    break
            except grpc.RpcError as rpc_error:
                failures.append(
                    f"{address}: {_short(rpc_error, translate_rpc_error(rpc_error, address, 'WatchMetadata'))}"
                )
            finally:
                stream.cancel()
        raise BrokerUnavailableError(
            f"cannot read the metadata image from any controller at {','.join(addresses)}"
            + (f" ({failures[-1]})" if failures else "")
        )

    # ---------------------------------------------------------------------------------------------
    # Topics.

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        *,
        configs: Mapping[str, str] | None = None,
        assignments: Sequence[Sequence[int]] | None = None,
        validate_only: bool = False,
    ) -> TopicCreated:
        """Create one topic.

        Args:
            name: the topic name (Kafka's rules: [a-zA-Z0-9._-], at most 249 characters).
            partitions: number of partitions; None for the cluster's num.partitions.
            replication_factor: replicas per partition; None for default.replication.factor.
            configs: topic configs, e.g. {"retention.ms": "86400000"}.
            assignments: explicit replicas per partition (preferred leader first).
            validate_only: check everything, create nothing.

        Raises:
            TopicAlreadyExistsError, InvalidReplicationFactorError, InvalidPartitionsError,
            InvalidTopicError, InvalidConfigError, InvalidReplicaAssignmentError: refused.
            BrokerUnavailableError: no node reachable.
        """
        topic = controller_pb2.CreatableTopic(name=name)
        if partitions is not None:
            topic.num_partitions = partitions
        if replication_factor is not None:
            topic.replication_factor = replication_factor
        for replicas in assignments or ():
            topic.assignments.add(replicas=list(replicas))
        for key, value in (configs or {}).items():
            topic.configs.add(key=key, value=str(value))
        request = controller_pb2.CreateTopicsRequest(
            request_id=self._request_id(), topics=[topic], validate_only=validate_only
        )
        response = self._call("controller", "CreateTopics", request)
        result = _single(response.results, f"CreateTopics {name}")
        raise_for_detail(result.error)
        return TopicCreated(
            name=result.name,
            topic_id=result.topic_id.hex(),
            partitions=result.num_partitions,
            replication_factor=result.replication_factor,
            assignments=[list(a.replicas) for a in result.assignments],
        )

    def delete_topic(self, name: str) -> str:
        """Delete a topic; the hex id of the deleted topic.

        Raises:
            UnknownTopicError: no such topic.
        """
        request = controller_pb2.DeleteTopicsRequest(request_id=self._request_id(), names=[name])
        response = self._call("controller", "DeleteTopics", request)
        result = _single(response.results, f"DeleteTopics {name}")
        raise_for_detail(result.error)
        return result.topic_id.hex()

    def create_partitions(
        self,
        topic: str,
        total: int,
        *,
        assignments: Sequence[Sequence[int]] | None = None,
        validate_only: bool = False,
    ) -> list[list[int]]:
        """Increase a topic's partition count to `total`; the replicas of each new partition.

        Raises:
            InvalidPartitionsError: `total` is not larger than the current count.
            UnknownTopicError: no such topic.
        """
        increase = controller_pb2.PartitionsIncrease(topic=topic, count=total)
        for replicas in assignments or ():
            increase.assignments.add(replicas=list(replicas))
        request = controller_pb2.CreatePartitionsRequest(
            request_id=self._request_id(), topics=[increase], validate_only=validate_only
        )
        response = self._call("controller", "CreatePartitions", request)
        result = _single(response.results, f"CreatePartitions {topic}")
        raise_for_detail(result.error)
        return [list(a.replicas) for a in result.assignments]

    def _metadata(self, topics: Sequence[str] | None, include_internal: bool) -> broker_pb2.MetadataResponse:
        request = broker_pb2.MetadataRequest(topics=list(topics or ()), include_internal=include_internal)
        return self._call("broker", "Metadata", request)

    def list_topics(self, *, include_internal: bool = False) -> list[TopicListing]:
        """Every topic, sorted by name (internal ones such as __consumer_offsets on request)."""
        response = self._metadata(None, include_internal)
        listings = []
        for topic in response.topics:
            if topic.error.code != common_pb2.NONE:
                continue
            replication = max((len(p.replicas) for p in topic.partitions), default=0)
            listings.append(
                TopicListing(
                    topic.name, topic.topic_id.hex(), len(topic.partitions), replication, topic.is_internal
                )
            )
        return sorted(listings, key=lambda t: t.name)

    def describe_topics(
        self, names: Iterable[str] | None = None, *, include_internal: bool = False, with_offsets: bool = True
    ) -> list[TopicDescription]:
        """Topics with, per partition, leader, replicas, ISR and (from the leaders) offsets.

        Args:
            names: the topics; None for every topic.
            include_internal: with names None, also internal topics.
            with_offsets: ask each partition's leader for its log start offset and high watermark
                (ListOffsets); a leader that cannot answer leaves that partition's offsets None.

        Raises:
            UnknownTopicError: a named topic does not exist.
        """
        wanted = sorted(set(names)) if names is not None else None
        response = self._metadata(wanted, include_internal or bool(wanted))
        brokers = {b.node_id: node_from_endpoint(b) for b in response.brokers}
        found = {}
        for topic in response.topics:
            error = error_from_detail(topic.error, f"topic {topic.name}")
            if error is not None:
                if wanted is not None:
                    if isinstance(error, UnknownTopicError):
                        raise UnknownTopicError(f"topic {topic.name!r} does not exist")
                    raise error
                continue
            found[topic.name] = topic
        if wanted is not None:
            missing = [n for n in wanted if n not in found]
            if missing:
                raise UnknownTopicError(f"topic {missing[0]!r} does not exist")
        offsets: dict[TopicPartition, dict[int | str, int] | str] = {}
        if with_offsets:
            offsets = self._partition_offsets(found.values(), brokers)
        configs = self._topic_overrides(list(found)) if found else {}
        descriptions = []
        for name in sorted(found):
            topic = found[name]
            partitions = []
            for p in sorted(topic.partitions, key=lambda p: p.partition):
                tp = TopicPartition(name, p.partition)
                known = offsets.get(tp)
                info = known if isinstance(known, broker_pb2.ReplicaLogInfo) else None
                partitions.append(
                    PartitionDescription(
                        partition=p.partition,
                        leader=p.leader_id if p.leader_id >= 0 else None,
                        leader_epoch=p.leader_epoch,
                        replicas=list(p.replicas),
                        isr=list(p.isr),
                        offline_replicas=list(p.offline_replicas),
                        log_start_offset=None if info is None else info.log_start_offset,
                        high_watermark=None if info is None else info.high_watermark,
                        log_end_offset=None if info is None else info.log_end_offset,
                        size_bytes=None if info is None else info.size_bytes,
                        offsets_error=known if isinstance(known, str) else None,
                    )
                )
            descriptions.append(
                TopicDescription(
                    name, topic.topic_id.hex(), topic.is_internal, partitions, configs.get(name, {})
                )
            )
        return descriptions

    def _partition_offsets(
        self, topics, brokers: dict[int, Node]
    ) -> dict[TopicPartition, broker_pb2.ReplicaLogInfo | str]:
        """{partition: its leader's replica info (log start, log end, high watermark, size)} or
        the error text, from one DescribeLogDirs per leader."""
        by_leader: dict[int, list[TopicPartition]] = {}
        out: dict[TopicPartition, broker_pb2.ReplicaLogInfo | str] = {}
        for topic in topics:
            for p in topic.partitions:
                tp = TopicPartition(topic.name, p.partition)
                if p.leader_id < 0:
                    out[tp] = "no leader"
                elif p.leader_id not in brokers:
                    out[tp] = f"leader {p.leader_id} is not an available broker"
                else:
                    by_leader.setdefault(p.leader_id, []).append(tp)
        for leader_id, tps in sorted(by_leader.items()):
            address = brokers[leader_id].address
            request = broker_pb2.DescribeLogDirsRequest(
                partitions=[common_pb2.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in tps]
            )
            try:
                response = self._transport.stub(address).DescribeLogDirs(request, timeout=min(self._timeout_s, 5.0))
            except ValueError as closed:
                raise BrokerUnavailableError("the admin client is closed (DescribeLogDirs)") from closed
            except grpc.RpcError as rpc_error:
                reason = str(translate_rpc_error(rpc_error, address, "DescribeLogDirs"))
                for tp in tps:
                    out[tp] = reason
                continue
            answered = {TopicPartition(r.topic, r.partition): r for r in response.replicas}
            for tp in tps:
                info = answered.get(tp)
                error = None if info is None else error_from_detail(info.error)
                if info is None:
                    out[tp] = f"broker {leader_id} did not describe {tp.topic}-{tp.partition}"
                elif error is not None:
                    out[tp] = str(error)
                elif not info.is_leader:
                    out[tp] = f"broker {leader_id} no longer leads {tp.topic}-{tp.partition}"
                else:
                    out[tp] = info
        return out

    def _topic_overrides(self, names: list[str]) -> dict[str, dict[str, str]]:
        request = controller_pb2.DescribeConfigsRequest(
            resources=[ConfigResource.topic(n).to_proto() for n in names]
        )
        response = self._call("controller", "DescribeConfigs", request)
        out: dict[str, dict[str, str]] = {}
        for result in response.results:
            if result.error.code != common_pb2.NONE:
                continue
            out[result.resource.topic_name] = {
                c.key: c.value
                for c in result.configs
                if c.source == controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC
            }
        return out

    # ---------------------------------------------------------------------------------------------
    # Configs.

    def describe_configs(self, resource: ConfigResource, keys: Sequence[str] = ()) -> list[ConfigEntry]:
        """Every config of `resource` (or only `keys`) with its value and source, sorted by key.

        Raises:
            UnknownTopicError: the topic does not exist.
            InvalidConfigError / InvalidRequestError: an unknown key or broker.
        """
        request = controller_pb2.DescribeConfigsRequest(resources=[resource.to_proto()], keys=list(keys))
        response = self._call("controller", "DescribeConfigs", request)
        result = _single(response.results, f"DescribeConfigs {resource}")
        raise_for_detail(result.error)
        return [
            ConfigEntry(c.key, c.value, _CONFIG_SOURCES.get(c.source, str(c.source)), c.doc)
            for c in result.configs
        ]

    def alter_configs(
        self,
        resource: ConfigResource,
        *,
        set: Mapping[str, str] | None = None,  # noqa: A002 - Kafka's operation name
        delete: Iterable[str] = (),
        validate_only: bool = False,
    ) -> None:
        """Set and delete dynamic configs of one resource in one step (IncrementalAlterConfigs).

        A deleted key falls back to the next lower level (topic -> cluster -> default).

        Raises:
            InvalidConfigError: an unknown key, a bad value, or a value inconsistent with others.
            UnknownTopicError: the topic does not exist.
        """
        to_set = dict(set or {})
        to_delete = list(delete)
        both = sorted(k for k in to_delete if k in to_set)
        if both:
            raise InvalidRequestError(f"config {both[0]!r} is both set and deleted; give it once")
        if not to_set and not to_delete:
            raise InvalidRequestError("nothing to change: give configs to set or delete")
        entry = controller_pb2.AlterConfigsResource(resource=resource.to_proto())
        for key, value in to_set.items():
            entry.configs.add(key=key, value=str(value), operation=controller_pb2.CONFIG_SET)
        for key in to_delete:
            entry.configs.add(key=key, operation=controller_pb2.CONFIG_DELETE)
        request = controller_pb2.IncrementalAlterConfigsRequest(
            request_id=self._request_id(), resources=[entry], validate_only=validate_only
        )
        response = self._call("controller", "IncrementalAlterConfigs", request)
        result = _single(response.results, f"IncrementalAlterConfigs {resource}")
        raise_for_detail(result.error)

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

    def list_partition_reassignments(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> list[OngoingReassignment]:
        """Reassignments in progress (of `partitions`, or all)."""
        request = controller_pb2.ListPartitionReassignmentsRequest(
            partitions=[common_pb2.TopicPartition(topic=tp[0], partition=tp[1]) for tp in partitions or ()]
        )
        response = self._call("controller", "ListPartitionReassignments", request)
        return sorted(
            (
                OngoingReassignment(
                    r.partition.topic,
                    r.partition.partition,
                    list(r.replicas),
                    list(r.adding_replicas),
                    list(r.removing_replicas),
                    list(r.isr),
                    r.leader if r.leader >= 0 else None,
                )
                for r in response.reassignments
            ),
            key=lambda r: (r.topic, r.partition),
        )

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


# =================================================================================================
# Helpers.


def _short(rpc_error: grpc.RpcError, error: FreshetError) -> str:
    code = rpc_error.code() if hasattr(rpc_error, "code") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        details = rpc_error.details() if hasattr(rpc_error, "details") else ""
        return "connection refused" if "refused" in (details or "").lower() else f"unavailable ({details})"
    return str(error)


def _single(results, what: str):
    if len(results) != 1:
        raise UnknownServerError(f"{what}: expected one result, the node answered {len(results)}")
    return results[0]


__all__ = [
    "Admin",
    "BrokerDescription",
    "ClusterDescription",
    "ConfigEntry",
    "ConfigResource",
    "ControllerDescription",
    "ElectionResult",
    "OngoingReassignment",
    "PartitionDescription",
    "QuorumDescription",
    "ReassignmentResult",
    "ReassignmentStatus",
    "TopicCreated",
    "TopicDescription",
    "TopicListing",
    "VoterDescription",
]
