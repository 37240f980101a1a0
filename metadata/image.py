"""The immutable cluster metadata image that every reader sees.

Owns `MetadataImage` and its parts (`BrokerRegistration`, `TopicImage`, `PartitionImage`,
`RequestLog`). The state machine (state_machine.py) produces a new image per applied command with
structural sharing: unchanged brokers, topics and partitions are the very same objects in the old
and the new image, so applying a command costs O(size of what changed + number of topics), not a
deep copy of ~10k partitions.

Imports only the standard library, freshet.metadata.configs and the generated wire types.
Thread-safe: every class here is immutable after construction (mappings are read-only views of
dicts that nobody mutates after the image is built), so gRPC threads and an asyncio loop may read
one image concurrently while the quorum thread publishes the next. The only lazily written field
is TopicImage's cached encoding, which is idempotent (two racing writers store equal bytes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from freshet.metadata import configs
from freshet.metadata.security import EMPTY_ACLS, AclSet, ScramCredential, ScramMechanism
from freshet.v1 import metadata_pb2

NO_LEADER = -1
NO_CONTROLLER = -1

# The dedup table remembers the last REQUEST_LOG_CHUNK_SIZE * REQUEST_LOG_CHUNKS_MAX request ids
# (plus up to one partly filled chunk) in apply order. Changing either number changes the
# replicated state: it is part of the snapshot format, like the format version.
REQUEST_LOG_CHUNK_SIZE = 256
REQUEST_LOG_CHUNKS_MAX = 40
REQUEST_LOG_CAPACITY = REQUEST_LOG_CHUNK_SIZE * REQUEST_LOG_CHUNKS_MAX  # 10_240

EMPTY_MAPPING: Mapping = MappingProxyType({})


def frozen_mapping(values: dict) -> Mapping:
    """A read-only view of `values`; the caller hands over ownership and never mutates it again."""
    return MappingProxyType(values)


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A registered broker. Thread-safe (immutable).

    Attributes:
        node_id: the broker's node id.
        incarnation_id: 16 bytes chosen by the broker process at start; a new one replaces the old.
        host, port, rack: where clients reach it (rack "" when none).
        broker_epoch: the metadata offset at which this incarnation registered (as KRaft).
        is_fenced: True until the controller unfences it; fenced brokers lead nothing new.
        in_controlled_shutdown: set by BeginControlledShutdown, cleared by a new incarnation.
        listeners: further endpoints as (name, host, port), sorted by name ("kafka": the Kafka
            protocol's advertised address).
        is_decommissioning: set by DecommissionBroker, cleared by CancelDecommissionBroker; kept
            when a new incarnation registers. Placement gives it nothing new; the balancer moves
            every replica off it.
    """

    node_id: int
    incarnation_id: bytes
    host: str
    port: int
    rack: str
    broker_epoch: int
    is_fenced: bool
    in_controlled_shutdown: bool
    listeners: tuple[tuple[str, str, int], ...] = ()
    is_decommissioning: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def listener(self, name: str) -> tuple[str, int] | None:
        """(host, port) of the listener called `name`, None when the broker has none."""
        for listener_name, host, port in self.listeners:
            if listener_name == name:
                return host, port
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionImage:
    """One partition's replica set, ISR and leader. Thread-safe (immutable).

    Invariants (asserted by the state machine when it builds one): replicas are distinct;
    isr is a subset of replicas; leader is NO_LEADER or a member of replicas; adding_replicas and
    removing_replicas are disjoint subsets of replicas; during a reassignment
    replicas = target + removing_replicas.
    """

    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()
    is_balancer_move: bool = False          # the reassignment in progress is the balancer's (False when none)

    @property
    def is_reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """The replica set once the current reassignment (if any) completes."""
        return tuple(r for r in self.replicas if r not in self.removing_replicas)

    @property
    def original_replicas(self) -> tuple[int, ...]:
        """The replica set before the current reassignment (if any) started, in the order of the
        merged `replicas` list (the original order is not kept, as in Kafka)."""
        return tuple(r for r in self.replicas if r not in self.adding_replicas)


