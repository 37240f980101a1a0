"""Validation and planning of the admin requests that change topics and configs.

Owns request ids of multi-item requests, topic and partition lookup by name, topic creation
(validation in Kafka's order and replica placement over the available brokers), partition
creation, and config changes: the scope of a config resource, the checks of an
IncrementalAlterConfigs item (including relationships such as heartbeat interval < session
timeout) and DescribeConfigs' effective values with their sources. Topic name and config rules
themselves live in metadata/topic_rules.py, shared with the state machine.

Every check raises ControllerRequestError (a code and a message for the client) before anything
is proposed; the state machine checks the command again when it applies it.

Imports only the standard library, freshet.metadata (commands, configs, errors, image, placement,
topic_rules, controller.elections) and wire types. Forbidden: grpc, storage, server, client, cli,
pysyncobj.
Thread-safety: functions are pure and thread-safe; the classes are immutable.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence

from freshet.metadata import commands, configs, placement, topic_rules
from freshet.metadata.controller.elections import is_available, placement_brokers
from freshet.metadata.errors import ControllerRequestError, InvalidReplicationFactorError
from freshet.metadata.image import MetadataImage, PartitionImage, TopicImage
from freshet.v1 import common_pb2, metadata_pb2

E = common_pb2.ErrorCode
MetadataCommand = metadata_pb2.MetadataCommand


REQUEST_ID_PREFIX_LENGTH_MAX = 180


INTERNAL_TOPIC_PREFIX = "__"


def item_request_id(request_id: str, item: int) -> str:
    """The command request id of item `item` of a request: "<request_id>/<item>"."""
    return f"{request_id}/{item}"


def check_request_id(request_id: str) -> None:
    if not 0 < len(request_id) <= REQUEST_ID_PREFIX_LENGTH_MAX:
        raise ControllerRequestError(
            E.INVALID_REQUEST, f"request_id must be 1..{REQUEST_ID_PREFIX_LENGTH_MAX} characters, not {len(request_id)}"
        )


def topic_by_name(image: MetadataImage, name: str) -> TopicImage:
    topic = image.topic(name)
    if topic is None:
        raise ControllerRequestError(E.UNKNOWN_TOPIC, f"topic {name!r} does not exist")
    return topic


def partition_of(image: MetadataImage, topic_name: str, partition: int) -> tuple[TopicImage, PartitionImage]:
    topic = topic_by_name(image, topic_name)
    if not 0 <= partition < len(topic.partitions):
        raise ControllerRequestError(E.UNKNOWN_TOPIC, f"topic {topic_name!r} has no partition {partition} (it has {len(topic.partitions)})")
    return topic, topic.partitions[partition]


def all_partitions(image: MetadataImage) -> Iterator[tuple[TopicImage, PartitionImage]]:
    for topic in image.topics():
        for partition in topic.partitions:
            yield topic, partition


def _raise_problem(problem: topic_rules.Problem | None) -> None:
    if problem is not None:
        raise ControllerRequestError(problem.code, problem.message)


def _initial_state(image: MetadataImage, replicas: Sequence[int], what: str) -> commands.Assignment:
    """ISR = the available replicas; leader = the first of them (KRaft's createTopic)."""
    isr = [r for r in replicas if is_available(image.brokers.get(r))]
    if not isr:
        raise ControllerRequestError(
            E.INVALID_REPLICA_ASSIGNMENT,
            f"{what}: every broker of the assignment {list(replicas)} is fenced or shutting down",
        )
    return list(replicas), isr, isr[0]


def _explicit_assignment(
    image: MetadataImage, assignments: Sequence[Sequence[int]], replication_factor: int | None, first_partition: int
) -> list[tuple[int, ...]]:
    result = []
    for number, replicas in enumerate(assignments, start=first_partition):
        what = f"partition {number}"
        replicas = tuple(replicas)
        if not replicas:
            raise ControllerRequestError(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: the replica list is empty")
        if len(set(replicas)) != len(replicas):
            raise ControllerRequestError(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: duplicate broker in {list(replicas)}")
        if replication_factor is None:
            replication_factor = len(replicas)
        if len(replicas) != replication_factor:
            raise ControllerRequestError(
                E.INVALID_REPLICA_ASSIGNMENT,
                f"{what}: {len(replicas)} replicas, but the replication factor is {replication_factor}",
            )
        for replica in replicas:
            if replica not in image.brokers:
                raise ControllerRequestError(E.INVALID_REPLICA_ASSIGNMENT, f"{what}: broker {replica} is not registered")
        result.append(replicas)
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class TopicPlan:
    """A validated topic creation. Thread-safe (immutable)."""

    name: str
    assignments: tuple[commands.Assignment, ...]
    configs: Mapping[str, str]

    @property
    def replication_factor(self) -> int:
        return len(self.assignments[0][0])

    def command(self, request_id: str, controller_epoch: int, topic_id: bytes) -> MetadataCommand:
        return commands.create_topic(request_id, controller_epoch, topic_id, self.name, self.assignments, self.configs)


def plan_topic(
    image: MetadataImage,
    name: str,
    num_partitions: int | None,
    replication_factor: int | None,
    assignments: Sequence[Sequence[int]],
    topic_configs: Mapping[str, str],
    defaults: configs.BrokerConfig,
) -> TopicPlan:
    """Validate a topic creation and place its replicas.

    Checks, in Kafka's order: the name (legal characters, length, not "."/"..", no '.'/'_'
    collision), that it does not exist, partitions >= 1, 1 <= replication factor <= available
    brokers (INVALID_REPLICATION_FACTOR with Kafka's message), the explicit assignment if any,
    and the configs.

    Args:
        defaults: the controller's effective broker config (num.partitions,
            default.replication.factor apply when the request leaves them out).

    Raises:
        ControllerRequestError: naming the problem (INVALID_TOPIC, TOPIC_ALREADY_EXISTS,
            INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG).
    """
    _raise_problem(topic_rules.new_topic_name_problem(image, name))
    available = placement_brokers(image)
    if assignments:
        if num_partitions is not None and num_partitions != len(assignments):
            raise ControllerRequestError(
                E.INVALID_REQUEST, f"{num_partitions} partitions asked, but the assignment has {len(assignments)}"
            )
        replicas = _explicit_assignment(image, assignments, replication_factor, 0)
    else:
        partitions = defaults.num_partitions if num_partitions is None else num_partitions
        if partitions < 1:
            raise ControllerRequestError(E.INVALID_PARTITIONS, f"number of partitions must be at least 1, not {partitions}")
        factor = defaults.default_replication_factor if replication_factor is None else replication_factor
        if factor < 1 or factor > len(available):
            raise InvalidReplicationFactorError(factor, len(available))
        racks = [(broker.node_id, broker.rack) for broker in available]
        start, shift = placement.spread_start(image, placement.placement_order(racks))
        replicas = placement.assign_replicas(racks, partitions, factor, start, shift)
    _raise_problem(topic_rules.config_problem(configs.ConfigScope.TOPIC, topic_configs))
    initial = tuple(_initial_state(image, r, f"partition {n}") for n, r in enumerate(replicas))
    return TopicPlan(name, initial, dict(topic_configs))


def plan_partitions(
    image: MetadataImage, name: str, count: int, assignments: Sequence[Sequence[int]]
) -> tuple[TopicImage, tuple[commands.Assignment, ...]]:
    """Validate adding partitions to `name` up to `count` in total; the new partitions' states.

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_PARTITIONS (count not larger),
            INVALID_REPLICATION_FACTOR (not enough available brokers), INVALID_REPLICA_ASSIGNMENT.
    """
    topic = topic_by_name(image, name)
    current = len(topic.partitions)
    if count <= current:
        raise ControllerRequestError(
            E.INVALID_PARTITIONS, f"topic {name!r} has {current} partitions; the count can only increase (asked {count})"
        )
    added = count - current
    factor = topic.replication_factor
    if assignments:
        if len(assignments) != added:
            raise ControllerRequestError(
                E.INVALID_REPLICA_ASSIGNMENT,
                f"{added} new partitions, but the assignment has {len(assignments)}",
            )
        replicas = _explicit_assignment(image, assignments, factor, current)
    else:
        available = placement_brokers(image)
        if factor > len(available):
            raise InvalidReplicationFactorError(factor, len(available))
        racks = [(broker.node_id, broker.rack) for broker in available]
        start, shift = placement.spread_start(image, placement.placement_order(racks))
        replicas = placement.assign_replicas(racks, added, factor, start, shift, first_partition=current)
    states = tuple(_initial_state(image, r, f"partition {n}") for n, r in enumerate(replicas, start=current))
    return topic, states


def own_config_values(image: MetadataImage, resource: metadata_pb2.ConfigResource) -> Mapping[str, str]:
    """The dynamic values set on the resource itself (not inherited); {} for an unknown topic."""
    if resource.type == metadata_pb2.CONFIG_RESOURCE_TOPIC:
        topic = image.topic(resource.topic_name)
        return {} if topic is None else topic.configs
    if resource.type == metadata_pb2.CONFIG_RESOURCE_BROKER:
        return image.broker_configs.get(resource.broker_id, {})
    if resource.type == metadata_pb2.CONFIG_RESOURCE_GROUP:
        return image.group_configs.get(resource.group_id, {})
    return image.cluster_configs


def config_resource_scope(image: MetadataImage, resource: metadata_pb2.ConfigResource) -> tuple[configs.ConfigScope, TopicImage | None]:
    """The scope of a config resource (and its topic).

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_REQUEST (bad type or broker id).
    """
    kind = resource.type
    if kind == metadata_pb2.CONFIG_RESOURCE_CLUSTER:
        return configs.ConfigScope.CLUSTER, None
    if kind == metadata_pb2.CONFIG_RESOURCE_BROKER:
        if resource.broker_id < 0:
            raise ControllerRequestError(E.INVALID_REQUEST, f"broker id {resource.broker_id} is negative")
        return configs.ConfigScope.BROKER, None
    if kind == metadata_pb2.CONFIG_RESOURCE_TOPIC:
        if resource.topic_id:
            topic = image.topic_by_id(bytes(resource.topic_id))
            if topic is None:
                raise ControllerRequestError(E.UNKNOWN_TOPIC_ID, f"no topic has id {bytes(resource.topic_id).hex()}")
            return configs.ConfigScope.TOPIC, topic
        return configs.ConfigScope.TOPIC, topic_by_name(image, resource.topic_name)
    if kind == metadata_pb2.CONFIG_RESOURCE_GROUP:
        if not resource.group_id:
            raise ControllerRequestError(E.INVALID_REQUEST, "group id is empty")
        return configs.ConfigScope.GROUP, None
    raise ControllerRequestError(E.INVALID_REQUEST, "config resource type must be cluster, broker, topic or group")


def check_config_changes(
    image: MetadataImage,
    resource: metadata_pb2.ConfigResource,
    to_set: Mapping[str, str],
    to_delete: Sequence[str],
    static_broker_configs: Mapping[str, str],
) -> None:
    """Validate an IncrementalAlterConfigs item against the schema and the relationships that must
    hold afterwards (heartbeat interval < session timeout for every broker affected).

    Raises:
        ControllerRequestError: INVALID_CONFIG naming the key, UNKNOWN_TOPIC, INVALID_REQUEST.
    """
    scope, _ = config_resource_scope(image, resource)
    both = sorted(set(to_set) & set(to_delete))
    if both:
        raise ControllerRequestError(E.INVALID_REQUEST, f"configuration {both[0]!r} is both set and deleted")
    _raise_problem(topic_rules.config_problem(scope, to_set, to_delete))
    if scope in (configs.ConfigScope.TOPIC, configs.ConfigScope.GROUP):
        return
    cluster = dict(image.cluster_configs)
    if scope is configs.ConfigScope.CLUSTER:
        cluster.update(to_set)
        for key in to_delete:
            cluster.pop(key, None)
    affected = sorted(image.brokers) if scope is configs.ConfigScope.CLUSTER else [resource.broker_id]
    for node_id in affected or [-1]:
        own = dict(image.broker_configs.get(node_id, {}))
        if scope is configs.ConfigScope.BROKER:
            own.update(to_set)
            for key in to_delete:
                own.pop(key, None)
        effective = configs.broker_config({**static_broker_configs, **cluster}, own)
        if effective.broker_heartbeat_interval_ms >= effective.broker_session_timeout_ms:
            raise ControllerRequestError(
                E.INVALID_CONFIG,
                f"broker.heartbeat.interval.ms ({effective.broker_heartbeat_interval_ms}) must be less than "
                f"broker.session.timeout.ms ({effective.broker_session_timeout_ms})"
                + ("" if node_id < 0 else f" for broker {node_id}"),
            )


class ConfigSource(enum.Enum):
    """Where an effective config value comes from (lowest to highest precedence)."""

    DEFAULT = "default"
    STATIC_BROKER = "static"
    DYNAMIC_CLUSTER = "cluster"
    DYNAMIC_BROKER = "broker"
    DYNAMIC_TOPIC = "topic"
    DYNAMIC_GROUP = "group"


@dataclasses.dataclass(frozen=True, slots=True)
class DescribedConfig:
    """One effective config value. Thread-safe (immutable)."""

    key: str
    value: str
    source: ConfigSource
    doc: str


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe_configs(
    image: MetadataImage,
    resource: metadata_pb2.ConfigResource,
    keys: Sequence[str] = (),
    static_broker_configs: Mapping[str, str] | None = None,
) -> list[DescribedConfig]:
    """Effective values of a resource's keys with their source, sorted by key.

    Topic: default < cluster < topic. Broker: default < static (only when `static_broker_configs`
    is given: the answering node describes itself) < cluster < broker. Cluster: default < cluster.
    Group: default < cluster < group.

    Raises:
        ControllerRequestError: UNKNOWN_TOPIC, INVALID_REQUEST, INVALID_CONFIG (unknown key asked).
    """
    scope, topic = config_resource_scope(image, resource)
    layers: list[tuple[ConfigSource, Mapping[str, str]]] = []
    if scope is configs.ConfigScope.TOPIC:
        assert topic is not None
        names = configs.TOPIC_KEYS
        layers = [(ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs), (ConfigSource.DYNAMIC_TOPIC, topic.configs)]
    elif scope is configs.ConfigScope.BROKER:
        names = configs.BROKER_KEYS
        if static_broker_configs is not None:
            layers.append((ConfigSource.STATIC_BROKER, static_broker_configs))
        layers += [
            (ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs),
            (ConfigSource.DYNAMIC_BROKER, image.broker_configs.get(resource.broker_id, {})),
        ]
    elif scope is configs.ConfigScope.GROUP:
        names = configs.GROUP_KEYS
        layers = [
            (ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs),
            (ConfigSource.DYNAMIC_GROUP, image.group_configs.get(resource.group_id, {})),
        ]
    else:
        names = tuple(name for name in configs.SCHEMA if configs.ConfigScope.CLUSTER in configs.SCHEMA[name].scopes)
        layers = [(ConfigSource.DYNAMIC_CLUSTER, image.cluster_configs)]
    if keys:
        for key in keys:
            if key not in names:
                raise ControllerRequestError(E.INVALID_CONFIG, f"configuration {key!r}: not a {scope.value} configuration key")
        names = tuple(keys)
    described = []
    for name in sorted(set(names)):
        spec = configs.SCHEMA[name]
        value, source = _default_text(spec.default), ConfigSource.DEFAULT
        for layer_source, values in layers:
            if name in values:
                value, source = values[name], layer_source
        described.append(DescribedConfig(name, value, source, spec.doc))
    return described


def is_internal_topic(name: str) -> bool:
    """Internal topics (e.g. __consumer_offsets) start with two underscores."""
    return name.startswith(INTERNAL_TOPIC_PREFIX)

