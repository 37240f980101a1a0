"""The Admin client's typed results: frozen dataclasses, one per kind of answer.

Owns `TopicCreated`, `TopicListing`, `TopicDescription`, `PartitionDescription`, `ConfigEntry`,
`ConfigResource`, `ClusterDescription`, `BrokerDescription`, `ControllerDescription`,
`QuorumDescription`, `VoterDescription`, `ElectionResult`, `ReassignmentResult`,
`OngoingReassignment` and `ReassignmentStatus`. `freshet.client.admin` re-exports every one, so
`from freshet.client.admin import ConfigResource` keeps working.

Imports: `freshet.v1` (ConfigResource.to_proto), `freshet.client.structs`.
Forbidden: server, metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: immutable, so thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freshet.client.errors import (
    FreshetError,
)
from freshet.client.structs import Node
from freshet.v1 import metadata_pb2

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
    disk_state: str | None = None
    """The log directory: "ok", "full" (produce refused), or None when not reported."""
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    is_decommissioning: bool = False
    """`decommission_broker` marked it: it gets no new replicas and the balancer empties it."""
    replica_count: int = 0
    """Partitions with a replica on it (including replicas being added)."""
    leader_count: int = 0
    """Partitions it leads."""

    @property
    def balance_state(self) -> str:
        """`freshet broker list`'s state: "decommissioned" (marked, no replica left),
        "decommissioning", "fenced" (also in controlled shutdown) or "active"."""
        if self.is_decommissioning:
            return "decommissioned" if self.replica_count == 0 else "decommissioning"
        return "active" if self.state == "active" else "fenced"


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
    """"default", "static_broker", "dynamic_cluster", "dynamic_broker", "dynamic_topic" or "dynamic_group"."""
    doc: str = ""


@dataclass(frozen=True)
class ConfigResource:
    """What a config applies to: the cluster, one broker, one topic, or one consumer group (Kafka
    4's GROUP resource: lag.alert.seconds). Use the constructors."""

    type: str
    """"cluster", "broker", "topic" or "group"."""
    name: str = ""
    """The broker id (as text), the topic name or the group id; empty for the cluster."""

    @staticmethod
    def cluster() -> ConfigResource:
        return ConfigResource("cluster")

    @staticmethod
    def broker(broker_id: int) -> ConfigResource:
        return ConfigResource("broker", str(int(broker_id)))

    @staticmethod
    def topic(name: str) -> ConfigResource:
        return ConfigResource("topic", name)

    @staticmethod
    def group(group_id: str) -> ConfigResource:
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"group id must be a non-empty string, not {group_id!r}")
        return ConfigResource("group", group_id)

    def to_proto(self) -> metadata_pb2.ConfigResource:
        if self.type == "cluster":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_CLUSTER)
        if self.type == "broker":
            return metadata_pb2.ConfigResource(
                type=metadata_pb2.CONFIG_RESOURCE_BROKER, broker_id=int(self.name)
            )
        if self.type == "topic":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name=self.name)
        if self.type == "group":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_GROUP, group_id=self.name)
        raise ValueError(f"config resource type must be cluster, broker, topic or group, not {self.type!r}")

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
    by_balancer: bool = False
    """Started by the controller's replica balancer (else by a user)."""
    progress: list[ReplicaProgress] = field(default_factory=list)
    """One entry per adding replica, with `list_partition_reassignments(with_progress=True)`."""


@dataclass(frozen=True)
class ReplicaProgress:
    """How far a replica a reassignment adds has caught up with the leader."""

    broker_id: int
    log_end_offset: int | None
    offsets_left: int | None
    """The leader's log end offset minus the replica's."""
    bytes_left: int | None
    """The leader's segment bytes minus the replica's (approximate: segments roll independently)."""
    error: str | None = None
    """Why the numbers are missing (a broker did not answer)."""


@dataclass(frozen=True)
class ProposedReassignment:
    """One partition of `generate_reassignment`: its replicas now and proposed."""

    topic: str
    partition: int
    current_replicas: list[int]
    proposed_replicas: list[int]


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


__all__ = [
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