@dataclasses.dataclass(frozen=True, slots=True)
class TopicImage:
    """A topic: id, name, partitions (indexed by partition number) and its config overrides.

    Thread-safe (immutable; `encoded` is an idempotent cache owned by snapshot.py).
    """

    topic_id: bytes
    name: str
    partitions: tuple[PartitionImage, ...]
    configs: Mapping[str, str]
    encoded: bytes | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def replication_factor(self) -> int:
        """Replicas per partition once reassignments complete (Kafka's "replication factor")."""
        return len(self.partitions[0].target_replicas) if self.partitions else 0


class RequestLog:
    """The bounded, deterministic dedup table: recent request id -> first serialized result.

    Remembers request ids in apply order in chunks of REQUEST_LOG_CHUNK_SIZE; when a chunk fills it
    is sealed, and when more than REQUEST_LOG_CHUNKS_MAX chunks are sealed the oldest is dropped.
    What is remembered therefore depends only on the sequence of applied commands (never on time or
    on when a snapshot was taken), so every replica answers a duplicate identically. Between
    REQUEST_LOG_CAPACITY and REQUEST_LOG_CAPACITY + REQUEST_LOG_CHUNK_SIZE - 1 ids are remembered.

    Results are stored serialized, so no caller can mutate replicated state through a result.
    Thread-safe (immutable: `with_request` returns a new log sharing the sealed chunks).
    """

    __slots__ = ("_sealed", "_current")

    def __init__(self, sealed: tuple[Mapping[str, bytes], ...] = (), current: Mapping[str, bytes] = EMPTY_MAPPING):
        assert len(sealed) <= REQUEST_LOG_CHUNKS_MAX
        assert len(current) < REQUEST_LOG_CHUNK_SIZE
        self._sealed = sealed
        self._current = current

    def get(self, request_id: str) -> bytes | None:
        """The serialized first result of `request_id`, or None when not remembered."""
        found = self._current.get(request_id)
        if found is not None:
            return found
        for chunk in reversed(self._sealed):
            found = chunk.get(request_id)
            if found is not None:
                return found
        return None

    def with_request(self, request_id: str, result: bytes) -> RequestLog:
        """A new log that also remembers `request_id` (which must not be remembered already)."""
        assert self.get(request_id) is None, request_id
        current = dict(self._current)
        current[request_id] = result
        if len(current) < REQUEST_LOG_CHUNK_SIZE:
            return RequestLog(self._sealed, MappingProxyType(current))
        sealed = self._sealed + (MappingProxyType(current),)
        if len(sealed) > REQUEST_LOG_CHUNKS_MAX:
            sealed = sealed[1:]
        return RequestLog(sealed, EMPTY_MAPPING)

    @classmethod
    def from_items(cls, items: list[tuple[str, bytes]]) -> RequestLog:
        """Rebuild the log from `items()` output (a snapshot): the same chunking, hence the same
        future evictions, as the log that produced them."""
        sealed_count = len(items) - len(items) % REQUEST_LOG_CHUNK_SIZE
        assert sealed_count // REQUEST_LOG_CHUNK_SIZE <= REQUEST_LOG_CHUNKS_MAX
        sealed = tuple(
            MappingProxyType(dict(items[start : start + REQUEST_LOG_CHUNK_SIZE]))
            for start in range(0, sealed_count, REQUEST_LOG_CHUNK_SIZE)
        )
        current = MappingProxyType(dict(items[sealed_count:]))
        log = cls(sealed, current)
        assert len(log) == len(items), "duplicate request id in a snapshot"
        return log

    def items(self) -> Iterator[tuple[str, bytes]]:
        """(request id, serialized result), oldest first."""
        for chunk in self._sealed:
            yield from chunk.items()
        yield from self._current.items()

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self._sealed) + len(self._current)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestLog):
            return NotImplemented
        return list(self.items()) == list(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} request ids)"


EMPTY_REQUEST_LOG = RequestLog()


@dataclasses.dataclass(frozen=True, slots=True)
class MetadataImage:
    """The whole replicated cluster state after the command at `offset`. Thread-safe (immutable).

    Attributes:
        offset: the metadata offset (Raft index) of the last applied command; 0 before any.
            Monotonic; not dense (the Raft log also holds entries that are not commands).
        cluster_id: "" until InitCluster.
        controller_id, controller_epoch: the active controller and its Raft term
            (NO_CONTROLLER and 0 until the first ClaimController).
        next_producer_id: the first id of the next producer-id block.
        brokers: node id -> registration.
        topics_by_id: topic id -> topic.
        topic_ids_by_name: topic name -> topic id (same topics).
        cluster_configs: cluster-scope config overrides (key -> value string).
        broker_configs: broker id -> that broker's overrides (only brokers with overrides).
        recent_requests: the dedup table.
        users: user name -> {SCRAM mechanism: credential} (never a password).
        acls: every ACL binding, indexed for `security.authorize`.
        group_configs: consumer group id -> that group's config overrides (GROUP scope, KIP-848;
            only groups with overrides).
    """

    offset: int
    cluster_id: str
    controller_id: int
    controller_epoch: int
    next_producer_id: int
    brokers: Mapping[int, BrokerRegistration]
    topics_by_id: Mapping[bytes, TopicImage]
    topic_ids_by_name: Mapping[str, bytes]
    cluster_configs: Mapping[str, str]
    broker_configs: Mapping[int, Mapping[str, str]]
    recent_requests: RequestLog
    users: Mapping[str, Mapping[ScramMechanism, ScramCredential]] = dataclasses.field(default_factory=lambda: EMPTY_MAPPING)
    acls: AclSet = EMPTY_ACLS
    group_configs: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=lambda: EMPTY_MAPPING)

    def topic(self, name: str) -> TopicImage | None:
        """The topic called `name`, or None."""
        topic_id = self.topic_ids_by_name.get(name)
        return None if topic_id is None else self.topics_by_id[topic_id]

    def topic_by_id(self, topic_id: bytes) -> TopicImage | None:
        return self.topics_by_id.get(topic_id)

    def topic_names(self) -> list[str]:
        """Every topic name, sorted."""
        return sorted(self.topic_ids_by_name)

    def topics(self) -> Iterator[TopicImage]:
        """Every topic, sorted by name."""
        for name in sorted(self.topic_ids_by_name):
            yield self.topics_by_id[self.topic_ids_by_name[name]]

    def partition(self, topic_name: str, partition: int) -> PartitionImage | None:
        topic = self.topic(topic_name)
        if topic is None or not 0 <= partition < len(topic.partitions):
            return None
        return topic.partitions[partition]

    @property
    def partition_count(self) -> int:
        return sum(len(topic.partitions) for topic in self.topics_by_id.values())

    def broker(self, node_id: int) -> BrokerRegistration | None:
        return self.brokers.get(node_id)

    def active_broker_ids(self) -> list[int]:
        """Registered, unfenced brokers, sorted."""
        return sorted(b.node_id for b in self.brokers.values() if not b.is_fenced)

    def topic_config(self, topic: str | bytes) -> configs.TopicConfig | None:
        """Typed config of a topic (by name or id) with defaults and cluster values merged."""
        found = self.topic_by_id(topic) if isinstance(topic, bytes) else self.topic(topic)
        if found is None:
            return None
        return configs.topic_config(self.cluster_configs, found.configs)

    def broker_config(self, node_id: int) -> configs.BrokerConfig:
        """Typed config of a broker (registered or not) with defaults and cluster values merged."""
        return configs.broker_config(self.cluster_configs, self.broker_configs.get(node_id, EMPTY_MAPPING))

    def group_config(self, group_id: str) -> configs.GroupConfig:
        """Typed config of a consumer group (existing or not) with defaults and cluster values merged."""
        return configs.group_config(self.cluster_configs, self.group_configs.get(group_id, EMPTY_MAPPING))

    def scram_credential(self, user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        """The credential of `user` for `mechanism`, or None (unknown user or mechanism)."""
        return self.users.get(user, EMPTY_MAPPING).get(mechanism)

    def request_result(self, request_id: str) -> metadata_pb2.MetadataResult | None:
        """The first result of a remembered request id (a fresh message), or None."""
        data = self.recent_requests.get(request_id)
        if data is None:
            return None
        result = metadata_pb2.MetadataResult()
        result.ParseFromString(data)
        return result


EMPTY_IMAGE = MetadataImage(
    offset=0,
    cluster_id="",
    controller_id=NO_CONTROLLER,
    controller_epoch=0,
    next_producer_id=0,
    brokers=EMPTY_MAPPING,
    topics_by_id=EMPTY_MAPPING,
    topic_ids_by_name=EMPTY_MAPPING,
    cluster_configs=EMPTY_MAPPING,
    broker_configs=EMPTY_MAPPING,
    recent_requests=EMPTY_REQUEST_LOG,
)
